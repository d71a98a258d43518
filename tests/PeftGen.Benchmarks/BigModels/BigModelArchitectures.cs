using PeftGen.Precision;
using PeftGen.Training;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Rotary = PeftGen.Architectures.Rotary;

namespace PeftGen.Benchmarks.BigModels;

// The big-model section's models: the Llama architecture at Llama-2-7B's and Llama-3.2-1B's shapes. The blocks repeat
// the Llama blocks in brief: they were written, and the published figures measured, before the architectures shipped
// in the package (PeftGen.Architectures); moving these models onto LlamaForCausalLM is the next step, with a re-run.

/// <summary>Llama-2-7B (meta-llama/Llama-2-7b-hf's config.json): 32 layers, 4096 wide, MLP 11008, 32 000 tokens, untied head.</summary>
public static class Llama2_7BShape
{
    public const int Vocab = 32000, Context = 4096, Width = 4096, Layers = 32, Heads = 32, KvHeads = 32, Mlp = 11008;
    public const double RmsNormEps = 1e-5, RopeTheta = 10000.0;
}

/// <summary>Llama-2-7B's widths with 2 decoder layers: with <see cref="Llama2_7B4LayerShape"/>, the per-layer figures that extrapolate to 32.</summary>
public static class Llama2_7B2LayerShape
{
    public const int Vocab = 32000, Context = 4096, Width = 4096, Layers = 2, Heads = 32, KvHeads = 32, Mlp = 11008;
    public const double RmsNormEps = 1e-5, RopeTheta = 10000.0;
}

/// <summary>Llama-2-7B's widths with 4 decoder layers.</summary>
public static class Llama2_7B4LayerShape
{
    public const int Vocab = 32000, Context = 4096, Width = 4096, Layers = 4, Heads = 32, KvHeads = 32, Mlp = 11008;
    public const double RmsNormEps = 1e-5, RopeTheta = 10000.0;
}

/// <summary>Llama-3.2-1B (meta-llama/Llama-3.2-1B's config.json): 16 layers, 2048 wide, 32 heads over 8 key/value heads, 128 256 tokens, tied head.</summary>
public static class Llama32_1BShape
{
    public const int Vocab = 128256, Context = 131072, Width = 2048, Layers = 16, Heads = 32, KvHeads = 8, Mlp = 8192;
    public const double RmsNormEps = 1e-5, RopeTheta = 500000.0;
}

/// <summary>QLoRA as the paper sets it up: every decoder projection NF4, LoRA r = 16 on q and v; <c>lm_head</c> float32.</summary>
[PeftModel(typeof(Llama2_7BShape), ContextLength = "Context")]
[Lora(Rank = 16, Alpha = 32, Targets = ["q_proj", "v_proj"])]
[Quantize4Bit]
public partial class Llama2_7BQLora : LlamaCausalLm
{
    [Block] public partial LlamaTrunk model { get; }
    [Linear("Width", "Vocab", Bias = false)] public partial LoraLinear lm_head { get; }

    protected override LlamaTrunk Trunk => model;

    public override Tensor HeadWeight => lm_head.Weight;
}

/// <summary><see cref="Llama2_7BQLora"/> with 2 decoder layers.</summary>
[PeftModel(typeof(Llama2_7B2LayerShape), ContextLength = "Context")]
[Lora(Rank = 16, Alpha = 32, Targets = ["q_proj", "v_proj"])]
[Quantize4Bit]
public partial class Llama2_7B2LayerQLora : LlamaCausalLm
{
    [Block] public partial LlamaTrunk model { get; }
    [Linear("Width", "Vocab", Bias = false)] public partial LoraLinear lm_head { get; }

    protected override LlamaTrunk Trunk => model;

    public override Tensor HeadWeight => lm_head.Weight;
}

/// <summary><see cref="Llama2_7BQLora"/> with 4 decoder layers.</summary>
[PeftModel(typeof(Llama2_7B4LayerShape), ContextLength = "Context")]
[Lora(Rank = 16, Alpha = 32, Targets = ["q_proj", "v_proj"])]
[Quantize4Bit]
public partial class Llama2_7B4LayerQLora : LlamaCausalLm
{
    [Block] public partial LlamaTrunk model { get; }
    [Linear("Width", "Vocab", Bias = false)] public partial LoraLinear lm_head { get; }

    protected override LlamaTrunk Trunk => model;

    public override Tensor HeadWeight => lm_head.Weight;
}

/// <summary>Llama-3.2-1B with <see cref="Llama2_7BQLora"/>'s setup; the head is the float32 token embedding.</summary>
[PeftModel(typeof(Llama32_1BShape), ContextLength = "Context")]
[Lora(Rank = 16, Alpha = 32, Targets = ["q_proj", "v_proj"])]
[Quantize4Bit]
public partial class Llama32_1BQLora : LlamaCausalLm
{
    [Block] public partial LlamaTrunk model { get; }

    protected override LlamaTrunk Trunk => model;
}

/// <summary>Llama-3.2-1B with LoRA r = 16 on q and v over frozen bases built in bfloat16 (<c>BaseDType</c>; the accounting counts them at 2 bytes).</summary>
[PeftModel(typeof(Llama32_1BShape), ContextLength = "Context", BaseDType = BaseDType.BFloat16)]
[Lora(Rank = 16, Alpha = 32, Targets = ["q_proj", "v_proj"])]
public partial class Llama32_1BLora : LlamaCausalLm
{
    [Block] public partial LlamaTrunk model { get; }

    protected override LlamaTrunk Trunk => model;
}

/// <summary>A Llama causal LM: the trunk, and a head that is the token embedding unless a model overrides <see cref="HeadWeight"/>.</summary>
public abstract class LlamaCausalLm(string name) : nn.Module<Tensor, Tensor>(name), ICausalLanguageModel
{
    /// <summary>The trunk (HF name <c>model</c>).</summary>
    protected abstract LlamaTrunk Trunk { get; }

    public virtual Tensor HeadWeight => Trunk.embed_tokens.Weight;

    public Tensor ForwardHidden(Tensor inputIds) => Trunk.forward(inputIds);

    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        return ForwardHidden(ids).matmul(HeadWeight.t()).MoveToOuterDisposeScope();
    }
}

[PeftModule]
public partial class LlamaTrunk : nn.Module<Tensor, Tensor>
{
    [Embedding("Vocab", "Width")] public partial TokenEmbedding embed_tokens { get; }
    [Stack("Layers")] public partial ModuleList<LlamaLayer> layers { get; }
    [RmsNorm("Width", EpsFrom = "RmsNormEps")] public partial RmsNorm norm { get; }

    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var x = embed_tokens.forward(ids);
        var (cos, sin) = Rotary.For(x, Dims.Width / Dims.Heads, Dims.RopeTheta);
        foreach (var layer in layers) x = layer.forward(x, cos, sin);
        return norm.forward(x).MoveToOuterDisposeScope();
    }
}

[PeftModule]
public partial class LlamaLayer : nn.Module<Tensor, Tensor>
{
    [RmsNorm("Width", EpsFrom = "RmsNormEps")] public partial RmsNorm input_layernorm { get; }
    [Block] public partial LlamaAttention self_attn { get; }
    [RmsNorm("Width", EpsFrom = "RmsNormEps")] public partial RmsNorm post_attention_layernorm { get; }
    [Block] public partial LlamaMlp mlp { get; }

    public Tensor forward(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        x = x + self_attn.forward(input_layernorm.forward(x), cos, sin);
        return (x + mlp.forward(post_attention_layernorm.forward(x))).MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var (cos, sin) = Rotary.For(x, Dims.Width / Dims.Heads, Dims.RopeTheta);
        return forward(x, cos, sin).MoveToOuterDisposeScope();
    }
}

/// <summary>Causal self-attention with rotary positions and grouped key/value heads.</summary>
[PeftModule]
public partial class LlamaAttention : nn.Module<Tensor, Tensor>
{
    [Linear("Width", "Width", Bias = false)] public partial LoraLinear q_proj { get; }
    [Linear("Width", "KvHeads * Width / Heads", Bias = false)] public partial LoraLinear k_proj { get; }
    [Linear("Width", "KvHeads * Width / Heads", Bias = false)] public partial LoraLinear v_proj { get; }
    [Linear("Width", "Width", Bias = false)] public partial LoraLinear o_proj { get; }

    public Tensor forward(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        long batch = x.shape[0], seq = x.shape[1], heads = Dims.Heads, kvHeads = Dims.KvHeads, headDim = Dims.Width / heads;
        Tensor Heads(Tensor t, long count) => t.view(batch, seq, count, headDim).transpose(1, 2);
        var q = Rotary.Apply(Heads(q_proj.forward(x), heads), cos, sin);
        var k = Rotary.Apply(Heads(k_proj.forward(x), kvHeads), cos, sin);
        var v = Heads(v_proj.forward(x), kvHeads);
        if (kvHeads != heads)
        {
            k = k.repeat_interleave(heads / kvHeads, dim: 1);
            v = v.repeat_interleave(heads / kvHeads, dim: 1);
        }
        var y = nn.functional.scaled_dot_product_attention(ComputePrecision.Cast(q), ComputePrecision.Cast(k), ComputePrecision.Cast(v), is_casual: true);
        return o_proj.forward(y.transpose(1, 2).contiguous().view(batch, seq, heads * headDim)).MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var (cos, sin) = Rotary.For(x, Dims.Width / Dims.Heads, Dims.RopeTheta);
        return forward(x, cos, sin).MoveToOuterDisposeScope();
    }
}

/// <summary>SwiGLU: <c>down(silu(gate(x)) · up(x))</c>.</summary>
[PeftModule]
public partial class LlamaMlp : nn.Module<Tensor, Tensor>
{
    [Linear("Width", "Mlp", Bias = false)] public partial LoraLinear gate_proj { get; }
    [Linear("Width", "Mlp", Bias = false)] public partial LoraLinear up_proj { get; }
    [Linear("Mlp", "Width", Bias = false)] public partial LoraLinear down_proj { get; }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return down_proj.forward(nn.functional.silu(gate_proj.forward(x)) * up_proj.forward(x)).MoveToOuterDisposeScope();
    }
}
