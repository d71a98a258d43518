using PeftGen;
using PeftGen.Inference;
using PeftGen.Training;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TinyGpt.Models;

// The GPT-2 architecture, written once. Every model size and every fine-tuning variant below reuses these blocks;
// only the configuration type (its dimensions) and the class-level attributes (its adapters) differ.

/// <summary>GPT-2's transformer trunk: token and position embeddings, N blocks, final norm.</summary>
[PeftModule]
public partial class GptTrunk : nn.Module<Tensor, Tensor>
{
    [Embedding("Vocab", "Width")] public partial TokenEmbedding wte { get; }
    [Embedding("Context", "Width")] public partial Embedding wpe { get; }
    [Stack("Layers")] public partial ModuleList<GptBlock> h { get; }
    [LayerNorm("Width")] public partial LayerNorm ln_f { get; }

    /// <summary>Token ids (<c>batch × seq</c>) to final hidden states of the real tokens (<c>batch × seq × Width</c>).</summary>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var x = wte.forward(ids); // a soft prompt, when one is active, is prepended here
        // Positions continue after what a KV cache holds (0 without one).
        long past = KeyValueCache.PastLength;
        var positions = arange(past, past + x.shape[1], dtype: ScalarType.Int64, device: x.device);
        x = x + wpe.forward(positions);
        foreach (var block in h) x = block.forward(x);
        return wte.DropVirtualTokens(ln_f.forward(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>Pre-norm transformer block.</summary>
[PeftModule]
public partial class GptBlock : nn.Module<Tensor, Tensor>
{
    [LayerNorm("Width")] public partial LayerNorm ln_1 { get; }
    [Block] public partial GptAttention attn { get; }
    [LayerNorm("Width")] public partial LayerNorm ln_2 { get; }
    [Block] public partial GptMlp mlp { get; }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        x = x + attn.forward(ln_1.forward(x));
        x = x + mlp.forward(ln_2.forward(x));
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>Causal multi-head self-attention with GPT-2's fused query/key/value projection.</summary>
[PeftModule]
public partial class GptAttention : nn.Module<Tensor, Tensor>
{
    [Linear("Width", "3 * Width", CheckpointLayout = WeightLayout.InOut)] public partial LoraLinear c_attn { get; }
    [Linear("Width", "Width", CheckpointLayout = WeightLayout.InOut)] public partial LoraLinear c_proj { get; }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long batch = x.shape[0], seq = x.shape[1], width = x.shape[2];
        long heads = Dims.Heads;
        var qkv = c_attn.forward(x).split(width, dim: 2);
        var q = qkv[0].view(batch, seq, heads, width / heads).transpose(1, 2);
        var k = qkv[1].view(batch, seq, heads, width / heads).transpose(1, 2);
        var v = qkv[2].view(batch, seq, heads, width / heads).transpose(1, 2);
        (k, v) = KeyValueCache.Extend(this, k, v);
        var y = CausalAttention.Attend(q, k, v);
        y = y.transpose(1, 2).contiguous().view(batch, seq, width);
        return c_proj.forward(y).MoveToOuterDisposeScope();
    }
}

/// <summary>GPT-2's MLP: expand ×4, GELU (tanh approximation), project back.</summary>
[PeftModule]
public partial class GptMlp : nn.Module<Tensor, Tensor>
{
    [Linear("Width", "4 * Width", CheckpointLayout = WeightLayout.InOut)] public partial LoraLinear c_fc { get; }
    [Linear("4 * Width", "Width", CheckpointLayout = WeightLayout.InOut)] public partial LoraLinear c_proj { get; }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var hidden = nn.functional.gelu(c_fc.forward(x), TorchSharp.Modules.GELU.Approximate.tanh);
        return c_proj.forward(hidden).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// What every GPT language model variant shares: the trunk and a head tied to the token embedding
/// (GPT-2 has no separate <c>lm_head</c> weight).
/// </summary>
public abstract class GptLanguageModel : nn.Module<Tensor, Tensor>, ICausalLanguageModel
{
    /// <summary>Creates the module.</summary>
    protected GptLanguageModel(string name) : base(name)
    {
    }

    /// <summary>The trunk (HF name <c>transformer</c>).</summary>
    protected abstract GptTrunk Trunk { get; }

    /// <inheritdoc />
    public Tensor ForwardHidden(Tensor inputIds) => Trunk.forward(inputIds);

    /// <inheritdoc />
    public Tensor HeadWeight => Trunk.wte.Weight;

    /// <summary>Logits for every real token (<c>batch × seq × Vocab</c>).</summary>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        return ForwardHidden(ids).matmul(HeadWeight.t()).MoveToOuterDisposeScope();
    }
}

/// <summary>GPT-2's initialisation for training from scratch: N(0, 0.02) weights, zero biases, residual projections scaled by 1/√(2·layers).</summary>
public static class GptInit
{
    /// <summary>Re-initialises every layer of a freshly built model of <paramref name="layers"/> blocks.</summary>
    public static void Apply(IPeftModel model, long layers)
    {
        using var _ = no_grad();
        var residualStd = 0.02 / System.Math.Sqrt(2.0 * layers);
        foreach (var layer in model.Layers)
        {
            switch (layer.Module)
            {
                case LoraLinear projection:
                    var std = layer.Path.EndsWith("c_proj", System.StringComparison.Ordinal) ? residualStd : 0.02;
                    projection.Weight.normal_(0, std);
                    projection.Bias?.zero_();
                    break;
                case TokenEmbedding tokens:
                    tokens.Weight.normal_(0, 0.02);
                    break;
                case Embedding positions:
                    positions.weight!.normal_(0, 0.01);
                    break;
            }
        }
    }
}
