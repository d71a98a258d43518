using PeftGen;
using PeftGen.Architectures;

namespace TinyGpt.Models;

/// <summary>
/// QLoRA on Llama-2-7B as the paper sets it up: every decoder projection in NF4 with double quantization, LoRA r = 16
/// on the query and value projections. The 4-bit projections are built in 4 bits (no float weight is ever allocated)
/// and filled by <see cref="PeftGen.Checkpoints.PretrainedLoader"/>; the output head <c>lm_head</c> stays float32, as
/// transformers keeps it, so <see cref="PeftGen.Training.PeftTrainer"/> can compute the loss with it.
/// </summary>
[PeftModel(typeof(Llama2_7B), ContextLength = "Context")]
[Lora(Rank = 16, Alpha = 32, Targets = ["q_proj", "v_proj"])]
[Quantize4Bit]
public partial class Llama2_7BQLora : LlamaForCausalLM { }

/// <summary><see cref="Llama2_7BQLora"/>'s setup on the tiny Llama, for tests and CPU runs.</summary>
[PeftModel(typeof(TinyLlamaConfig), ContextLength = "Context")]
[Lora(Rank = 16, Alpha = 32, Targets = ["q_proj", "v_proj"])]
[Quantize4Bit]
public partial class TinyLlamaQLora : LlamaForCausalLM { }
