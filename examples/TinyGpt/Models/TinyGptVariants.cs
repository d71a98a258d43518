using PeftGen;
using PeftGen.Architectures;

namespace TinyGpt.Models;

/// <summary>
/// The main job's model: GPT-2's architecture at a size two CPU cores pretrain in an hour or two, over GPT-2's
/// byte-level BPE trimmed to the 8,192 tokens its corpora use most (<see cref="PeftGen.Data.TrimmedVocabularyTokenizer"/>;
/// rarer tokens are spelled in byte tokens, so every text still round-trips).
/// </summary>
public static class TinyConfig
{
    public const int Vocab = 8192, Context = 128, Width = 384, Layers = 6, Heads = 6;
}

// One base, four ways to fine-tune it. Each variant is the same architecture with different class-level attributes,
// so the generator knows at compile time exactly what trains and what it costs. All four share checkpoint paths, so
// the pretrained base loads into each of them unchanged.

/// <summary>Every weight trains: pretraining, and the full fine-tuning baseline.</summary>
[PeftModel(typeof(TinyConfig), ContextLength = "Context")]
[Trainable]
public partial class TinyGptFull : Gpt2LMHeadModel
{
    partial void OnCreated() => GptInit.Apply(this, Dims.Layers);
}

/// <summary>LoRA r = 16, alpha 32 on every projection (attention and MLP), as QLoRA's paper recommends.</summary>
[PeftModel(typeof(TinyConfig), ContextLength = "Context")]
[Lora(Rank = 16, Alpha = 32, Dropout = 0.05)]
public partial class TinyGptLora : Gpt2LMHeadModel { }

/// <summary>The same LoRA adapters on a base whose projections are stored in NF4 with double quantization.</summary>
[PeftModel(typeof(TinyConfig), ContextLength = "Context")]
[Lora(Rank = 16, Alpha = 32, Dropout = 0.05)]
[Quantize4Bit]
public partial class TinyGptQLora : Gpt2LMHeadModel { }

/// <summary>
/// Prompt tuning: 20 virtual tokens; the whole model stays frozen. The job starts them from the pretrained embeddings
/// of a task description (PEFT's text initialisation) once the base is loaded: the vocabulary is trimmed, so GPT-2's
/// own ids would point at the wrong rows.
/// </summary>
[PeftModel(typeof(TinyConfig), ContextLength = "Context")]
[SoftPrompt(20)]
public partial class TinyGptPrompt : Gpt2LMHeadModel { }
