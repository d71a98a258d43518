using PeftGen;

namespace GeneratorBench.Models;

/// <summary>
/// 24 layers, 2048 wide, 16 query and 4 key/value heads, MLP 5632: a 1.3B-parameter Llama-style decoder built from
/// LlamaBlocks.cs beside this file (the blocks PeftGen.Architectures ships, in source, so the generator expands them).
/// </summary>
public static class Decoder24Config
{
    public const int Vocab = 32000, Context = 2048, Width = 2048, Layers = 24, Heads = 16, KvHeads = 4, Mlp = 5632;
    public const double RmsNormEps = 1e-5, RopeTheta = 10000.0;
    public const bool QkvBias = false;
}

/// <summary>LoRA r = 16, alpha 32 on every attention and MLP projection; the head stays as it is.</summary>
[PeftModel(typeof(Decoder24Config), ContextLength = "Context")]
[Lora(Rank = 16, Alpha = 32, Dropout = 0.05)]
public partial class Decoder24Lora : LlamaLanguageModel
{
    [Block] public partial LlamaTrunk model { get; }
    [Linear("Width", "Vocab", Bias = false), NoLora] public partial LoraLinear lm_head { get; }

    /// <inheritdoc />
    protected override LlamaTrunk Trunk => model;

    /// <inheritdoc />
    protected override LoraLinear Head => lm_head;
}

/// <summary>The same adapters on a base whose projections are stored in NF4 with double quantization.</summary>
[PeftModel(typeof(Decoder24Config), ContextLength = "Context")]
[Lora(Rank = 16, Alpha = 32, Dropout = 0.05)]
[Quantize4Bit]
public partial class Decoder24QLora : LlamaLanguageModel
{
    [Block] public partial LlamaTrunk model { get; }
    [Linear("Width", "Vocab", Bias = false), NoLora, Trainable] public partial LoraLinear lm_head { get; }

    /// <inheritdoc />
    protected override LlamaTrunk Trunk => model;

    /// <inheritdoc />
    protected override LoraLinear Head => lm_head;
}
