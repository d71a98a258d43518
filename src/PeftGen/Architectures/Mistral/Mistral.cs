using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftGen.Architectures;

// Mistral is Llama's architecture with grouped-query attention and a larger rotary base; HF's MistralForCausalLM has the
// same member names. Mistral-7B-v0.1's sliding window (4096) only differs from full attention beyond 4096 tokens;
// v0.3 has none.

/// <summary>Mistral's causal LM (HF <c>MistralForCausalLM</c>): the decoder stack and an untied head <c>lm_head</c>. Derive a <c>[PeftModel]</c> class from it.</summary>
[PeftModule]
public abstract partial class MistralForCausalLM : DecoderForCausalLM
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

/// <summary>Mistral-7B-v0.3: 32 layers, 4096 wide, 8 key/value heads, MLP 14336, 32,768 tokens (mistralai/Mistral-7B-v0.3's config.json).</summary>
public static class Mistral7B
{
    /// <summary>Vocabulary, context, width, layers, query and key/value heads, MLP width.</summary>
    public const int Vocab = 32768, Context = 32768, Width = 4096, Layers = 32, Heads = 32, KvHeads = 8, Mlp = 14336;

    /// <summary>RMSNorm epsilon and rotary base.</summary>
    public const double RmsNormEps = 1e-5, RopeTheta = 1000000.0;

    /// <summary>No bias on q/k/v; an untied head.</summary>
    public const bool QkvBias = false, TieWordEmbeddings = false;
}
