using PeftGen.Training;
using PeftGen.Inference;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftGen.Architectures;

// GPT-2, with Hugging Face's GPT2LMHeadModel member names (transformer.h.N.attn.c_attn …), so its checkpoints and PEFT
// adapters fit. A model is a configuration type and a class deriving from Gpt2LMHeadModel:
//
//     [PeftModel(typeof(Gpt2Small), ContextLength = "Context", Tokenizer = PeftTokenizer.Gpt2)]
//     [Lora(Rank = 8, Alpha = 16, Targets = ["c_attn"])]
//     public partial class MyGpt2 : Gpt2LMHeadModel { }
//
// The configuration declares Vocab, Context, Width, Layers and Heads.

/// <summary>GPT-2's trunk (HF <c>GPT2Model</c>, member <c>transformer</c>): token and position embeddings, N blocks, final norm.</summary>
[PeftModule]
public partial class Gpt2Model : nn.Module<Tensor, Tensor>
{
    /// <summary>Token embedding (<c>wte</c>, <c>Vocab × Width</c>); soft prompts attach here.</summary>
    [Embedding("Vocab", "Width")] public partial TokenEmbedding wte { get; }
    /// <summary>Learned position embedding (<c>wpe</c>, <c>Context × Width</c>).</summary>
    [Embedding("Context", "Width")] public partial Embedding wpe { get; }
    /// <summary>The transformer blocks (<c>h.N</c>).</summary>
    [Stack("Layers")] public partial ModuleList<Gpt2Block> h { get; }
    /// <summary>Final layer norm (<c>ln_f</c>).</summary>
    [LayerNorm("Width")] public partial LayerNorm ln_f { get; }

    /// <summary>Token ids (<c>batch × seq</c>) to final hidden states of the real tokens (<c>batch × seq × Width</c>).</summary>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var x = wte.forward(ids); // a soft prompt, when one is active, is prepended here
        // Positions continue after what a KV cache holds (0 without one), each row's from its first real token.
        x = x + wpe.forward(KeyValueCache.PositionIds(x.shape[1], x.device));
        foreach (var block in h) x = block.forward(x);
        return wte.DropVirtualTokens(ln_f.forward(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>GPT-2's pre-norm transformer block (HF <c>GPT2Block</c>).</summary>
[PeftModule]
public partial class Gpt2Block : nn.Module<Tensor, Tensor>
{
    /// <summary>Layer norm before attention (<c>ln_1</c>).</summary>
    [LayerNorm("Width")] public partial LayerNorm ln_1 { get; }
    /// <summary>Self-attention (<c>attn</c>).</summary>
    [Block] public partial Gpt2Attention attn { get; }
    /// <summary>Layer norm before the MLP (<c>ln_2</c>).</summary>
    [LayerNorm("Width")] public partial LayerNorm ln_2 { get; }
    /// <summary>The MLP (<c>mlp</c>).</summary>
    [Block] public partial Gpt2Mlp mlp { get; }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        x = x + attn.forward(ln_1.forward(x));
        x = x + mlp.forward(ln_2.forward(x));
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>Causal multi-head self-attention with GPT-2's fused query/key/value projection (Conv1D layout in checkpoints).</summary>
[PeftModule]
public partial class Gpt2Attention : nn.Module<Tensor, Tensor>
{
    /// <summary>Fused query/key/value projection (<c>c_attn</c>, Width → 3·Width; Conv1D layout in checkpoints).</summary>
    [Linear("Width", "3 * Width", CheckpointLayout = WeightLayout.InOut)] public partial LoraLinear c_attn { get; }
    /// <summary>Output projection (<c>c_proj</c>; Conv1D layout in checkpoints).</summary>
    [Linear("Width", "Width", CheckpointLayout = WeightLayout.InOut)] public partial LoraLinear c_proj { get; }

    /// <summary>Attention over the whole sequence.</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long batch = x.shape[0], seq = x.shape[1], width = x.shape[2];
        var heads = Dims["Heads"];
        var qkv = c_attn.forward(x).split(width, dim: 2);
        var q = qkv[0].view(batch, seq, heads, width / heads).transpose(1, 2);
        var k = qkv[1].view(batch, seq, heads, width / heads).transpose(1, 2);
        var v = qkv[2].view(batch, seq, heads, width / heads).transpose(1, 2);
        // With a KV cache in use, this call's keys and values join the cached ones (generation feeds one token per step).
        (k, v) = KeyValueCache.Extend(this, k, v);
        var y = CausalAttention.Attend(q, k, v);
        y = y.transpose(1, 2).contiguous().view(batch, seq, width);
        return c_proj.forward(y).MoveToOuterDisposeScope();
    }
}

/// <summary>GPT-2's MLP (HF <c>GPT2MLP</c>): expand ×4, GELU (tanh approximation), project back.</summary>
[PeftModule]
public partial class Gpt2Mlp : nn.Module<Tensor, Tensor>
{
    /// <summary>Expanding projection (<c>c_fc</c>, Width → 4·Width; Conv1D layout in checkpoints).</summary>
    [Linear("Width", "4 * Width", CheckpointLayout = WeightLayout.InOut)] public partial LoraLinear c_fc { get; }
    /// <summary>Output projection (<c>c_proj</c>; Conv1D layout in checkpoints).</summary>
    [Linear("4 * Width", "Width", CheckpointLayout = WeightLayout.InOut)] public partial LoraLinear c_proj { get; }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var hidden = GeluTanh.Apply(c_fc.forward(x));
        return c_proj.forward(hidden).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// GPT-2's causal language model (HF <c>GPT2LMHeadModel</c>): the trunk <c>transformer</c> and a head tied to the
/// token embedding, as GPT-2's checkpoints have no separate <c>lm_head</c> weight. Derive a <c>[PeftModel]</c> class from it.
/// </summary>
[PeftModule]
public abstract partial class Gpt2LMHeadModel : nn.Module<Tensor, Tensor>, ICausalLanguageModel
{
    /// <summary>The trunk (<c>transformer</c>).</summary>
    [Block] public partial Gpt2Model transformer { get; }

    /// <inheritdoc />
    public Tensor ForwardHidden(Tensor inputIds) => transformer.forward(inputIds);

    /// <inheritdoc />
    public Tensor HeadWeight => transformer.wte.Weight;

    /// <inheritdoc />
    public bool SupportsLeftPadding => true;

    /// <summary>Logits for every real token (<c>batch × seq × Vocab</c>).</summary>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        return ForwardHidden(ids).matmul(HeadWeight.t()).MoveToOuterDisposeScope();
    }
}

/// <summary>GPT-2 small (124M): 12 layers, 768 wide (openai-community/gpt2's config.json).</summary>
public static class Gpt2Small
{
    /// <summary>Vocabulary, context, width, layers and heads.</summary>
    public const int Vocab = 50257, Context = 1024, Width = 768, Layers = 12, Heads = 12;
}

/// <summary>GPT-2 medium (355M): 24 layers, 1024 wide (openai-community/gpt2-medium's config.json).</summary>
public static class Gpt2Medium
{
    /// <summary>Vocabulary, context, width, layers and heads.</summary>
    public const int Vocab = 50257, Context = 1024, Width = 1024, Layers = 24, Heads = 16;
}
