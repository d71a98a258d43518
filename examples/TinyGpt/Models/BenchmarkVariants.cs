using PeftGen;
using PeftGen.Architectures;

namespace TinyGpt.Models;

// Configurations the benchmark suite (tests/PeftGen.Benchmarks) trains next to the tiny ones.

/// <summary>The benchmarks' "small" configuration: d 512, 8 layers, context 256.</summary>
public static class SmallConfig
{
    public const int Vocab = 50257, Context = 256, Width = 512, Layers = 8, Heads = 8;
}

/// <summary>The tiny configuration at half its width (width scaling).</summary>
public static class NarrowConfig
{
    public const int Vocab = 50257, Context = 128, Width = 128, Layers = 4, Heads = 4;
}

/// <summary>The tiny configuration at twice its width (width scaling).</summary>
public static class WideConfig
{
    public const int Vocab = 50257, Context = 128, Width = 512, Layers = 4, Heads = 4;
}

/// <summary>Small, every weight trains.</summary>
[PeftModel(typeof(SmallConfig), ContextLength = "Context", Tokenizer = PeftTokenizer.Gpt2)]
[Trainable]
public partial class SmallGptFull : Gpt2LMHeadModel
{
    partial void OnCreated() => GptInit.Apply(this, Dims.Layers);
}

/// <summary>Small with TinyGptLora's adapters.</summary>
[PeftModel(typeof(SmallConfig), ContextLength = "Context", Tokenizer = PeftTokenizer.Gpt2)]
[Lora(Rank = 16, Alpha = 32, Dropout = 0.05)]
public partial class SmallGptLora : Gpt2LMHeadModel { }

/// <summary>Small with TinyGptQLora's adapters and NF4 base.</summary>
[PeftModel(typeof(SmallConfig), ContextLength = "Context", Tokenizer = PeftTokenizer.Gpt2)]
[Lora(Rank = 16, Alpha = 32, Dropout = 0.05)]
[Quantize4Bit]
public partial class SmallGptQLora : Gpt2LMHeadModel { }

/// <summary>Small with TinyGptPrompt's 20 virtual tokens (random init: no tokenizer needed).</summary>
[PeftModel(typeof(SmallConfig), ContextLength = "Context", Tokenizer = PeftTokenizer.Gpt2)]
[SoftPrompt(20)]
public partial class SmallGptPrompt : Gpt2LMHeadModel { }

/// <summary>Tiny with LoRA rank 1 (rank scaling).</summary>
[PeftModel(typeof(TinyConfig), ContextLength = "Context", Tokenizer = PeftTokenizer.Gpt2)]
[Lora(Rank = 1, Alpha = 2, Dropout = 0.05)]
public partial class TinyGptLoraRank1 : Gpt2LMHeadModel { }

/// <summary>Tiny with LoRA rank 4 (rank scaling).</summary>
[PeftModel(typeof(TinyConfig), ContextLength = "Context", Tokenizer = PeftTokenizer.Gpt2)]
[Lora(Rank = 4, Alpha = 8, Dropout = 0.05)]
public partial class TinyGptLoraRank4 : Gpt2LMHeadModel { }

/// <summary>Tiny with LoRA rank 64 (rank scaling).</summary>
[PeftModel(typeof(TinyConfig), ContextLength = "Context", Tokenizer = PeftTokenizer.Gpt2)]
[Lora(Rank = 64, Alpha = 128, Dropout = 0.05)]
public partial class TinyGptLoraRank64 : Gpt2LMHeadModel { }

/// <summary>Narrow (d 128), every weight trains.</summary>
[PeftModel(typeof(NarrowConfig), ContextLength = "Context", Tokenizer = PeftTokenizer.Gpt2)]
[Trainable]
public partial class NarrowGptFull : Gpt2LMHeadModel
{
    partial void OnCreated() => GptInit.Apply(this, Dims.Layers);
}

/// <summary>Narrow (d 128) with LoRA r = 16.</summary>
[PeftModel(typeof(NarrowConfig), ContextLength = "Context", Tokenizer = PeftTokenizer.Gpt2)]
[Lora(Rank = 16, Alpha = 32, Dropout = 0.05)]
public partial class NarrowGptLora : Gpt2LMHeadModel { }

/// <summary>Wide (d 512), every weight trains.</summary>
[PeftModel(typeof(WideConfig), ContextLength = "Context", Tokenizer = PeftTokenizer.Gpt2)]
[Trainable]
public partial class WideGptFull : Gpt2LMHeadModel
{
    partial void OnCreated() => GptInit.Apply(this, Dims.Layers);
}

/// <summary>Wide (d 512) with LoRA r = 16.</summary>
[PeftModel(typeof(WideConfig), ContextLength = "Context", Tokenizer = PeftTokenizer.Gpt2)]
[Lora(Rank = 16, Alpha = 32, Dropout = 0.05)]
public partial class WideGptLora : Gpt2LMHeadModel { }
