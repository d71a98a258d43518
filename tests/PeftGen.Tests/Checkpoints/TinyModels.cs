using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftGen.Tests.Checkpoints;

/// <summary>
/// A hand-written <see cref="IPeftModel"/>: layers built in code and listed with their checkpoint paths, the way
/// generated models list theirs.
/// </summary>
public abstract class ListedModel : nn.Module<Tensor, Tensor>, IPeftModel
{
    private readonly List<PeftLayer> layers = new();
    private readonly Dictionary<string, nn.Module> byPath = new(StringComparer.Ordinal);

    protected ListedModel(string name, ModelDims dims) : base(name) => Dims = dims;

    public ModelDims Dims { get; }

    public IReadOnlyList<PeftLayer> Layers => layers;

    public T Layer<T>(string path) where T : nn.Module => (T)byPath[path];

    public IEnumerable<(string Path, LoraLinear Projection)> ProjectionLayers
        => layers.Where(l => l.Module is LoraLinear).Select(l => (l.Path, (LoraLinear)l.Module));

    protected T Add<T>(string path, PeftLayerKind kind, T module, WeightLayout layout = WeightLayout.OutIn) where T : nn.Module
    {
        layers.Add(new PeftLayer(path, kind, module, layout, Trainable: false));
        byPath.Add(path, module);
        register_module(path.Replace('.', '_'), module);
        return module;
    }

    protected LoraLinear Projection(string path, long inFeatures, long outFeatures, bool bias, WeightLayout layout, ScalarType dtype)
        => Add(path, PeftLayerKind.Projection, new LoraLinear(inFeatures, outFeatures, bias, dtype: dtype), layout);

    protected override void RegisterComponents()
    {
    }
}

public sealed record Gpt2Config(int Vocab = 50, int Positions = 16, int Width = 16, int Heads = 2, int Blocks = 2);

/// <summary>A GPT-2-like model with GPT2LMHeadModel's key names (<c>transformer.h.0.attn.c_attn</c>), Conv1D projections and a tied head.</summary>
public sealed class TinyGpt2 : ListedModel
{
    private readonly Gpt2Config config;
    private readonly string root;

    /// <param name="separateHead">Give the model its own <c>lm_head</c> projection instead of using the token embedding.</param>
    /// <param name="root">The path of the transformer's layers: GPT2LMHeadModel's <c>transformer.</c>, or "" as GPT2Model names them.</param>
    public TinyGpt2(Gpt2Config config, bool separateHead = false, ScalarType dtype = ScalarType.Float32, string root = "transformer.")
        : base(nameof(TinyGpt2), new ModelDims(new Dictionary<string, long> { ["Width"] = config.Width, ["Vocab"] = config.Vocab }))
    {
        this.config = config;
        this.root = root;
        long d = config.Width;
        Add($"{this.root}wte", PeftLayerKind.TokenEmbedding, new TokenEmbedding(config.Vocab, d, dtype: dtype));
        Add($"{this.root}wpe", PeftLayerKind.Embedding, nn.Embedding(config.Positions, d, dtype: dtype));
        for (var i = 0; i < config.Blocks; i++)
        {
            var h = $"{this.root}h.{i}";
            Add($"{h}.ln_1", PeftLayerKind.LayerNorm, nn.LayerNorm(d, dtype: dtype));
            Projection($"{h}.attn.c_attn", d, 3 * d, true, WeightLayout.InOut, dtype);
            Projection($"{h}.attn.c_proj", d, d, true, WeightLayout.InOut, dtype);
            Add($"{h}.ln_2", PeftLayerKind.LayerNorm, nn.LayerNorm(d, dtype: dtype));
            Projection($"{h}.mlp.c_fc", d, 4 * d, true, WeightLayout.InOut, dtype);
            Projection($"{h}.mlp.c_proj", 4 * d, d, true, WeightLayout.InOut, dtype);
        }
        Add($"{this.root}ln_f", PeftLayerKind.LayerNorm, nn.LayerNorm(d, dtype: dtype));
        if (separateHead) Projection("lm_head", d, config.Vocab, false, WeightLayout.OutIn, dtype);
    }

    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var (batch, length) = (ids.shape[0], ids.shape[1]);
        var x = Layer<TokenEmbedding>($"{root}wte").forward(ids)
            .add(Layer<Embedding>($"{root}wpe").forward(arange(length, dtype: ScalarType.Int64)));
        for (var i = 0; i < config.Blocks; i++)
        {
            var h = $"{root}h.{i}";
            var qkv = Layer<LoraLinear>($"{h}.attn.c_attn").forward(Layer<LayerNorm>($"{h}.ln_1").forward(x)).chunk(3, -1);
            var attended = TinyMath.CausalAttention(
                TinyMath.Heads(qkv[0], config.Heads), TinyMath.Heads(qkv[1], config.Heads), TinyMath.Heads(qkv[2], config.Heads));
            x = x.add(Layer<LoraLinear>($"{h}.attn.c_proj").forward(TinyMath.MergeHeads(attended)));
            var hidden = nn.functional.gelu(Layer<LoraLinear>($"{h}.mlp.c_fc").forward(Layer<LayerNorm>($"{h}.ln_2").forward(x)));
            x = x.add(Layer<LoraLinear>($"{h}.mlp.c_proj").forward(hidden));
        }
        x = Layer<LayerNorm>($"{root}ln_f").forward(x);
        var logits = Layers.Any(l => l.Path == "lm_head")
            ? Layer<LoraLinear>("lm_head").forward(x)
            : x.matmul(Layer<TokenEmbedding>($"{root}wte").Weight.t());
        return logits.reshape(batch, length, config.Vocab).MoveToOuterDisposeScope();
    }
}

public sealed record LlamaConfig(int Vocab = 40, int Width = 16, int Heads = 4, int KvHeads = 2, int Intermediate = 24, int Blocks = 2);

/// <summary>A Llama-like model with LlamaForCausalLM's key names: RMSNorm, rotary positions, grouped-query attention, SwiGLU, untied head.</summary>
public sealed class TinyLlama : ListedModel
{
    private readonly LlamaConfig config;

    public TinyLlama(LlamaConfig config, ScalarType dtype = ScalarType.Float32)
        : base(nameof(TinyLlama), new ModelDims(new Dictionary<string, long> { ["Width"] = config.Width, ["Vocab"] = config.Vocab }))
    {
        this.config = config;
        long d = config.Width, headDim = config.Width / config.Heads;
        Add("model.embed_tokens", PeftLayerKind.TokenEmbedding, new TokenEmbedding(config.Vocab, d, dtype: dtype));
        for (var i = 0; i < config.Blocks; i++)
        {
            var l = $"model.layers.{i}";
            Add($"{l}.input_layernorm", PeftLayerKind.RmsNorm, new RmsNorm(d, dtype: dtype));
            Projection($"{l}.self_attn.q_proj", d, config.Heads * headDim, false, WeightLayout.OutIn, dtype);
            Projection($"{l}.self_attn.k_proj", d, config.KvHeads * headDim, false, WeightLayout.OutIn, dtype);
            Projection($"{l}.self_attn.v_proj", d, config.KvHeads * headDim, false, WeightLayout.OutIn, dtype);
            Projection($"{l}.self_attn.o_proj", config.Heads * headDim, d, false, WeightLayout.OutIn, dtype);
            Add($"{l}.post_attention_layernorm", PeftLayerKind.RmsNorm, new RmsNorm(d, dtype: dtype));
            Projection($"{l}.mlp.gate_proj", d, config.Intermediate, false, WeightLayout.OutIn, dtype);
            Projection($"{l}.mlp.up_proj", d, config.Intermediate, false, WeightLayout.OutIn, dtype);
            Projection($"{l}.mlp.down_proj", config.Intermediate, d, false, WeightLayout.OutIn, dtype);
        }
        Add("model.norm", PeftLayerKind.RmsNorm, new RmsNorm(d, dtype: dtype));
        Projection("lm_head", d, config.Vocab, false, WeightLayout.OutIn, dtype);
    }

    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var x = Layer<TokenEmbedding>("model.embed_tokens").forward(ids);
        var repeat = config.Heads / config.KvHeads;
        for (var i = 0; i < config.Blocks; i++)
        {
            var l = $"model.layers.{i}";
            var h = Layer<RmsNorm>($"{l}.input_layernorm").forward(x);
            var q = TinyMath.Rope(TinyMath.Heads(Layer<LoraLinear>($"{l}.self_attn.q_proj").forward(h), config.Heads));
            var k = TinyMath.Rope(TinyMath.Heads(Layer<LoraLinear>($"{l}.self_attn.k_proj").forward(h), config.KvHeads)).repeat_interleave(repeat, dim: 1);
            var v = TinyMath.Heads(Layer<LoraLinear>($"{l}.self_attn.v_proj").forward(h), config.KvHeads).repeat_interleave(repeat, dim: 1);
            x = x.add(Layer<LoraLinear>($"{l}.self_attn.o_proj").forward(TinyMath.MergeHeads(TinyMath.CausalAttention(q, k, v))));
            h = Layer<RmsNorm>($"{l}.post_attention_layernorm").forward(x);
            var gated = nn.functional.silu(Layer<LoraLinear>($"{l}.mlp.gate_proj").forward(h)).mul(Layer<LoraLinear>($"{l}.mlp.up_proj").forward(h));
            x = x.add(Layer<LoraLinear>($"{l}.mlp.down_proj").forward(gated));
        }
        var logits = Layer<LoraLinear>("lm_head").forward(Layer<RmsNorm>("model.norm").forward(x));
        return logits.MoveToOuterDisposeScope();
    }
}

/// <summary>Attention and rotary positions, used by the tiny models and by the float64 references alike.</summary>
public static class TinyMath
{
    /// <summary><c>batch × seq × (heads·dim)</c> → <c>batch × heads × seq × dim</c>.</summary>
    public static Tensor Heads(Tensor x, long heads) => x.reshape(x.shape[0], x.shape[1], heads, x.shape[2] / heads).transpose(1, 2);

    public static Tensor MergeHeads(Tensor x) => x.transpose(1, 2).reshape(x.shape[0], x.shape[2], x.shape[1] * x.shape[3]);

    public static Tensor CausalAttention(Tensor q, Tensor k, Tensor v)
    {
        var length = q.shape[2];
        var scores = q.matmul(k.transpose(-2, -1)).div(Math.Sqrt(q.shape[3]));
        var future = ones(length, length, dtype: ScalarType.Bool).triu(1);
        return scores.masked_fill(future, double.NegativeInfinity).softmax(-1).matmul(v);
    }

    /// <summary>Hugging Face Llama's rotary embedding (rotate_half convention, base 10000) on <c>batch × heads × seq × dim</c>.</summary>
    public static Tensor Rope(Tensor x)
    {
        long length = x.shape[2], dim = x.shape[3];
        var inverse = pow(10000.0, arange(0, dim, 2, dtype: ScalarType.Float64).div(dim)).reciprocal();
        var angles = arange(length, dtype: ScalarType.Float64).outer(inverse);
        var both = cat(new[] { angles, angles }, -1);
        var (cos, sin) = (both.cos().to(x.dtype), both.sin().to(x.dtype));
        var halves = x.chunk(2, -1);
        var rotated = cat(new[] { halves[1].neg(), halves[0] }, -1);
        return x.mul(cos).add(rotated.mul(sin));
    }
}
