using PeftGen;
using PeftGen.Inference;
using PeftGen.Precision;
using PeftGen.Training;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TinyGpt.Models;

// The Llama architecture, written once: RMSNorm, rotary positions, SwiGLU MLP, grouped-query attention and an
// untied head. Member names follow Hugging Face's LlamaForCausalLM, so its checkpoints and PEFT adapters fit. The
// settings in which the family differs come from the configuration: the norm epsilon (EpsFrom = "RmsNormEps"), the
// rotary base (Dims.RopeTheta) and whether q/k/v have a bias (BiasFrom = "QkvBias": Qwen2's do, Llama's do not), so
// these blocks serve Qwen2 as well (Qwen2.cs).

/// <summary>Llama-2-7B: 32 layers, 4096 wide, MLP 11008, 32 000 tokens (meta-llama/Llama-2-7b-hf's config.json).</summary>
public static class Llama2_7BConfig
{
    public const int Vocab = 32000, Context = 4096, Width = 4096, Layers = 32, Heads = 32, KvHeads = 32, Mlp = 11008;
    public const double RmsNormEps = 1e-5, RopeTheta = 10000.0;
    public const bool QkvBias = false;
}

/// <summary>A Llama small enough for tests and CPU runs, with grouped-query attention (2 key/value heads for 4 query heads).</summary>
public static class TinyLlamaConfig
{
    public const int Vocab = 512, Context = 128, Width = 64, Layers = 2, Heads = 4, KvHeads = 2, Mlp = 160;
    public const double RmsNormEps = 1e-5, RopeTheta = 10000.0;
    public const bool QkvBias = false;
}

/// <summary>Llama's decoder stack: token embedding, N decoder layers, final RMSNorm (HF name <c>model</c>).</summary>
[PeftModule]
public partial class LlamaTrunk : nn.Module<Tensor, Tensor>
{
    [Embedding("Vocab", "Width")] public partial TokenEmbedding embed_tokens { get; }
    [Stack("Layers")] public partial ModuleList<LlamaDecoderLayer> layers { get; }
    [RmsNorm("Width", EpsFrom = "RmsNormEps")] public partial RmsNorm norm { get; }

    /// <summary>Token ids to final hidden states of the real tokens.</summary>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var x = embed_tokens.forward(ids);
        var (cos, sin) = Rotary.For(x, Dims.Width / Dims.Heads, Dims.RopeTheta);
        foreach (var layer in layers) x = layer.forward(x, cos, sin);
        return embed_tokens.DropVirtualTokens(norm.forward(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>One decoder layer: pre-norm attention and SwiGLU MLP with residuals.</summary>
[PeftModule]
public partial class LlamaDecoderLayer : nn.Module<Tensor, Tensor>
{
    [RmsNorm("Width", EpsFrom = "RmsNormEps")] public partial RmsNorm input_layernorm { get; }
    [Block] public partial LlamaAttention self_attn { get; }
    [RmsNorm("Width", EpsFrom = "RmsNormEps")] public partial RmsNorm post_attention_layernorm { get; }
    [Block] public partial LlamaMlp mlp { get; }

    /// <summary>Runs the layer with rotary tables for the sequence.</summary>
    public Tensor forward(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        x = x + self_attn.forward(input_layernorm.forward(x), cos, sin);
        x = x + mlp.forward(post_attention_layernorm.forward(x));
        return x.MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var (cos, sin) = Rotary.For(x, Dims.Width / Dims.Heads, Dims.RopeTheta);
        return forward(x, cos, sin).MoveToOuterDisposeScope();
    }
}

/// <summary>Causal self-attention with rotary positions and grouped key/value heads.</summary>
[PeftModule]
public partial class LlamaAttention : nn.Module<Tensor, Tensor>
{
    [Linear("Width", "Width", BiasFrom = "QkvBias")] public partial LoraLinear q_proj { get; }
    [Linear("Width", "KvHeads * Width / Heads", BiasFrom = "QkvBias")] public partial LoraLinear k_proj { get; }
    [Linear("Width", "KvHeads * Width / Heads", BiasFrom = "QkvBias")] public partial LoraLinear v_proj { get; }
    [Linear("Width", "Width", Bias = false)] public partial LoraLinear o_proj { get; }

    /// <summary>Attention over the sequence with the given rotary tables.</summary>
    public Tensor forward(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        long batch = x.shape[0], seq = x.shape[1];
        long heads = Dims.Heads, kvHeads = Dims.KvHeads, headDim = Dims.Width / heads;
        var q = q_proj.forward(x).view(batch, seq, heads, headDim).transpose(1, 2);
        var k = k_proj.forward(x).view(batch, seq, kvHeads, headDim).transpose(1, 2);
        var v = v_proj.forward(x).view(batch, seq, kvHeads, headDim).transpose(1, 2);
        q = Rotary.Apply(q, cos, sin);
        k = Rotary.Apply(k, cos, sin);
        (k, v) = KeyValueCache.Extend(this, k, v);
        if (kvHeads != heads)
        {
            k = k.repeat_interleave(heads / kvHeads, dim: 1);
            v = v.repeat_interleave(heads / kvHeads, dim: 1);
        }
        // Under a mixed-precision scope q and k come back from the rotary tables in the residual stream's dtype while v
        // keeps the compute dtype: attention runs in the compute dtype, as autocast runs it.
        var y = CausalAttention.Attend(ComputePrecision.Cast(q), ComputePrecision.Cast(k), ComputePrecision.Cast(v));
        return o_proj.forward(y.transpose(1, 2).contiguous().view(batch, seq, heads * headDim)).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var (cos, sin) = Rotary.For(x, Dims.Width / Dims.Heads, Dims.RopeTheta);
        return forward(x, cos, sin).MoveToOuterDisposeScope();
    }
}

/// <summary>SwiGLU: <c>down(silu(gate(x)) · up(x))</c>.</summary>
[PeftModule]
public partial class LlamaMlp : nn.Module<Tensor, Tensor>
{
    [Linear("Width", "Mlp", Bias = false)] public partial LoraLinear gate_proj { get; }
    [Linear("Width", "Mlp", Bias = false)] public partial LoraLinear up_proj { get; }
    [Linear("Mlp", "Width", Bias = false)] public partial LoraLinear down_proj { get; }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return down_proj.forward(nn.functional.silu(gate_proj.forward(x)) * up_proj.forward(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>Rotary position embeddings as Hugging Face's Llama applies them (rotate-half, base <c>rope_theta</c>).</summary>
public static class Rotary
{
    /// <summary>
    /// The tables for a <c>batch × seq × Width</c> input, heads of <paramref name="headDim"/> and rotary base
    /// <paramref name="theta"/>; positions continue after what a KV cache holds (0 without one).
    /// </summary>
    public static (Tensor Cos, Tensor Sin) For(Tensor x, long headDim, double theta) => Tables(x.shape[1], headDim, x.device, x.dtype, theta, KeyValueCache.PastLength);

    /// <summary>cos and sin tables, <c>seq × headDim</c>, for positions <paramref name="start"/> … start + seq − 1.</summary>
    public static (Tensor Cos, Tensor Sin) Tables(long seq, long headDim, Device device, ScalarType dtype, double theta, long start = 0)
    {
        using var scope = NewDisposeScope();
        var inv = pow(theta, -arange(0, headDim, 2, dtype: ScalarType.Float32, device: device) / headDim);
        var freqs = outer(arange(start, start + seq, dtype: ScalarType.Float32, device: device), inv);
        var emb = cat([freqs, freqs], dim: -1);
        return (emb.cos().to(dtype).MoveToOuterDisposeScope(), emb.sin().to(dtype).MoveToOuterDisposeScope());
    }

    /// <summary>Rotates <c>batch × heads × seq × headDim</c> by position.</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        long half = x.shape[^1] / 2;
        var rotated = cat([-x[.., .., .., (int)half..], x[.., .., .., ..(int)half]], dim: -1);
        return (x * cos + rotated * sin).MoveToOuterDisposeScope();
    }
}

/// <summary>Llama's causal LM: the trunk and an untied head.</summary>
public abstract class LlamaLanguageModel : nn.Module<Tensor, Tensor>, ICausalLanguageModel
{
    /// <summary>Creates the module.</summary>
    protected LlamaLanguageModel(string name) : base(name)
    {
    }

    /// <summary>The trunk (HF name <c>model</c>).</summary>
    protected abstract LlamaTrunk Trunk { get; }

    /// <summary>The output head (HF name <c>lm_head</c>).</summary>
    protected abstract LoraLinear Head { get; }

    /// <inheritdoc />
    public Tensor ForwardHidden(Tensor inputIds) => Trunk.forward(inputIds);

    /// <inheritdoc />
    public Tensor HeadWeight => Head.Weight;

    /// <summary>Logits for every real token.</summary>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        return Head.forward(ForwardHidden(ids)).MoveToOuterDisposeScope();
    }
}

/// <summary>Llama-2-7B with LoRA r = 8, alpha 16 on the query and value projections (PEFT's defaults for Llama).</summary>
[PeftModel(typeof(Llama2_7BConfig), ContextLength = "Context")]
[Lora(Rank = 8, Alpha = 16, Targets = ["q_proj", "v_proj"])]
public partial class Llama2_7BLora : LlamaLanguageModel
{
    [Block] public partial LlamaTrunk model { get; }
    [Linear("Width", "Vocab", Bias = false)] public partial LoraLinear lm_head { get; }

    /// <inheritdoc />
    protected override LlamaTrunk Trunk => model;

    /// <inheritdoc />
    protected override LoraLinear Head => lm_head;
}

/// <summary>The tiny Llama with the same adapter configuration, for tests and CPU runs.</summary>
[PeftModel(typeof(TinyLlamaConfig), ContextLength = "Context")]
[Lora(Rank = 8, Alpha = 16, Targets = ["q_proj", "v_proj"])]
public partial class TinyLlamaLora : LlamaLanguageModel
{
    [Block] public partial LlamaTrunk model { get; }
    [Linear("Width", "Vocab", Bias = false)] public partial LoraLinear lm_head { get; }

    /// <inheritdoc />
    protected override LlamaTrunk Trunk => model;

    /// <inheritdoc />
    protected override LoraLinear Head => lm_head;
}
