using PeftGen;
using PeftGen.Precision;
using PeftGen.Training;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace GeneratorBench.Models;

// The generator benchmark's blocks: a source copy of the Llama architecture that PeftGen.Architectures ships (Llama.cs
// there), so the benchmark times the generator expanding blocks, not reading them from a referenced assembly.
// RMSNorm, rotary positions, SwiGLU MLP, grouped-query attention and an untied head, with the configuration's norm
// epsilon, rotary base and q/k/v bias.

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
        if (kvHeads != heads)
        {
            k = k.repeat_interleave(heads / kvHeads, dim: 1);
            v = v.repeat_interleave(heads / kvHeads, dim: 1);
        }
        // Under a mixed-precision scope q and k come back from the rotary tables in the residual stream's dtype while v
        // keeps the compute dtype: attention runs in the compute dtype, as autocast runs it.
        var y = nn.functional.scaled_dot_product_attention(ComputePrecision.Cast(q), ComputePrecision.Cast(k), ComputePrecision.Cast(v), is_casual: true);
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
    /// <summary>The tables for a <c>batch × seq × Width</c> input, heads of <paramref name="headDim"/> and rotary base <paramref name="theta"/>.</summary>
    public static (Tensor Cos, Tensor Sin) For(Tensor x, long headDim, double theta) => Tables(x.shape[1], headDim, x.device, x.dtype, theta);

    /// <summary>cos and sin tables, <c>seq × headDim</c>.</summary>
    public static (Tensor Cos, Tensor Sin) Tables(long seq, long headDim, Device device, ScalarType dtype, double theta)
    {
        using var scope = NewDisposeScope();
        var inv = pow(theta, -arange(0, headDim, 2, dtype: ScalarType.Float32, device: device) / headDim);
        var freqs = outer(arange(seq, dtype: ScalarType.Float32, device: device), inv);
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
