using System.Linq;
using PeftGen.Precision;
using PeftGen.Training;
using PeftGen.Inference;
using TorchSharp.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen.Architectures;

// The Llama family, written once: RMSNorm, rotary positions, SwiGLU MLP, grouped-query attention. Member names follow
// Hugging Face's LlamaForCausalLM (model.layers.N.self_attn.q_proj …), which Mistral and Qwen2 share, so their
// checkpoints and PEFT adapters fit. Where the family differs, the configuration says: the norm epsilon
// (EpsFrom = "RmsNormEps"), the rotary base (RopeTheta), whether q/k/v have a bias (BiasFrom = "QkvBias": Qwen2's
// do) and, by the head class chosen, whether the head is tied to the token embedding. A configuration declares
// Vocab, Context, Width, Layers, Heads, KvHeads, Mlp (int), RmsNormEps, RopeTheta (double) and QkvBias (bool).

/// <summary>The decoder stack (HF <c>LlamaModel</c>, member <c>model</c>): token embedding, N decoder layers, final RMSNorm.</summary>
[PeftModule]
public partial class LlamaModel : nn.Module<Tensor, Tensor>
{
    /// <summary>Token embedding (<c>embed_tokens</c>, <c>Vocab × Width</c>); soft prompts attach here.</summary>
    [Embedding("Vocab", "Width")] public partial TokenEmbedding embed_tokens { get; }
    /// <summary>The decoder layers (<c>layers.N</c>).</summary>
    [Stack("Layers")] public partial ModuleList<LlamaDecoderLayer> layers { get; }
    /// <summary>Final RMSNorm (<c>norm</c>, epsilon <c>RmsNormEps</c>).</summary>
    [RmsNorm("Width", EpsFrom = "RmsNormEps")] public partial RmsNorm norm { get; }

    /// <summary>Token ids to final hidden states of the real tokens.</summary>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var x = embed_tokens.forward(ids);
        // The rotary tables cover this call's positions; a key/value cache would offset them by the cached length.
        var (cos, sin) = Rotary.For(x, Dims["Width"] / Dims["Heads"], Dims.Real("RopeTheta"));
        foreach (var layer in layers) x = layer.forward(x, cos, sin);
        return embed_tokens.DropVirtualTokens(norm.forward(x)).MoveToOuterDisposeScope();
    }

    partial void OnCreated() => Rotary.CheckTheta(Dims);
}

/// <summary>One decoder layer (HF <c>LlamaDecoderLayer</c>): pre-norm attention and SwiGLU MLP with residuals.</summary>
[PeftModule]
public partial class LlamaDecoderLayer : nn.Module<Tensor, Tensor>
{
    /// <summary>RMSNorm before attention (<c>input_layernorm</c>).</summary>
    [RmsNorm("Width", EpsFrom = "RmsNormEps")] public partial RmsNorm input_layernorm { get; }
    /// <summary>Self-attention (<c>self_attn</c>).</summary>
    [Block] public partial LlamaAttention self_attn { get; }
    /// <summary>RMSNorm before the MLP (<c>post_attention_layernorm</c>).</summary>
    [RmsNorm("Width", EpsFrom = "RmsNormEps")] public partial RmsNorm post_attention_layernorm { get; }
    /// <summary>The MLP (<c>mlp</c>).</summary>
    [Block] public partial LlamaMlp mlp { get; }

    /// <summary>Runs the layer with the rotary tables of the sequence's positions.</summary>
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
        var (cos, sin) = Rotary.For(x, Dims["Width"] / Dims["Heads"], Dims.Real("RopeTheta"));
        return forward(x, cos, sin).MoveToOuterDisposeScope();
    }
}

/// <summary>Causal self-attention (HF <c>LlamaAttention</c>) with rotary positions and grouped key/value heads.</summary>
[PeftModule]
public partial class LlamaAttention : nn.Module<Tensor, Tensor>
{
    /// <summary>Query projection (<c>q_proj</c>; bias when <c>QkvBias</c>).</summary>
    [Linear("Width", "Width", BiasFrom = "QkvBias")] public partial LoraLinear q_proj { get; }
    /// <summary>Key projection (<c>k_proj</c>, Width → KvHeads·head width; bias when <c>QkvBias</c>).</summary>
    [Linear("Width", "KvHeads * Width / Heads", BiasFrom = "QkvBias")] public partial LoraLinear k_proj { get; }
    /// <summary>Value projection (<c>v_proj</c>, Width → KvHeads·head width; bias when <c>QkvBias</c>).</summary>
    [Linear("Width", "KvHeads * Width / Heads", BiasFrom = "QkvBias")] public partial LoraLinear v_proj { get; }
    /// <summary>Output projection (<c>o_proj</c>).</summary>
    [Linear("Width", "Width", Bias = false)] public partial LoraLinear o_proj { get; }

    /// <summary>Attention over the sequence with the rotary tables of its positions.</summary>
    public Tensor forward(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        long batch = x.shape[0], seq = x.shape[1];
        long heads = Dims["Heads"], kvHeads = Dims["KvHeads"], headDim = Dims["Width"] / heads;
        var q = q_proj.forward(x).view(batch, seq, heads, headDim).transpose(1, 2);
        var k = k_proj.forward(x).view(batch, seq, kvHeads, headDim).transpose(1, 2);
        var v = v_proj.forward(x).view(batch, seq, kvHeads, headDim).transpose(1, 2);
        q = Rotary.Apply(q, cos, sin);
        k = Rotary.Apply(k, cos, sin);
        // Under a mixed-precision scope q and k come back from the rotary tables in the residual stream's dtype while v
        // keeps the compute dtype: attention runs in the compute dtype, as autocast runs it (or in a cache's storage dtype).
        k = ComputePrecision.Cast(k);
        v = ComputePrecision.Cast(v);
        // With a KV cache in use, this call's keys and values join the cached ones, kept before the heads are repeated.
        (k, v) = KeyValueCache.Extend(this, k, v);
        if (kvHeads != heads)
        {
            k = k.repeat_interleave(heads / kvHeads, dim: 1);
            v = v.repeat_interleave(heads / kvHeads, dim: 1);
        }
        var y = CausalAttention.Attend(ComputePrecision.Cast(q), k, v);
        return o_proj.forward(y.transpose(1, 2).contiguous().view(batch, seq, heads * headDim)).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var (cos, sin) = Rotary.For(x, Dims["Width"] / Dims["Heads"], Dims.Real("RopeTheta"));
        return forward(x, cos, sin).MoveToOuterDisposeScope();
    }
}

/// <summary>SwiGLU (HF <c>LlamaMLP</c>): <c>down(silu(gate(x)) · up(x))</c>.</summary>
[PeftModule]
public partial class LlamaMlp : nn.Module<Tensor, Tensor>
{
    /// <summary>Gate projection (<c>gate_proj</c>, Width → Mlp).</summary>
    [Linear("Width", "Mlp", Bias = false)] public partial LoraLinear gate_proj { get; }
    /// <summary>Up projection (<c>up_proj</c>, Width → Mlp).</summary>
    [Linear("Width", "Mlp", Bias = false)] public partial LoraLinear up_proj { get; }
    /// <summary>Down projection (<c>down_proj</c>, Mlp → Width).</summary>
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
    /// <paramref name="theta"/>; positions continue after what a KV cache holds (0 without one), each row's from its
    /// first real token when the cache holds left-padded rows (the tables are then <c>batch × 1 × seq × headDim</c>).
    /// </summary>
    public static (Tensor Cos, Tensor Sin) For(Tensor x, long headDim, double theta)
    {
        using var scope = NewDisposeScope();
        var positions = KeyValueCache.PositionIds(x.shape[1], x.device);
        var (cos, sin) = Tables(positions, headDim, x.dtype, theta);
        return (cos.MoveToOuterDisposeScope(), sin.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// cos and sin tables for position ids <paramref name="positions"/>: <c>seq × headDim</c> for ids of shape
    /// <c>seq</c>, <c>batch × 1 × seq × headDim</c> for per-row ids of shape <c>batch × seq</c>.
    /// </summary>
    public static (Tensor Cos, Tensor Sin) Tables(Tensor positions, long headDim, ScalarType dtype, double theta)
    {
        System.ArgumentNullException.ThrowIfNull(positions);
        using var scope = NewDisposeScope();
        using Scalar start = 0.ToScalar(), end = headDim.ToScalar(), step = 2.ToScalar(), width = headDim.ToScalar();
        var inv = pow(tensor(theta), -arange(start, end, step, dtype: ScalarType.Float32, device: positions.device).div(width));
        var freqs = positions.to(ScalarType.Float32).unsqueeze(-1) * inv;
        var emb = cat([freqs, freqs], dim: -1);
        if (positions.dim() == 2) emb = emb.unsqueeze(1);
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

    /// <summary>
    /// Fails at construction, not at the first forward, when the configuration lacks a usable <c>RopeTheta</c> (the one
    /// setting the blocks read in code rather than through an attribute the generator checks).
    /// </summary>
    internal static void CheckTheta(ModelDims dims)
    {
        var theta = dims.Real("RopeTheta");
        if (!(theta > 1) || double.IsInfinity(theta))
            throw new System.ArgumentException($"RopeTheta must be a finite number above 1 (the rotary base, rope_theta in config.json); the configuration gives {theta}.", nameof(dims));
    }
}

/// <summary>
/// The head classes' shared code: the trunk <c>model</c>, and logits through the head weight (the untied
/// <c>lm_head</c>, or the token embedding when tied).
/// </summary>
public abstract class DecoderForCausalLM : nn.Module<Tensor, Tensor>, ICausalLanguageModel
{
    /// <summary>Creates the module.</summary>
    protected DecoderForCausalLM(string name) : base(name)
    {
    }

    /// <summary>The decoder stack (HF name <c>model</c>).</summary>
    protected abstract LlamaModel Trunk { get; }

    /// <inheritdoc />
    public Tensor ForwardHidden(Tensor inputIds) => Trunk.forward(inputIds);

    /// <inheritdoc />
    public abstract Tensor HeadWeight { get; }

    /// <inheritdoc />
    public bool SupportsLeftPadding => true;

    /// <summary>Logits for every real token (<c>batch × seq × Vocab</c>).</summary>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        return Logits(ForwardHidden(ids)).MoveToOuterDisposeScope();
    }

    /// <summary>The head applied to final hidden states.</summary>
    protected virtual Tensor Logits(Tensor hidden) => hidden.matmul(HeadWeight.t());

    /// <summary>Refuses a configuration that ties the head (<c>TieWordEmbeddings = true</c>) in a class with an untied one.</summary>
    private protected static void CheckUntied(ModelDims dims, string tiedClass)
    {
        if (dims.Names.Contains("TieWordEmbeddings") && dims.Flag("TieWordEmbeddings"))
            throw new System.ArgumentException($"The configuration ties the output head to the token embedding (TieWordEmbeddings = true, as its checkpoint has no lm_head.weight); derive the model from {tiedClass} instead.", nameof(dims));
    }

    /// <summary>Refuses a configuration that unties the head in a class whose head is the token embedding.</summary>
    private protected static void CheckTied(ModelDims dims, string untiedClass)
    {
        if (dims.Names.Contains("TieWordEmbeddings") && !dims.Flag("TieWordEmbeddings"))
            throw new System.ArgumentException($"The configuration has an untied output head (TieWordEmbeddings = false, an lm_head.weight of its own); derive the model from {untiedClass} instead.", nameof(dims));
    }
}

/// <summary>Llama's causal LM (HF <c>LlamaForCausalLM</c>; Llama 2 and 3): the decoder stack and an untied head <c>lm_head</c>. Derive a <c>[PeftModel]</c> class from it.</summary>
[PeftModule]
public abstract partial class LlamaForCausalLM : DecoderForCausalLM
{
    /// <summary>The decoder stack (<c>model</c>).</summary>
    [Block] public partial LlamaModel model { get; }
    /// <summary>The untied output head (<c>lm_head</c>, Width → Vocab, no bias).</summary>
    [Linear("Width", "Vocab", Bias = false)] public partial LoraLinear lm_head { get; }

    /// <inheritdoc />
    protected override LlamaModel Trunk => model;

    /// <inheritdoc />
    public override Tensor HeadWeight => lm_head.Weight;

    /// <inheritdoc />
    protected override Tensor Logits(Tensor hidden) => lm_head.forward(hidden);

    partial void OnCreated() => CheckUntied(Dims, nameof(TiedLlamaForCausalLM));
}

/// <summary>Llama with its head tied to the token embedding (Llama 3.2 1B and 3B): no <c>lm_head</c> weight of its own.</summary>
[PeftModule]
public abstract partial class TiedLlamaForCausalLM : DecoderForCausalLM
{
    /// <summary>The decoder stack (<c>model</c>).</summary>
    [Block] public partial LlamaModel model { get; }

    /// <inheritdoc />
    protected override LlamaModel Trunk => model;

    /// <inheritdoc />
    public override Tensor HeadWeight => model.embed_tokens.Weight;

    partial void OnCreated() => CheckTied(Dims, nameof(LlamaForCausalLM));
}

/// <summary>Llama-2-7B: 32 layers, 4096 wide, MLP 11008, 32,000 tokens (meta-llama/Llama-2-7b-hf's config.json).</summary>
public static class Llama2_7B
{
    /// <summary>Vocabulary, context, width, layers, query and key/value heads, MLP width.</summary>
    public const int Vocab = 32000, Context = 4096, Width = 4096, Layers = 32, Heads = 32, KvHeads = 32, Mlp = 11008;

    /// <summary>RMSNorm epsilon and rotary base.</summary>
    public const double RmsNormEps = 1e-5, RopeTheta = 10000.0;

    /// <summary>No bias on q/k/v; an untied head.</summary>
    public const bool QkvBias = false, TieWordEmbeddings = false;
}

/// <summary>Llama-3-8B: 32 layers, 4096 wide, 8 key/value heads, MLP 14336, 128,256 tokens (meta-llama/Meta-Llama-3-8B's config.json).</summary>
public static class Llama3_8B
{
    /// <summary>Vocabulary, context, width, layers, query and key/value heads, MLP width.</summary>
    public const int Vocab = 128256, Context = 8192, Width = 4096, Layers = 32, Heads = 32, KvHeads = 8, Mlp = 14336;

    /// <summary>RMSNorm epsilon and rotary base.</summary>
    public const double RmsNormEps = 1e-5, RopeTheta = 500000.0;

    /// <summary>No bias on q/k/v; an untied head.</summary>
    public const bool QkvBias = false, TieWordEmbeddings = false;
}
