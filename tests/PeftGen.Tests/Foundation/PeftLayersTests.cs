using System.Collections.Generic;
using System.Linq;
using PeftGen;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Foundation;

/// <summary>The path lookups generated constructors use to reach block projections.</summary>
public sealed class PeftLayersTests
{
    [Fact]
    public void Projections_match_stack_indices_by_star_and_keep_layer_order()
    {
        var modules = new List<nn.Module>();
        var layers = new List<PeftLayer>();
        void Add(string path, nn.Module module, PeftLayerKind kind)
        {
            modules.Add(module);
            layers.Add(new PeftLayer(path, kind, module, WeightLayout.OutIn, false));
        }
        Add("h.0.attn.q", new LoraLinear(4, 4), PeftLayerKind.Projection);
        Add("h.0.attn.v", new LoraLinear(4, 4), PeftLayerKind.Projection);
        Add("h.0.ln", nn.LayerNorm(new long[] { 4 }), PeftLayerKind.LayerNorm);
        Add("h.1.attn.q", new LoraLinear(4, 4), PeftLayerKind.Projection);
        Add("h.1.attn.v", new LoraLinear(4, 4), PeftLayerKind.Projection);
        Add("h.10.attn.q", new LoraLinear(4, 4), PeftLayerKind.Projection);
        Add("head", new LoraLinear(4, 4), PeftLayerKind.Projection);
        try
        {
            var matched = PeftLayers.Projections(layers, "h.*.attn.v", "h.*.attn.q");
            Assert.Equal(new[] { "h.0.attn.q", "h.0.attn.v", "h.1.attn.q", "h.1.attn.v", "h.10.attn.q" }, matched.Select(m => layers.Single(l => ReferenceEquals(l.Module, m)).Path));
            Assert.Empty(PeftLayers.Projections(layers, "h.*.ln", "h.*", "attn.q", "h.*.attn.q.x"));
            Assert.Single(PeftLayers.Projections(layers, "head"));
        }
        finally
        {
            foreach (var module in modules) module.Dispose();
        }
    }
}
