using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using PeftGen.Training;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftGen.Tests.SoftPrompt;

/// <summary>
/// A hand-written one-block causal LM over a <see cref="TokenEmbedding"/>: learned positions taken from
/// <c>arange(h.shape[1])</c>, pre-norm multi-head attention with a causal and padding mask, an MLP and a head.
/// It knows nothing about soft prompts beyond lengthening the mask and dropping the virtual outputs, which is all a
/// model needs to do.
/// </summary>
internal sealed class TinyPromptLm : nn.Module<Tensor, Tensor?, Tensor>, IPeftModel, ICausalLanguageModel
{
    private readonly long heads;
    private readonly TokenEmbedding wte;
    private readonly Parameter wpe;
    private readonly LayerNorm ln_1;
    private readonly nn.Module<Tensor, Tensor> c_attn;
    private readonly Linear c_proj;
    private readonly LayerNorm ln_2;
    private readonly Linear c_fc;
    private readonly Linear c_out;
    private readonly LayerNorm ln_f;
    private readonly Linear lm_head;

    /// <param name="loraRank">When positive, the attention's input projection is a <see cref="LoraLinear"/> with a
    /// trainable adapter "default" of this rank.</param>
    public TinyPromptLm(long vocab, long dim, long context, long heads = 2, ScalarType dtype = ScalarType.Float32, int loraRank = 0)
        : base(nameof(TinyPromptLm))
    {
        this.heads = heads;
        // Small embeddings, as GPT-2 initialises them, so the block's output is not drowned in the residual stream.
        wte = new TokenEmbedding(vocab, dim, dtype: dtype);
        using (no_grad()) wte.Weight.mul_(0.1);
        wpe = new Parameter(randn(new[] { context, dim }, dtype: dtype).mul_(0.1), requires_grad: false);
        ln_1 = nn.LayerNorm(dim, dtype: dtype);
        if (loraRank > 0)
        {
            var projection = new LoraLinear(dim, 3 * dim, dtype: dtype);
            projection.AddAdapter("default", new LoraConfig(loraRank, 2 * loraRank));
            c_attn = projection;
        }
        else
        {
            c_attn = nn.Linear(dim, 3 * dim, dtype: dtype);
        }
        c_proj = nn.Linear(dim, dim, dtype: dtype);
        ln_2 = nn.LayerNorm(dim, dtype: dtype);
        c_fc = nn.Linear(dim, 4 * dim, dtype: dtype);
        c_out = nn.Linear(4 * dim, dim, dtype: dtype);
        ln_f = nn.LayerNorm(dim, dtype: dtype);
        lm_head = nn.Linear(dim, vocab, hasBias: false, dtype: dtype);
        // A head as sharp as a trained model's (torch's default init caps logits near ±2, and with them how far any
        // loss can fall).
        using (no_grad()) lm_head.weight!.mul_(4);
        RegisterComponents();
        Dims = new ModelDims(new Dictionary<string, long> { ["Vocab"] = vocab, ["Dim"] = dim, ["Context"] = context });
        Layers = new[] { new PeftLayer("wte", PeftLayerKind.TokenEmbedding, wte, WeightLayout.OutIn, Trainable: false) };
        foreach (var (name, p) in named_parameters())
        {
            if (!name.StartsWith("wte.soft_prompts.", StringComparison.Ordinal) && !name.Contains(".lora_", StringComparison.Ordinal))
                p.requires_grad = false;
        }
    }

    public TokenEmbedding Embedding => wte;

    public ModelDims Dims { get; }

    public IReadOnlyList<PeftLayer> Layers { get; }

    /// <summary>Logits for the real tokens only (<c>batch × T × vocab</c>); <paramref name="paddingMask"/> is <c>batch × T</c>, 1 = real.</summary>
    public override Tensor forward(Tensor tokenIds, Tensor? paddingMask)
    {
        using var scope = NewDisposeScope();
        var h = wte.forward(tokenIds);
        var mask = paddingMask is null ? null : wte.ExtendAttentionMask(paddingMask);
        var logits = FromEmbeddings(h, mask);
        return wte.DropVirtualTokens(logits).MoveToOuterDisposeScope();
    }

    public Tensor HeadWeight => lm_head.weight!;

    /// <summary>Final hidden states of the real tokens (what <see cref="TextGenerator"/> reads).</summary>
    public Tensor ForwardHidden(Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        return wte.DropVirtualTokens(Hidden(wte.forward(inputIds), null)).MoveToOuterDisposeScope();
    }

    /// <summary>Logits for every position of already-embedded input (<c>batch × L × dim</c>, mask <c>batch × L</c>).</summary>
    public Tensor FromEmbeddings(Tensor h, Tensor? keyMask)
    {
        using var scope = NewDisposeScope();
        return lm_head.forward(Hidden(h, keyMask)).MoveToOuterDisposeScope();
    }

    private Tensor Hidden(Tensor h, Tensor? keyMask)
    {
        using var scope = NewDisposeScope();
        var length = h.shape[1];
        h = h + wpe.index_select(0, arange(length, dtype: ScalarType.Int64, device: h.device)).unsqueeze(0);
        h = h + Attention(ln_1.forward(h), keyMask);
        h = h + c_out.forward(nn.functional.gelu(c_fc.forward(ln_2.forward(h))));
        return ln_f.forward(h).MoveToOuterDisposeScope();
    }

    private Tensor Attention(Tensor x, Tensor? keyMask)
    {
        long batch = x.shape[0], length = x.shape[1], dim = x.shape[2], headDim = dim / heads;
        var qkv = c_attn.forward(x).split(dim, 2);
        Tensor Heads(Tensor t) => t.view(batch, length, heads, headDim).transpose(1, 2);
        var (q, k, v) = (Heads(qkv[0]), Heads(qkv[1]), Heads(qkv[2]));
        var scores = q.matmul(k.transpose(-2, -1)).div(Math.Sqrt(headDim));
        var allowed = ones(length, length, dtype: ScalarType.Bool, device: x.device).tril().view(1, 1, length, length);
        if (keyMask is not null) allowed = allowed.logical_and(keyMask.to(ScalarType.Bool).view(batch, 1, 1, length));
        scores = scores.masked_fill(allowed.logical_not(), double.NegativeInfinity);
        var y = scores.softmax(-1).matmul(v).transpose(1, 2).contiguous().view(batch, length, dim);
        return c_proj.forward(y);
    }

    /// <summary>Hashes of every base tensor (not a soft prompt, not a LoRA adapter).</summary>
    public Dictionary<string, string> BaseHashes() => named_parameters()
        .Where(p => !p.name.StartsWith("wte.soft_prompts.", StringComparison.Ordinal) && !p.name.Contains(".lora_", StringComparison.Ordinal))
        .ToDictionary(p => p.name, p => Support.TensorHash.Of(p.parameter));
}
