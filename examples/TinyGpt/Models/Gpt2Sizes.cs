using PeftGen;

namespace TinyGpt.Models;

/// <summary>GPT-2 small (124M): 12 layers, 768 wide.</summary>
public static class Gpt2SmallConfig
{
    public const int Vocab = 50257, Context = 1024, Width = 768, Layers = 12, Heads = 12;
}

/// <summary>GPT-2 medium (355M): 24 layers, 1024 wide. Same blocks as GPT-2 small, other dimensions.</summary>
public static class Gpt2MediumConfig
{
    public const int Vocab = 50257, Context = 1024, Width = 1024, Layers = 24, Heads = 16;
}

/// <summary>GPT-2 small with LoRA r = 8, alpha 16 on the fused attention projection, as PEFT's GPT-2 examples.</summary>
[PeftModel(typeof(Gpt2SmallConfig), ContextLength = "Context", Tokenizer = PeftTokenizer.Gpt2)]
[Lora(Rank = 8, Alpha = 16, Targets = ["c_attn"])]
public partial class Gpt2SmallLora : GptLanguageModel
{
    [Block] public partial GptTrunk transformer { get; }

    /// <inheritdoc />
    protected override GptTrunk Trunk => transformer;
}

/// <summary>GPT-2 medium with the same adapter configuration.</summary>
[PeftModel(typeof(Gpt2MediumConfig), ContextLength = "Context", Tokenizer = PeftTokenizer.Gpt2)]
[Lora(Rank = 8, Alpha = 16, Targets = ["c_attn"])]
public partial class Gpt2MediumLora : GptLanguageModel
{
    [Block] public partial GptTrunk transformer { get; }

    /// <inheritdoc />
    protected override GptTrunk Trunk => transformer;
}
