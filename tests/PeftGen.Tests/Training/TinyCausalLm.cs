using System;
using PeftGen.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftGen.Tests.Training;

/// <summary>
/// A small hand-written causal LM for tests: token and position embeddings, one pre-norm block (single-head causal
/// attention + MLP, with dropout so that RNG state matters), final norm, untied head.
/// </summary>
public sealed class TinyCausalLm : nn.Module<Tensor, Tensor>, ICausalLanguageModel
{
    private readonly Embedding tok_emb;
    private readonly Embedding pos_emb;
    private readonly LayerNorm ln_1;
    private readonly Linear qkv;
    private readonly Linear proj;
    private readonly LayerNorm ln_2;
    private readonly Linear fc;
    private readonly Linear fc_out;
    private readonly LayerNorm ln_f;
    private readonly Dropout drop;
    private readonly Parameter head;

    public TinyCausalLm(long vocab = 64, long dim = 16, long context = 32, double dropout = 0.1, long seed = 1234)
        : base(nameof(TinyCausalLm))
    {
        manual_seed(seed);
        Dim = dim;
        tok_emb = nn.Embedding(vocab, dim);
        pos_emb = nn.Embedding(context, dim);
        ln_1 = nn.LayerNorm(dim);
        qkv = nn.Linear(dim, 3 * dim);
        proj = nn.Linear(dim, dim);
        ln_2 = nn.LayerNorm(dim);
        fc = nn.Linear(dim, 4 * dim);
        fc_out = nn.Linear(4 * dim, dim);
        ln_f = nn.LayerNorm(dim);
        drop = nn.Dropout(dropout);
        head = new Parameter(randn(vocab, dim) * 0.1);
        RegisterComponents();
    }

    public long Dim { get; }

    public Tensor HeadWeight => head;

    public Tensor ForwardHidden(Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        long seq = inputIds.shape[1];
        var positions = arange(seq, dtype: ScalarType.Int64, device: inputIds.device);
        var x = drop.call(tok_emb.call(inputIds) + pos_emb.call(positions));

        var qkvOut = qkv.call(ln_1.call(x)).chunk(3, -1);
        var scores = qkvOut[0].matmul(qkvOut[1].transpose(1, 2)) / Math.Sqrt(Dim);
        var future = ones(seq, seq, dtype: ScalarType.Bool, device: inputIds.device).triu(1);
        var attention = scores.masked_fill(future, double.NegativeInfinity).softmax(-1);
        x = x + drop.call(proj.call(attention.matmul(qkvOut[2])));
        x = x + drop.call(fc_out.call(nn.functional.gelu(fc.call(ln_2.call(x)))));
        return ln_f.call(x).MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        return ForwardHidden(inputIds).matmul(head.t()).MoveToOuterDisposeScope();
    }
}
