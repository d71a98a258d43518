using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftGen.Architectures;

// Qwen2 and Qwen2.5 are Llama's architecture with a bias on the query, key and value projections, a smaller norm
// epsilon and a larger rotary base, all read from the configuration by the Llama blocks; HF's Qwen2ForCausalLM has the
// same member names. The small Qwen2.5 sizes tie the head to the token embedding (TiedQwen2ForCausalLM).

/// <summary>Qwen2's causal LM (HF <c>Qwen2ForCausalLM</c>) with an untied head <c>lm_head</c> (Qwen2-7B, Qwen2.5-7B). Derive a <c>[PeftModel]</c> class from it.</summary>
[PeftModule]
public abstract partial class Qwen2ForCausalLM : DecoderForCausalLM
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

    partial void OnCreated() => CheckUntied(Dims, nameof(TiedQwen2ForCausalLM));
}

/// <summary>Qwen2 with its head tied to the token embedding (Qwen2.5-0.5B, 1.5B, 3B): no <c>lm_head</c> weight of its own.</summary>
[PeftModule]
public abstract partial class TiedQwen2ForCausalLM : DecoderForCausalLM
{
    /// <summary>The decoder stack (<c>model</c>).</summary>
    [Block] public partial LlamaModel model { get; }

    /// <inheritdoc />
    protected override LlamaModel Trunk => model;

    /// <inheritdoc />
    public override Tensor HeadWeight => model.embed_tokens.Weight;

    partial void OnCreated() => CheckTied(Dims, nameof(Qwen2ForCausalLM));
}

/// <summary>Qwen2-7B: 28 layers, 3584 wide, 28 query and 4 key/value heads, MLP 18944 (Qwen/Qwen2-7B's config.json).</summary>
public static class Qwen2_7B
{
    /// <summary>Vocabulary, context, width, layers, query and key/value heads, MLP width.</summary>
    public const int Vocab = 152064, Context = 131072, Width = 3584, Layers = 28, Heads = 28, KvHeads = 4, Mlp = 18944;

    /// <summary>RMSNorm epsilon and rotary base.</summary>
    public const double RmsNormEps = 1e-6, RopeTheta = 1000000.0;

    /// <summary>A bias on q/k/v; an untied head.</summary>
    public const bool QkvBias = true, TieWordEmbeddings = false;
}

/// <summary>Qwen2.5-0.5B: 24 layers, 896 wide, 14 query and 2 key/value heads, MLP 4864, tied head (Qwen/Qwen2.5-0.5B's config.json).</summary>
public static class Qwen25_0_5B
{
    /// <summary>Vocabulary, context, width, layers, query and key/value heads, MLP width.</summary>
    public const int Vocab = 151936, Context = 32768, Width = 896, Layers = 24, Heads = 14, KvHeads = 2, Mlp = 4864;

    /// <summary>RMSNorm epsilon and rotary base.</summary>
    public const double RmsNormEps = 1e-6, RopeTheta = 1000000.0;

    /// <summary>A bias on q/k/v; the head is the token embedding.</summary>
    public const bool QkvBias = true, TieWordEmbeddings = true;
}
