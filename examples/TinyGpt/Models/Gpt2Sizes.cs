using PeftGen;
using PeftGen.Architectures;

namespace TinyGpt.Models;

// GPT-2 small and medium from the package's architecture and configurations: a model is its attributes.

/// <summary>GPT-2 small with LoRA r = 8, alpha 16 on the fused attention projection, as PEFT's GPT-2 examples.</summary>
[PeftModel(typeof(Gpt2Small), ContextLength = "Context", Tokenizer = PeftTokenizer.Gpt2)]
[Lora(Rank = 8, Alpha = 16, Targets = ["c_attn"])]
public partial class Gpt2SmallLora : Gpt2LMHeadModel { }

/// <summary>GPT-2 medium with the same adapter configuration.</summary>
[PeftModel(typeof(Gpt2Medium), ContextLength = "Context", Tokenizer = PeftTokenizer.Gpt2)]
[Lora(Rank = 8, Alpha = 16, Targets = ["c_attn"])]
public partial class Gpt2MediumLora : Gpt2LMHeadModel { }
