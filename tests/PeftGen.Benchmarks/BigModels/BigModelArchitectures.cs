using PeftGen.Architectures;

namespace PeftGen.Benchmarks.BigModels;

// The big-model section's models: the package's Llama architecture (PeftGen.Architectures) at Llama-2-7B's and
// Llama-3.2-1B's shapes, declared as [PeftModel] classes like a user's.

/// <summary>Llama-2-7B's widths with 2 decoder layers: with <see cref="Llama2_7B4LayerShape"/>, the per-layer figures that extrapolate to 32.</summary>
public static class Llama2_7B2LayerShape
{
    public const int Vocab = Llama2_7B.Vocab, Context = Llama2_7B.Context, Width = Llama2_7B.Width, Layers = 2, Heads = Llama2_7B.Heads, KvHeads = Llama2_7B.KvHeads, Mlp = Llama2_7B.Mlp;
    public const double RmsNormEps = Llama2_7B.RmsNormEps, RopeTheta = Llama2_7B.RopeTheta;
    public const bool QkvBias = false, TieWordEmbeddings = false;
}

/// <summary>Llama-2-7B's widths with 4 decoder layers.</summary>
public static class Llama2_7B4LayerShape
{
    public const int Vocab = Llama2_7B.Vocab, Context = Llama2_7B.Context, Width = Llama2_7B.Width, Layers = 4, Heads = Llama2_7B.Heads, KvHeads = Llama2_7B.KvHeads, Mlp = Llama2_7B.Mlp;
    public const double RmsNormEps = Llama2_7B.RmsNormEps, RopeTheta = Llama2_7B.RopeTheta;
    public const bool QkvBias = false, TieWordEmbeddings = false;
}

/// <summary>Llama-3.2-1B (meta-llama/Llama-3.2-1B's config.json): 16 layers, 2048 wide, 32 heads over 8 key/value heads, 128 256 tokens, tied head.</summary>
public static class Llama32_1BShape
{
    public const int Vocab = 128256, Context = 131072, Width = 2048, Layers = 16, Heads = 32, KvHeads = 8, Mlp = 8192;
    public const double RmsNormEps = 1e-5, RopeTheta = 500000.0;
    public const bool QkvBias = false, TieWordEmbeddings = true;
}

/// <summary>QLoRA as the paper sets it up: every decoder projection NF4, LoRA r = 16 on q and v; <c>lm_head</c> float32.</summary>
[PeftModel(typeof(Llama2_7B), ContextLength = "Context")]
[Lora(Rank = 16, Alpha = 32, Targets = ["q_proj", "v_proj"])]
[Quantize4Bit]
public partial class Llama2_7BQLora : LlamaForCausalLM { }

/// <summary><see cref="Llama2_7BQLora"/> with 2 decoder layers.</summary>
[PeftModel(typeof(Llama2_7B2LayerShape), ContextLength = "Context")]
[Lora(Rank = 16, Alpha = 32, Targets = ["q_proj", "v_proj"])]
[Quantize4Bit]
public partial class Llama2_7B2LayerQLora : LlamaForCausalLM { }

/// <summary><see cref="Llama2_7BQLora"/> with 4 decoder layers.</summary>
[PeftModel(typeof(Llama2_7B4LayerShape), ContextLength = "Context")]
[Lora(Rank = 16, Alpha = 32, Targets = ["q_proj", "v_proj"])]
[Quantize4Bit]
public partial class Llama2_7B4LayerQLora : LlamaForCausalLM { }

/// <summary>Llama-3.2-1B with <see cref="Llama2_7BQLora"/>'s setup; the head is the float32 token embedding.</summary>
[PeftModel(typeof(Llama32_1BShape), ContextLength = "Context")]
[Lora(Rank = 16, Alpha = 32, Targets = ["q_proj", "v_proj"])]
[Quantize4Bit]
public partial class Llama32_1BQLora : TiedLlamaForCausalLM { }

/// <summary>Llama-3.2-1B with LoRA r = 16 on q and v over frozen bases built in bfloat16 (<c>BaseDType</c>; the accounting counts them at 2 bytes).</summary>
[PeftModel(typeof(Llama32_1BShape), ContextLength = "Context", BaseDType = BaseDType.BFloat16)]
[Lora(Rank = 16, Alpha = 32, Targets = ["q_proj", "v_proj"])]
public partial class Llama32_1BLora : TiedLlamaForCausalLM { }
