using PeftGen;

namespace TinyGpt.Models;

/// <summary>
/// The main job's model: GPT-2's architecture and vocabulary at a size two CPU cores can pretrain in minutes.
/// </summary>
public static class TinyConfig
{
    public const int Vocab = 50257, Context = 128, Width = 256, Layers = 4, Heads = 4;
}

// One base, four ways to fine-tune it. Each variant is the same architecture with different class-level attributes,
// so the generator knows at compile time exactly what trains and what it costs. All four share checkpoint paths, so
// the pretrained base loads into each of them unchanged.

/// <summary>Every weight trains: pretraining, and the full fine-tuning baseline.</summary>
[PeftModel(typeof(TinyConfig), ContextLength = "Context", Tokenizer = PeftTokenizer.Gpt2)]
[Trainable]
public partial class TinyGptFull : GptLanguageModel
{
    [Block] public partial GptTrunk transformer { get; }

    /// <inheritdoc />
    protected override GptTrunk Trunk => transformer;

    partial void OnCreated() => GptInit.Apply(this);
}

/// <summary>LoRA r = 16, alpha 32 on every projection (attention and MLP), as QLoRA's paper recommends.</summary>
[PeftModel(typeof(TinyConfig), ContextLength = "Context", Tokenizer = PeftTokenizer.Gpt2)]
[Lora(Rank = 16, Alpha = 32, Dropout = 0.05)]
public partial class TinyGptLora : GptLanguageModel
{
    [Block] public partial GptTrunk transformer { get; }

    /// <inheritdoc />
    protected override GptTrunk Trunk => transformer;
}

/// <summary>The same LoRA adapters on a base whose projections are stored in NF4 with double quantization.</summary>
[PeftModel(typeof(TinyConfig), ContextLength = "Context", Tokenizer = PeftTokenizer.Gpt2)]
[Lora(Rank = 16, Alpha = 32, Dropout = 0.05)]
[Quantize4Bit]
public partial class TinyGptQLora : GptLanguageModel
{
    [Block] public partial GptTrunk transformer { get; }

    /// <inheritdoc />
    protected override GptTrunk Trunk => transformer;
}

/// <summary>Prompt tuning: 20 virtual tokens initialised from a task description; the whole model stays frozen.</summary>
[PeftModel(typeof(TinyConfig), ContextLength = "Context", Tokenizer = PeftTokenizer.Gpt2)]
[SoftPrompt(20, Init = SoftPromptInit.Text, InitText = "Give a short dictionary definition of the word in its part of speech.")]
public partial class TinyGptPrompt : GptLanguageModel
{
    [Block] public partial GptTrunk transformer { get; }

    /// <inheritdoc />
    protected override GptTrunk Trunk => transformer;
}
