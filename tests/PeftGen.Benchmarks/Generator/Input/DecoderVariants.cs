using PeftGen;

namespace GeneratorBench.Models;

/// <summary>24 layers, 2048 wide, 16 query and 4 key/value heads, MLP 5632: a 1.3B-parameter decoder.</summary>
public static class Decoder24Config
{
    public const int Vocab = 32000, Context = 2048, Width = 2048, Layers = 24, Heads = 16, KvHeads = 4, Mlp = 5632;
}

/// <summary>LoRA r = 16, alpha 32 on every attention and MLP projection; the head stays as it is.</summary>
[PeftModel(typeof(Decoder24Config), ContextLength = "Context")]
[Lora(Rank = 16, Alpha = 32, Dropout = 0.05)]
public partial class Decoder24Lora : DecoderLanguageModel
{
    [Block] public partial DecoderTrunk model { get; }
    [Linear("Width", "Vocab", Bias = false), NoLora] public partial LoraLinear lm_head { get; }

    /// <inheritdoc />
    protected override DecoderTrunk Trunk => model;

    /// <inheritdoc />
    protected override LoraLinear Head => lm_head;
}

/// <summary>The same adapters on a base whose projections are stored in NF4 with double quantization.</summary>
[PeftModel(typeof(Decoder24Config), ContextLength = "Context")]
[Lora(Rank = 16, Alpha = 32, Dropout = 0.05)]
[Quantize4Bit]
public partial class Decoder24QLora : DecoderLanguageModel
{
    [Block] public partial DecoderTrunk model { get; }
    [Linear("Width", "Vocab", Bias = false), NoLora, Trainable] public partial LoraLinear lm_head { get; }

    /// <inheritdoc />
    protected override DecoderTrunk Trunk => model;

    /// <inheritdoc />
    protected override LoraLinear Head => lm_head;
}
