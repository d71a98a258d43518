using PeftGen;

namespace TinyGpt.Models;

// Qwen2 is Llama's architecture with a bias on the query, key and value projections, a smaller norm epsilon and a
// larger rotary base: the Llama blocks read all three from the configuration, so Qwen2 is a configuration and a model
// class. Kept apart from Llama.cs, which the generator benchmark compiles as its input.

/// <summary>Qwen2-7B: 28 layers, 3584 wide, 28 query and 4 key/value heads, MLP 18944 (Qwen/Qwen2-7B's config.json).</summary>
public static class Qwen2_7BConfig
{
    public const int Vocab = 152064, Context = 131072, Width = 3584, Layers = 28, Heads = 28, KvHeads = 4, Mlp = 18944;
    public const double RmsNormEps = 1e-6, RopeTheta = 1000000.0;
    public const bool QkvBias = true;
}

/// <summary>A Qwen2 small enough for tests and CPU runs: the tiny Llama's sizes with Qwen2's settings.</summary>
public static class TinyQwen2Config
{
    public const int Vocab = 512, Context = 128, Width = 64, Layers = 2, Heads = 4, KvHeads = 2, Mlp = 160;
    public const double RmsNormEps = 1e-6, RopeTheta = 1000000.0;
    public const bool QkvBias = true;
}

/// <summary>Qwen2-7B with LoRA r = 8, alpha 16 on the query and value projections, from the Llama blocks.</summary>
[PeftModel(typeof(Qwen2_7BConfig), ContextLength = "Context")]
[Lora(Rank = 8, Alpha = 16, Targets = ["q_proj", "v_proj"])]
public partial class Qwen2_7BLora : LlamaLanguageModel
{
    [Block] public partial LlamaTrunk model { get; }
    [Linear("Width", "Vocab", Bias = false)] public partial LoraLinear lm_head { get; }

    /// <inheritdoc />
    protected override LlamaTrunk Trunk => model;

    /// <inheritdoc />
    protected override LoraLinear Head => lm_head;
}

/// <summary>The tiny Qwen2 with the same adapter configuration, for tests and CPU runs.</summary>
[PeftModel(typeof(TinyQwen2Config), ContextLength = "Context")]
[Lora(Rank = 8, Alpha = 16, Targets = ["q_proj", "v_proj"])]
public partial class TinyQwen2Lora : LlamaLanguageModel
{
    [Block] public partial LlamaTrunk model { get; }
    [Linear("Width", "Vocab", Bias = false)] public partial LoraLinear lm_head { get; }

    /// <inheritdoc />
    protected override LlamaTrunk Trunk => model;

    /// <inheritdoc />
    protected override LoraLinear Head => lm_head;
}
