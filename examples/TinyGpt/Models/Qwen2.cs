using PeftGen;
using PeftGen.Architectures;

namespace TinyGpt.Models;

// Qwen2 from the package's architecture: the Llama blocks read Qwen2's q/k/v bias, norm epsilon and rotary base from
// the configuration, so a Qwen2 model is a configuration and a few lines.

/// <summary>A Qwen2 small enough for tests and CPU runs: the tiny Llama's sizes with Qwen2's settings.</summary>
public static class TinyQwen2Config
{
    public const int Vocab = 512, Context = 128, Width = 64, Layers = 2, Heads = 4, KvHeads = 2, Mlp = 160;
    public const double RmsNormEps = 1e-6, RopeTheta = 1000000.0;
    public const bool QkvBias = true;
}

/// <summary>Qwen2-7B with LoRA r = 8, alpha 16 on the query and value projections.</summary>
[PeftModel(typeof(Qwen2_7B), ContextLength = "Context")]
[Lora(Rank = 8, Alpha = 16, Targets = ["q_proj", "v_proj"])]
public partial class Qwen2_7BLora : Qwen2ForCausalLM { }

/// <summary>Qwen2.5-0.5B (head tied to the token embedding) with LoRA r = 16 on the query and value projections.</summary>
[PeftModel(typeof(Qwen25_0_5B), ContextLength = "Context")]
[Lora(Rank = 16, Alpha = 32, Targets = ["q_proj", "v_proj"])]
public partial class Qwen25_0_5BLora : TiedQwen2ForCausalLM { }

/// <summary>The tiny Qwen2 with the same adapter configuration as Qwen2-7B's, for tests and CPU runs.</summary>
[PeftModel(typeof(TinyQwen2Config), ContextLength = "Context")]
[Lora(Rank = 8, Alpha = 16, Targets = ["q_proj", "v_proj"])]
public partial class TinyQwen2Lora : Qwen2ForCausalLM { }
