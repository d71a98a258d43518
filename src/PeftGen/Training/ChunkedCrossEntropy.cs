using System;
using System.Collections.Generic;
using PeftGen.Precision;
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
    /// <summary>
    /// The chunk size that asks for rows sized from the vocabulary: as many rows as keep one chunk of float32 logits
    /// within <see cref="AutoChunkBytes"/> (125 rows for GPT-2's 50,257 tokens), at least 8.
    /// </summary>
    public const int AutoChunkSize = 0;

    /// <summary>
    /// Logit bytes per chunk when sizing automatically. glibc's allocator keeps freed blocks up to 32 MiB in the
    /// process for reuse (larger ones are unmapped on free and page-faulted in again, zero-filled, at the next
    /// allocation), so chunks below that cost no kernel work from the second step on; the benchmark suite's profile
    /// measured 112 k page faults per tiny-model step with 256-row (51 MB) chunks and a third of that with 128 rows.
    /// </summary>
    public const long AutoChunkBytes = 24L * 1024 * 1024;

    /// <summary>Rows per chunk for <paramref name="chunkSize"/> (0: automatic) and a vocabulary of <paramref name="vocab"/>.</summary>
    public static int ChunkRows(int chunkSize, long vocab)
    {
        if (chunkSize < 0) throw new ArgumentOutOfRangeException(nameof(chunkSize), chunkSize, "Chunk size must be positive, or 0 for automatic.");
        if (chunkSize > 0) return chunkSize;
        return (int)Math.Clamp(AutoChunkBytes / (Math.Max(vocab, 1) * sizeof(float)), 8, 4096);
    }

    /// <summary>
    /// Summed cross-entropy (nats) of the rows of <paramref name="hidden"/> (<c>rows × dim</c>) projected by
    /// <paramref name="weight"/> (<c>vocab × dim</c>) against <paramref name="targets"/> (<c>rows</c>, int64, all valid).
    /// Differentiable with respect to <paramref name="hidden"/> and <paramref name="weight"/>. A
    /// <paramref name="workspace"/> that outlives the call (a trainer keeps one) holds the chunk's logits from one call
    /// to the next, so a training step allocates no vocabulary-sized buffer at all; without one the call allocates it.
    /// </summary>
    public static Tensor Sum(Tensor hidden, Tensor weight, Tensor targets, int chunkSize = AutoChunkSize, Workspace? workspace = null)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(targets);
        if (hidden.dim() != 2 || weight.dim() != 2 || hidden.shape[1] != weight.shape[1])
            throw new ArgumentException($"Expected hidden rows × dim and weight vocab × dim, got [{string.Join(", ", hidden.shape)}] and [{string.Join(", ", weight.shape)}].");
        if (targets.dim() != 1 || targets.shape[0] != hidden.shape[0])
            throw new ArgumentException($"Expected {hidden.shape[0]} targets, got shape [{string.Join(", ", targets.shape)}].", nameof(targets));

        var grad = is_grad_enabled();
        using var callWorkspace = workspace is null ? new Workspace() : null;
        var request = new Request(ChunkRows(chunkSize, weight.shape[0]), grad && hidden.requires_grad, grad && weight.requires_grad, workspace ?? callWorkspace!);
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

    /// <summary>
    /// The reusable logits buffer of <see cref="Sum"/>: one chunk of <c>rows × vocab</c> values in the compute dtype,
    /// grown when a call needs more and kept until disposed. Not for concurrent calls.
    /// </summary>
    public sealed class Workspace : IDisposable
    {
        private Tensor? buffer;
        private Tensor? gradient;

        /// <summary>Bytes held now.</summary>
        public long Bytes => (buffer is null ? 0 : buffer.NumberOfElements * buffer.ElementSize) + (gradient is null ? 0 : gradient.NumberOfElements * gradient.ElementSize);

        /// <summary>
        /// A zeroed <c>vocab × dim</c> buffer in the compute dtype that a mixed-precision call sums its chunks' weight
        /// gradients into (one GEMM-accumulate per chunk, no vocabulary-sized allocation per chunk), kept for the next call.
        /// </summary>
        internal Tensor WeightGradient(long vocab, long dim, ScalarType dtype, Device device)
        {
            if (gradient is null || gradient.shape[0] != vocab || gradient.shape[1] != dim || gradient.dtype != dtype
                || gradient.device_type != device.type || gradient.device_index != device.index)
            {
                gradient?.Dispose();
                gradient = empty(new[] { vocab, dim }, dtype: dtype, device: device).DetachFromDisposeScope();
            }
            return gradient.zero_();
        }

        internal Tensor Logits(long rows, long vocab, ScalarType dtype, Device device)
        {
            // Device is a reference type without value equality: compare type and index.
            if (buffer is null || buffer.shape[1] != vocab || buffer.shape[0] < rows || buffer.dtype != dtype
                || buffer.device_type != device.type || buffer.device_index != device.index)
            {
                buffer?.Dispose();
                buffer = empty(new[] { rows, vocab }, dtype: dtype, device: device).DetachFromDisposeScope();
            }
            return buffer.narrow(0, 0, rows);
        }

        /// <summary>Frees the buffer.</summary>
        public void Dispose()
        {
            buffer?.Dispose();
            buffer = null;
            gradient?.Dispose();
            gradient = null;
        }
    }

    internal static Tensor Compute(Tensor hidden, Tensor weight, Tensor targets, Request request)
    {
        long rows = hidden.shape[0];
        var computeType = hidden.dtype is ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        // Under a mixed-precision scope the two products run in its compute dtype, outside one in the hidden rows'
        // dtype (a frozen 16-bit head is widened, as a 16-bit projection base is); softmax, the loss and the gradient
        // sums stay in float32 (float64 for float64 inputs).
        var productType = ComputePrecision.Current ?? hidden.dtype;
        var product = weight.dtype == productType ? weight : weight.to(productType);
        using var castWeight = ReferenceEquals(product, weight) ? null : product;
        var total = zeros(1, dtype: ScalarType.Float64, device: hidden.device);
        if (request.NeedsHiddenGrad) request.HiddenGrad = zeros_like(hidden);
        if (request.NeedsWeightGrad) request.WeightGrad = zeros_like(weight);
        // Mixed precision: the chunks' products weightsᵀ·h accumulate in a buffer of the compute dtype (the GEMM itself
        // accumulates in float32; each chunk's sum is rounded once), added to the float32 gradient at the end.
        var lowPrecisionGrad = request.NeedsWeightGrad && product.dtype != weight.dtype
            ? request.Workspace.WeightGradient(weight.shape[0], weight.shape[1], product.dtype, hidden.device)
            : null;
        for (long start = 0; start < rows; start += request.ChunkSize)
        {
            using var scope = NewDisposeScope();
            long length = Math.Min(request.ChunkSize, rows - start);
            var h = hidden.narrow(0, start, length);
            var t = targets.narrow(0, start, length).unsqueeze(1);
            // The chunk's logits, written into the workspace (no allocation once it has the size).
            var logits = request.Workspace.Logits(length, weight.shape[0], computeType, hidden.device);
            var hp = ComputePrecision.Cast(h);
            if (hp.dtype == computeType && product.dtype == computeType) logits.addmm_(hp, product.t(), beta: 0, alpha: 1);
            else logits.copy_(hp.matmul(product.t()));
            var rowMax = logits.amax(new long[] { 1 }, keepdim: true);
            var targetLogits = logits.gather(1, t);
            // In place: logits become exp(logit − max), whose row sums give log-sum-exp = max + log(sum) (sum ≥ 1, so
            // the logarithm is exact) and whose rows, divided by their sum, are the softmax.
            var exps = logits.sub_(rowMax).exp_();
            var sums = exps.sum(1, keepdim: true);
            total.add_((sums.log() + rowMax - targetLogits).sum().to(ScalarType.Float64));
            if (!request.NeedsHiddenGrad && !request.NeedsWeightGrad) continue;

            // d(sum CE)/d(logits) = softmax − onehot. Both the 1/sum of the softmax and the onehot are applied to the
            // small products instead of the chunk: (softmax − onehot)·W = (exps·W)/sum − W[targets], and
            // (softmax − onehot)ᵀ·h = expsᵀ·(h/sum) − Σ h into the rows of the targets.
            var weights = exps.dtype == product.dtype ? exps : exps.to(product.dtype);
            var inverse = sums.reciprocal().to(hidden.dtype);
            var targetRows = t.squeeze(1);
            if (request.NeedsHiddenGrad)
            {
                var spread = weights.matmul(product);
                if (spread.dtype != hidden.dtype) spread = spread.to(hidden.dtype);
                request.HiddenGrad!.narrow(0, start, length).copy_(spread.mul_(inverse).sub_(weight.index_select(0, targetRows).to(hidden.dtype)));
            }
            if (request.NeedsWeightGrad)
            {
                var scaled = ComputePrecision.Cast(h.mul(inverse));
                (lowPrecisionGrad ?? request.WeightGrad!).addmm_(weights.t(), scaled.to(weights.dtype));
                request.WeightGrad!.index_add_(0, targetRows, h.to(request.WeightGrad!.dtype), -1.0);
            }
        }
        if (lowPrecisionGrad is not null) request.WeightGrad!.add_(lowPrecisionGrad);
        return total.squeeze(0).to(hidden.dtype);
    }

    /// <summary>Per-call settings and the gradients the forward pass computed, handed to the autograd node.</summary>
    internal sealed class Request
    {
        public Request(int chunkSize, bool needsHiddenGrad, bool needsWeightGrad, Workspace workspace)
        {
            ChunkSize = chunkSize;
            Workspace = workspace;
            NeedsHiddenGrad = needsHiddenGrad;
            NeedsWeightGrad = needsWeightGrad;
        }

        public int ChunkSize { get; }
        public Workspace Workspace { get; }
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

        // The saved gradients belong to this node alone: scaling them in place saves a vocabulary-sized allocation.
        private static Tensor Scaled(Tensor? gradient, Tensor gradOutput) =>
            gradient is null || gradient.IsInvalid ? null! : gradient.mul_(gradOutput).alias();
    }
}
