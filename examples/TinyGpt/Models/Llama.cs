using PeftGen;
using PeftGen.Architectures;

namespace TinyGpt.Models;

// Llama models from the package's architecture (PeftGen.Architectures: LlamaForCausalLM and its blocks, Hugging Face's
// member names) and configurations.

/// <summary>A Llama small enough for tests and CPU runs, with grouped-query attention (2 key/value heads for 4 query heads).</summary>
public static class TinyLlamaConfig
{
    public const int Vocab = 512, Context = 128, Width = 64, Layers = 2, Heads = 4, KvHeads = 2, Mlp = 160;
    public const double RmsNormEps = 1e-5, RopeTheta = 10000.0;
    public const bool QkvBias = false;
}

/// <summary>Llama-2-7B with LoRA r = 8, alpha 16 on the query and value projections (PEFT's defaults for Llama).</summary>
[PeftModel(typeof(Llama2_7B), ContextLength = "Context")]
[Lora(Rank = 8, Alpha = 16, Targets = ["q_proj", "v_proj"])]
public partial class Llama2_7BLora : LlamaForCausalLM { }

/// <summary>The tiny Llama with the same adapter configuration, for tests and CPU runs.</summary>
[PeftModel(typeof(TinyLlamaConfig), ContextLength = "Context")]
[Lora(Rank = 8, Alpha = 16, Targets = ["q_proj", "v_proj"])]
public partial class TinyLlamaLora : LlamaForCausalLM { }
