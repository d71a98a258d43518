using System;
using TorchSharp;
using PeftGen.Tests.Support;
using PeftGen.Training;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Training;

public sealed class ChunkedLossTests
{
    /// <summary>Unchunked loss with the full logits, as a plain TorchSharp loop would compute it.</summary>
    internal static Tensor NaiveMeanLoss(Tensor hidden, Tensor weight, Tensor labels)
    {
        long seq = hidden.shape[1];
        var logits = hidden.matmul(weight.t()).narrow(1, 0, seq - 1).reshape(-1, weight.shape[0]);
        var targets = labels.narrow(1, 1, seq - 1).reshape(-1);
        return nn.functional.cross_entropy(logits, targets, ignore_index: CausalLmLoss.IgnoreIndex);
    }

    internal static Tensor RandomLabels(long batch, long seq, long vocab, int seed)
    {
        var generator = new Generator((ulong)seed);
        var labels = randint(0, vocab, new[] { batch, seq }, generator: generator);
        // Roughly a third of the positions are ignored (prompt, padding).
        var ignored = rand(new[] { batch, seq }, generator: generator).lt(0.35);
        return labels.masked_fill(ignored, CausalLmLoss.IgnoreIndex);
    }

    [Fact]
    public void A_frozen_bfloat16_head_under_float32_compute_matches_the_float64_reference_of_its_stored_values()
    {
        using var scope = NewDisposeScope();
        manual_seed(12);
        long batch = 2, seq = 9, dim = 12, vocab = 50;
        var hidden = randn(batch, seq, dim).requires_grad_(true);
        var head = (randn(vocab, dim) * 0.5).to(ScalarType.BFloat16);
        var labels = RandomLabels(batch, seq, vocab, 6);

        var loss = CausalLmLoss.Mean(hidden, head, labels, chunkSize: 7);
        loss.backward();
        var hidden64 = hidden.detach().to(ScalarType.Float64).requires_grad_(true);
        var reference = NaiveMeanLoss(hidden64, head.to(ScalarType.Float64), labels);
        reference.backward();

        Assert.Equal(ScalarType.Float32, loss.dtype);
        Assert.True(Reference.RelativeError(loss, reference) < 1e-6);
        Assert.True(Reference.RelativeError(hidden.grad!, hidden64.grad!) < 1e-5);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(256)]
    public void Loss_and_gradients_match_the_naive_loss_and_a_float64_reference(int chunkSize)
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        long batch = 3, seq = 9, dim = 12, vocab = 50;
        var hidden0 = randn(batch, seq, dim);
        var weight0 = randn(vocab, dim) * 0.5;
        var labels = RandomLabels(batch, seq, vocab, 5);

        (Tensor loss, Tensor gradHidden, Tensor gradWeight) Run(Func<Tensor, Tensor, Tensor> lossOf, ScalarType dtype)
        {
            var h = hidden0.to(dtype).detach().requires_grad_(true);
            var w = weight0.to(dtype).detach().requires_grad_(true);
            var loss = lossOf(h, w);
            loss.backward();
            return (loss.detach(), h.grad!.detach(), w.grad!.detach());
        }

        var chunked = Run((h, w) => CausalLmLoss.Mean(h, w, labels, chunkSize), ScalarType.Float32);
        var naive = Run((h, w) => NaiveMeanLoss(h, w, labels), ScalarType.Float32);
        var reference = Run((h, w) => NaiveMeanLoss(h, w, labels), ScalarType.Float64);

        Assert.True(Reference.RelativeError(chunked.loss, reference.loss) < 1e-6);
        Assert.True(Reference.RelativeError(chunked.gradHidden, reference.gradHidden) < 1e-5);
        Assert.True(Reference.RelativeError(chunked.gradWeight, reference.gradWeight) < 1e-5);
        Assert.True(Reference.RelativeError(chunked.loss, naive.loss) < 1e-6);
        Assert.True(Reference.RelativeError(chunked.gradHidden, naive.gradHidden) < 1e-5);
        Assert.True(Reference.RelativeError(chunked.gradWeight, naive.gradWeight) < 1e-5);
        // Unlabelled positions get no gradient at all.
        var ignoredNext = labels.narrow(1, 1, seq - 1).eq(CausalLmLoss.IgnoreIndex);
        var gradOfIgnored = chunked.gradHidden.narrow(1, 0, seq - 1).abs().sum(-1).masked_select(ignoredNext);
        Assert.Equal(0.0, gradOfIgnored.sum().item<float>());
    }

    [Fact]
    public void Gradients_flow_through_the_model_and_scale_with_the_upstream_gradient()
    {
        using var scope = NewDisposeScope();
        var model = new TinyCausalLm(dropout: 0);
        var ids = randint(0, 64, new long[] { 2, 10 });
        var labels = ids.clone();
        labels[0, 0] = tensor(CausalLmLoss.IgnoreIndex);

        Tensor[] GradsOf(Func<Tensor, Tensor> lossOf)
        {
            model.zero_grad();
            lossOf(model.ForwardHidden(ids)).backward();
            var parameters = model.parameters();
            var grads = new System.Collections.Generic.List<Tensor>();
            foreach (var p in parameters) grads.Add(p.grad!.clone());
            return grads.ToArray();
        }

        var chunked = GradsOf(h => CausalLmLoss.Mean(h, model.HeadWeight, labels, 4) * 3.0);
        var naive = GradsOf(h => NaiveMeanLoss(h, model.HeadWeight, labels) * 3.0);
        Assert.Equal(naive.Length, chunked.Length);
        for (int i = 0; i < naive.Length; i++)
            Assert.True(Reference.RelativeError(chunked[i], naive[i]) < 1e-5, $"parameter {i}");
    }

    [Fact]
    public void Without_grad_it_only_computes_the_loss_and_a_frozen_head_gets_none()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var hidden = randn(2, 5, 8).requires_grad_(true);
        var weight = randn(20, 8);
        var labels = randint(0, 20, new long[] { 2, 5 });
        var loss = CausalLmLoss.Mean(hidden, weight, labels, 3);
        loss.backward();
        Assert.NotNull(hidden.grad);
        Assert.Null(weight.grad);
        using (no_grad())
        {
            var evalLoss = CausalLmLoss.Mean(hidden, weight, labels, 3);
            Assert.False(evalLoss.requires_grad);
            Assert.Equal(loss.item<float>(), evalLoss.item<float>(), 6);
        }
    }
}

public sealed class ChunkedLossPrecisionTests
{
    /// <summary>
    /// Checks a loss and the gradients it left on <paramref name="hidden"/> and <paramref name="weight"/> against the
    /// unchunked loss on the same values in float64; returns the float64 loss.
    /// </summary>
    private static double AssertMatchesFloat64(Tensor loss, Tensor hidden, Tensor weight, Tensor labels, double lossTolerance, double gradientTolerance)
    {
        var h64 = hidden.detach().to(ScalarType.Float64).requires_grad_(true);
        var w64 = weight.detach().to(ScalarType.Float64).requires_grad_(true);
        var loss64 = ChunkedLossTests.NaiveMeanLoss(h64, w64, labels);
        loss64.backward();
        Assert.True(Reference.RelativeError(loss, loss64) < lossTolerance);
        Assert.True(Reference.RelativeError(hidden.grad!, h64.grad!) < gradientTolerance);
        Assert.True(Reference.RelativeError(weight.grad!, w64.grad!) < gradientTolerance);
        return loss64.item<double>();
    }

    [Fact]
    public void Bfloat16_hidden_states_use_float32_softmax_and_stay_close_to_float64()
    {
        using var scope = NewDisposeScope();
        manual_seed(17);
        var hidden = randn(2, 6, 16);
        var weight = randn(40, 16) * 0.3;
        var labels = randint(0, 40, new long[] { 2, 6 });

        var h16 = hidden.to(ScalarType.BFloat16).requires_grad_(true);
        var w16 = weight.to(ScalarType.BFloat16).requires_grad_(true);
        var loss16 = CausalLmLoss.Mean(h16, w16, labels, 4);
        loss16.backward();
        Assert.Equal(ScalarType.BFloat16, loss16.dtype);
        Assert.Equal(ScalarType.BFloat16, h16.grad!.dtype);

        // Reference: the unchunked loss on the same bf16-rounded inputs, in float64.
        AssertMatchesFloat64(loss16, h16, w16, labels, 1e-2, 2e-2);
    }

    [Fact]
    public void Confident_logits_far_beyond_exp_range_give_the_float64_loss_and_gradients()
    {
        using var scope = NewDisposeScope();
        manual_seed(23);
        // Logits spread over thousands of nats: most probabilities underflow to 0 in float32, and the loss must still
        // be exact (no log of 0, no overflow), including rows whose target is extremely unlikely.
        var hidden = randn(2, 8, 16) * 30;
        var weight = randn(64, 16) * 10;
        var labels = randint(0, 64, new long[] { 2, 8 });
        var h = hidden.requires_grad_(true);
        var w = weight.clone().requires_grad_(true);
        var loss = CausalLmLoss.Mean(h, w, labels, 5);
        loss.backward();

        Assert.True(double.IsFinite(loss.item<float>()));
        var loss64 = AssertMatchesFloat64(loss, h, w, labels, 1e-5, 1e-4);
        Assert.True(loss64 > 100, "the test needs logits far beyond float32 exp range");
    }

    [Fact]
    public void A_reused_workspace_gives_the_same_loss_and_gradients_and_keeps_one_buffer()
    {
        using var scope = NewDisposeScope();
        manual_seed(29);
        var weight = randn(300, 24) * 0.3;
        using var workspace = new ChunkedCrossEntropy.Workspace();
        for (int call = 0; call < 3; call++)
        {
            // Different row counts each call: the last chunk is partial and the buffer serves them all.
            var hidden = randn(2, 7 + 4 * call, 24);
            var labels = randint(0, 300, new long[] { 2, 7 + 4 * call });
            (Tensor Loss, Tensor Grad) Run(ChunkedCrossEntropy.Workspace? w)
            {
                var h = hidden.detach().requires_grad_(true);
                var loss = CausalLmLoss.Sum(hidden: h, headWeight: weight, labels: labels, chunkSize: 5, workspace: w).Sum;
                loss.backward();
                return (loss.detach(), h.grad!.detach());
            }
            var reused = Run(workspace);
            var fresh = Run(null);
            Assert.Equal(fresh.Loss.item<float>(), reused.Loss.item<float>());
            Assert.True(fresh.Grad.eq(reused.Grad).all().item<bool>());
            Assert.Equal(5L * 300 * sizeof(float), workspace.Bytes);
        }
    }

    [Fact]
    public void Under_bfloat16_compute_a_reused_workspace_also_keeps_the_bfloat16_chunk_and_changes_no_bit()
    {
        using var scope = NewDisposeScope();
        manual_seed(31);
        var weight = (randn(300, 24) * 0.3).requires_grad_(true);
        using var workspace = new ChunkedCrossEntropy.Workspace();
        for (int call = 0; call < 3; call++)
        {
            var hidden = randn(2, 7 + 4 * call, 24);
            var labels = randint(0, 300, new long[] { 2, 7 + 4 * call });
            (Tensor Loss, Tensor HiddenGrad, Tensor WeightGrad) Run(ChunkedCrossEntropy.Workspace? w)
            {
                var h = hidden.detach().requires_grad_(true);
                weight.grad?.zero_();
                Tensor loss;
                using (PeftGen.Precision.ComputePrecision.Use(ScalarType.BFloat16))
                    loss = CausalLmLoss.Sum(hidden: h, headWeight: weight, labels: labels, chunkSize: 5, workspace: w).Sum;
                loss.backward();
                return (loss.detach(), h.grad!.detach(), weight.grad!.detach().clone());
            }
            var reused = Run(workspace);
            var fresh = Run(null);
            Assert.Equal(fresh.Loss.item<float>(), reused.Loss.item<float>());
            Assert.True(fresh.HiddenGrad.eq(reused.HiddenGrad).all().item<bool>());
            Assert.True(fresh.WeightGrad.eq(reused.WeightGrad).all().item<bool>());
            // One chunk of bfloat16 products, and float32 logits beside them where the CPU's softmax kernel does not run
            // (no 512-bit vectors); the bfloat16 weight-gradient sum over the chunks is the call's own (it becomes the
            // float32 gradient at the end, so none is held between calls).
            Assert.Equal(5L * 300 * (SoftmaxRowsKernel.Runs ? 2 : sizeof(float) + 2), workspace.Bytes);
        }
    }

    [Fact]
    public void A_float32_head_under_bfloat16_compute_taken_in_blocks_matches_float64_and_the_whole_copy()
    {
        using var scope = NewDisposeScope();
        manual_seed(29);
        // A head whose bfloat16 copy (32 MiB) outweighs a block (4 MiB) and every row's logits: the automatic chunk size
        // takes it in eight blocks of 2,048 vocabulary rows, an explicit one copies it whole.
        long batch = 2, seq = 9, dim = 1024, vocab = 16_384;
        Assert.True(ChunkedCrossEntropy.HeadInBlocksHoldsLess(batch * seq, vocab, dim, ScalarType.BFloat16, ScalarType.Float32, ChunkedCrossEntropy.ChunkRows(0, vocab, ScalarType.BFloat16)));
        var hidden0 = randn(batch, seq, dim);
        var head = randn(vocab, dim) * 0.05;
        var labels = ChunkedLossTests.RandomLabels(batch, seq, vocab, 8);

        (Tensor Loss, Tensor Grad) Run(int chunkSize)
        {
            var hidden = hidden0.detach().requires_grad_(true);
            Tensor loss;
            using (PeftGen.Precision.ComputePrecision.Use(ScalarType.BFloat16))
                loss = CausalLmLoss.Mean(hidden, head, labels, chunkSize);
            loss.backward();
            return (loss.detach(), hidden.grad!.detach());
        }

        var blocks = Run(ChunkedCrossEntropy.AutoChunkSize);
        var whole = Run(7);
        // The reference: the unchunked loss of the bfloat16-rounded operands, in float64.
        var h64 = hidden0.to(ScalarType.BFloat16).to(ScalarType.Float64).requires_grad_(true);
        var reference = ChunkedLossTests.NaiveMeanLoss(h64, head.to(ScalarType.BFloat16).to(ScalarType.Float64), labels);
        reference.backward();

        Assert.Equal(ScalarType.Float32, blocks.Loss.dtype);
        Assert.True(Reference.RelativeError(blocks.Loss, reference) < 1e-3);
        Assert.True(Reference.RelativeError(blocks.Grad, h64.grad!) < 1e-2);
        // Same logits; the hidden gradient sums its two blocks in float32 where the whole copy rounds one GEMM.
        Assert.True(Reference.RelativeError(blocks.Loss, whole.Loss) < 1e-6);
        Assert.True(Reference.RelativeError(blocks.Grad, whole.Grad) < 1e-2);
    }

    [Theory]
    [InlineData(true)] // the CPU's path: the bfloat16 sum lives in the float32 gradient's first half and is widened there
    [InlineData(false)] // other devices' path: a separate bfloat16 sum over chunks, a single chunk in blocks of vocabulary rows
    public void A_trained_float32_head_under_bfloat16_compute_gets_its_gradient_within_bfloat16_of_float64(bool sumInsideGradient)
    {
        using var scope = NewDisposeScope();
        manual_seed(37);
        // 18 rows fit one automatic chunk. Inside the gradient its one bfloat16 product is written into the float32
        // gradient's memory and widened; on the other path the head's bfloat16 gradient (9 MB) goes to the float32 one
        // in nine 1 MiB blocks of vocabulary rows, the last one partial. An explicit chunk of 5 rows sums four chunks.
        long batch = 2, seq = 9, dim = 512, vocab = 9_000;
        Assert.True(ChunkedCrossEntropy.ChunkRows(0, vocab, ScalarType.BFloat16) >= batch * seq);
        var hidden0 = randn(batch, seq, dim);
        var head0 = randn(vocab, dim) * 0.05;
        var labels = ChunkedLossTests.RandomLabels(batch, seq, vocab, 9);

        (Tensor Loss, Tensor HiddenGrad, Tensor HeadGrad) Run(int chunkSize)
        {
            var hidden = hidden0.detach().requires_grad_(true);
            var head = head0.detach().clone().requires_grad_(true);
            // CausalLmLoss.Mean's shift and selection, with the path chosen.
            var predictors = hidden.narrow(1, 0, seq - 1).reshape(-1, dim);
            var targets = labels.narrow(1, 1, seq - 1).reshape(-1);
            var rows = targets.ne(CausalLmLoss.IgnoreIndex).nonzero().squeeze(1);
            Tensor loss;
            using (PeftGen.Precision.ComputePrecision.Use(ScalarType.BFloat16))
                loss = ChunkedCrossEntropy.Sum(predictors.index_select(0, rows), head, targets.index_select(0, rows), chunkSize, null, sumInsideGradient) / rows.shape[0];
            loss.backward();
            return (loss.detach(), hidden.grad!.detach(), head.grad!.detach());
        }

        var single = Run(ChunkedCrossEntropy.AutoChunkSize);
        var chunked = Run(5);
        // The reference: the unchunked loss of the bfloat16-rounded operands, in float64.
        var h64 = hidden0.to(ScalarType.BFloat16).to(ScalarType.Float64).requires_grad_(true);
        var w64 = head0.to(ScalarType.BFloat16).to(ScalarType.Float64).requires_grad_(true);
        ChunkedLossTests.NaiveMeanLoss(h64, w64, labels).backward();

        Assert.Equal(ScalarType.Float32, single.HeadGrad.dtype);
        Assert.True(Reference.RelativeError(single.HeadGrad, w64.grad!) < 1e-2, $"head gradient {Reference.RelativeError(single.HeadGrad, w64.grad!):E2} from float64");
        Assert.True(Reference.RelativeError(single.HiddenGrad, h64.grad!) < 1e-2);
        Assert.True(Reference.RelativeError(chunked.HeadGrad, w64.grad!) < 1e-2);
        Assert.True(Reference.RelativeError(single.Loss, chunked.Loss) < 1e-6);
        // Rows no label names get only the softmax's share, small beside the targets' rows: held to the same tolerance
        // on their own, block by block, so a block left out or misplaced cannot hide among the large rows.
        var named = zeros(vocab, dtype: ScalarType.Bool);
        named.index_fill_(0, labels.flatten().clamp_min(0), true);
        var others = named.logical_not().nonzero().squeeze(1);
        for (long first = 0; first < vocab; first += 4096)
        {
            var rows = others.masked_select(others.ge(first).logical_and(others.lt(Math.Min(vocab, first + 4096))));
            var error = Reference.RelativeError(single.HeadGrad.index_select(0, rows), w64.grad!.index_select(0, rows));
            Assert.True(error < 1e-2, $"rows {first}…: head gradient of unnamed rows {error:E2} from float64");
        }
    }

    [Theory]
    [InlineData(128, 128_256, 2048, true)] // Llama-3.2-1B's tied head, 1 × 128 tokens: 0.12 GB in blocks, 0.56 copied
    [InlineData(128, 32_000, 4096, true)] // Llama-2-7B's head
    [InlineData(2048, 50_257, 768, false)] // GPT-2 small, 8 × 256 tokens: every row's logits would outweigh the copy
    [InlineData(1024, 8192, 384, false)] // the tiny model, 8 × 128
    [InlineData(16, 64, 32, false)] // a head far smaller than one block
    public void A_converted_head_is_taken_in_blocks_only_when_that_holds_less(long rows, long vocab, long dim, bool expected)
        => Assert.Equal(expected, ChunkedCrossEntropy.HeadInBlocksHoldsLess(rows, vocab, dim, ScalarType.BFloat16, ScalarType.Float32, ChunkedCrossEntropy.ChunkRows(0, vocab, ScalarType.BFloat16)));

    [Theory]
    [InlineData(0, 50_257, 125)] // GPT-2: 125 rows of float32 logits stay under 24 MiB
    [InlineData(0, 128_256, 49)] // Llama 3
    [InlineData(0, 10, 4096)] // tiny vocabularies: capped
    [InlineData(0, 100_000_000, 8)] // huge ones: at least 8 rows
    [InlineData(64, 50_257, 64)] // an explicit size wins
    public void Automatic_chunks_are_sized_from_the_vocabulary(int chunkSize, long vocab, int expected)
    {
        Assert.Equal(expected, ChunkedCrossEntropy.ChunkRows(chunkSize, vocab));
        Assert.True(expected * vocab * sizeof(float) <= ChunkedCrossEntropy.AutoChunkBytes || chunkSize > 0 || expected == 8);
    }

    [Theory]
    [InlineData(0, 50_257, 250, 83)] // GPT-2: 250 rows of bfloat16 logits, or 83 with their float32 copy, under 24 MiB
    [InlineData(0, 128_256, 98, 32)] // Llama 3
    [InlineData(64, 50_257, 64, 64)] // an explicit size wins
    public void Under_bfloat16_products_automatic_chunks_hold_what_the_softmax_needs(int chunkSize, long vocab, int bfloat16Only, int withFloat32Copy)
    {
        // On the CPU the softmax kernel works in the bfloat16 chunk itself where the processor has 512-bit vectors;
        // elsewhere (CUDA, or without such vectors) the chunk has a float32 copy beside it.
        Assert.Equal(SoftmaxRowsKernel.Runs ? bfloat16Only : withFloat32Copy, ChunkedCrossEntropy.ChunkRows(chunkSize, vocab, ScalarType.BFloat16));
        Assert.Equal(withFloat32Copy, ChunkedCrossEntropy.ChunkRows(chunkSize, vocab, ScalarType.BFloat16, DeviceType.CUDA));
        Assert.True(bfloat16Only * vocab * 2 <= ChunkedCrossEntropy.AutoChunkBytes || chunkSize > 0);
        Assert.True(withFloat32Copy * vocab * (sizeof(float) + 2) <= ChunkedCrossEntropy.AutoChunkBytes || chunkSize > 0);
        Assert.Equal(ChunkedCrossEntropy.ChunkRows(chunkSize, vocab), ChunkedCrossEntropy.ChunkRows(chunkSize, vocab, ScalarType.Float32));
    }

    [Fact]
    public void Negative_chunk_sizes_are_rejected_with_the_rule()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ChunkedCrossEntropy.ChunkRows(-1, 100));
        Assert.Contains("0 for automatic", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new TrainerOptions { LossChunkSize = -5 }.Validate());
    }
}
