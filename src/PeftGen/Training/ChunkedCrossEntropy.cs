using System;
using System.Collections.Generic;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen.Training;

/// <summary>
/// Cross-entropy of <c>hidden · weightᵀ</c> against targets, summed over rows, computed a chunk of rows
/// at a time so that only one chunk of logits exists at any moment.
/// </summary>
/// <remarks>
/// Autograd would keep every chunk's logits (or their softmax) alive until backward, which saves nothing. Instead
/// the forward pass computes, chunk by chunk, the loss and its exact gradients with respect to the hidden rows and
/// the weight (<c>(softmax − onehot)·W</c> and <c>(softmax − onehot)ᵀ·h</c>), frees the chunk, and hands autograd a
/// node whose backward only scales those saved gradients by the incoming scalar gradient. What stays alive between
/// forward and backward is one gradient the size of the hidden rows and, when the head trains, one the size of the
/// weight, instead of <c>rows × vocab</c> logits. Gradients are computed only for inputs that require them.
/// </remarks>
public static class ChunkedCrossEntropy
{
    /// <summary>Rows per chunk unless told otherwise.</summary>
    public const int DefaultChunkSize = 256;

    /// <summary>
    /// Summed cross-entropy (nats) of the rows of <paramref name="hidden"/> (<c>rows × dim</c>) projected by
    /// <paramref name="weight"/> (<c>vocab × dim</c>) against <paramref name="targets"/> (<c>rows</c>, int64, all valid).
    /// Differentiable with respect to <paramref name="hidden"/> and <paramref name="weight"/>.
    /// </summary>
    public static Tensor Sum(Tensor hidden, Tensor weight, Tensor targets, int chunkSize = DefaultChunkSize)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(targets);
        if (chunkSize <= 0) throw new ArgumentOutOfRangeException(nameof(chunkSize), chunkSize, "Chunk size must be positive.");
        if (hidden.dim() != 2 || weight.dim() != 2 || hidden.shape[1] != weight.shape[1])
            throw new ArgumentException($"Expected hidden rows × dim and weight vocab × dim, got [{string.Join(", ", hidden.shape)}] and [{string.Join(", ", weight.shape)}].");
        if (targets.dim() != 1 || targets.shape[0] != hidden.shape[0])
            throw new ArgumentException($"Expected {hidden.shape[0]} targets, got shape [{string.Join(", ", targets.shape)}].", nameof(targets));

        var grad = is_grad_enabled();
        var request = new Request(chunkSize, grad && hidden.requires_grad, grad && weight.requires_grad);
        if (!request.NeedsHiddenGrad && !request.NeedsWeightGrad)
        {
            using var noGrad = no_grad();
            return Compute(hidden, weight, targets, request);
        }

        var loss = ChunkedCrossEntropyFunction.apply(hidden, weight, targets, request);
        // Autograd's saved variables now own the gradients; drop our handles so nothing waits for a finalizer.
        request.ReleaseHandles();
        return loss;
    }

    internal static Tensor Compute(Tensor hidden, Tensor weight, Tensor targets, Request request)
    {
        long rows = hidden.shape[0];
        var computeType = hidden.dtype is ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var total = zeros(1, dtype: ScalarType.Float64, device: hidden.device);
        if (request.NeedsHiddenGrad) request.HiddenGrad = zeros_like(hidden);
        if (request.NeedsWeightGrad) request.WeightGrad = zeros_like(weight);
        for (long start = 0; start < rows; start += request.ChunkSize)
        {
            using var scope = NewDisposeScope();
            long length = Math.Min(request.ChunkSize, rows - start);
            var h = hidden.narrow(0, start, length);
            var t = targets.narrow(0, start, length).unsqueeze(1);
            var logits = h.matmul(weight.t()).to(computeType);
            var (rowMax, argMax) = logits.max(1, keepdim: true);
            var targetLogits = logits.gather(1, t);
            // torch's softmax works row by row while the row is in cache (one read, one write of the chunk), where
            // max / subtract / exp / sum as separate tensor ops would each stream the whole chunk through memory.
            var probabilities = logits.softmax(1);
            logits.Dispose();
            // log-sum-exp = max − log p(argmax); p(argmax) ≥ 1/vocab, so the logarithm is exact and never −∞.
            var rowLoss = rowMax - targetLogits - probabilities.gather(1, argMax).log();
            total.add_(rowLoss.sum().to(ScalarType.Float64));
            if (!request.NeedsHiddenGrad && !request.NeedsWeightGrad) continue;

            // d(sum CE)/d(logits) = softmax − onehot. The onehot part is applied to the small products instead of the
            // chunk: (softmax − onehot)·W = softmax·W − W[targets], and (softmax − onehot)ᵀ·h = softmaxᵀ·h − Σ h into rows targets.
            var dLogits = probabilities.to(hidden.dtype);
            var targetRows = t.squeeze(1);
            if (request.NeedsHiddenGrad)
                request.HiddenGrad!.narrow(0, start, length).copy_(dLogits.matmul(weight).sub_(weight.index_select(0, targetRows)));
            if (request.NeedsWeightGrad)
            {
                request.WeightGrad!.addmm_(dLogits.t(), h);
                request.WeightGrad!.index_add_(0, targetRows, h, -1.0);
            }
        }
        return total.squeeze(0).to(hidden.dtype);
    }

    /// <summary>Per-call settings and the gradients the forward pass computed, handed to the autograd node.</summary>
    internal sealed class Request
    {
        public Request(int chunkSize, bool needsHiddenGrad, bool needsWeightGrad)
        {
            ChunkSize = chunkSize;
            NeedsHiddenGrad = needsHiddenGrad;
            NeedsWeightGrad = needsWeightGrad;
        }

        public int ChunkSize { get; }
        public bool NeedsHiddenGrad { get; }
        public bool NeedsWeightGrad { get; }
        public Tensor? HiddenGrad { get; set; }
        public Tensor? WeightGrad { get; set; }

        public void ReleaseHandles()
        {
            HiddenGrad?.Dispose();
            WeightGrad?.Dispose();
            HiddenGrad = null;
            WeightGrad = null;
        }
    }

    private sealed class ChunkedCrossEntropyFunction : autograd.SingleTensorFunction<ChunkedCrossEntropyFunction>
    {
        public override string Name => nameof(ChunkedCrossEntropyFunction);

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var request = (Request)vars[3];
            var loss = Compute((Tensor)vars[0], (Tensor)vars[1], (Tensor)vars[2], request);
            ctx.save_for_backward(new List<Tensor> { request.HiddenGrad!, request.WeightGrad! });
            return loss;
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
        {
            var saved = ctx.get_saved_variables();
            try
            {
                return new List<Tensor>
                {
                    Scaled(saved[0], grad_output),
                    Scaled(saved[1], grad_output),
                    null!,
                    null!,
                };
            }
            finally
            {
                foreach (var tensor in saved) tensor?.Dispose();
            }
        }

        private static Tensor Scaled(Tensor? gradient, Tensor gradOutput) =>
            gradient is null || gradient.IsInvalid ? null! : gradient.mul(gradOutput);
    }
}
