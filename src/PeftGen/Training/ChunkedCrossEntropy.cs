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
/// <para>A head that must change dtype for the products (a float32 head under bfloat16 compute) would need a converted
/// copy of itself for the call, <c>vocab × dim</c> values: half a gigabyte for Llama-3.2-1B's tied 128,256-token head,
/// more than the rest of a 4-bit model's training step. When the rows are few (fewer than about a third of the width,
/// as in a batch of one), the products instead take the head a block of vocabulary rows at a time, converted into a
/// small buffer, over all rows at once; see <see cref="AutoChunkBytes"/>.</para>
/// </remarks>
public static class ChunkedCrossEntropy
{
    /// <summary>
    /// The chunk size that asks for rows sized from the vocabulary: as many rows as keep one chunk of logits within
    /// <see cref="AutoChunkBytes"/>, at least 8. On the CPU the softmax numerators are made in the products' own chunk
    /// (<see cref="SoftmaxRowsKernel"/>, where the processor has 512-bit vectors), so a bfloat16 chunk holds two bytes a
    /// logit (250 rows for GPT-2's 50,257 tokens) and a float32 one four (125 rows); elsewhere a 16-bit product keeps a
    /// float32 copy of its chunk beside it (83 rows).
    /// </summary>
    public const int AutoChunkSize = 0;

    /// <summary>
    /// Logit bytes per chunk when sizing automatically (with their float32 copy where a 16-bit product needs one), and
    /// head bytes per block when a converted head is taken in blocks of vocabulary rows. glibc's allocator keeps freed blocks
    /// up to 32 MiB in the
    /// process for reuse (larger ones are unmapped on free and page-faulted in again, zero-filled, at the next
    /// allocation), so chunks below that cost no kernel work from the second step on; the benchmark suite's profile
    /// measured 112 k page faults per tiny-model step with 256-row (51 MB) chunks and a third of that with 128 rows.
    /// </summary>
    public const long AutoChunkBytes = 24L * 1024 * 1024;

    /// <summary>Rows per chunk for <paramref name="chunkSize"/> (0: automatic) and a vocabulary of <paramref name="vocab"/>, float32 products.</summary>
    public static int ChunkRows(int chunkSize, long vocab) => ChunkRows(chunkSize, vocab, ScalarType.Float32);

    /// <summary>
    /// Rows per chunk for <paramref name="chunkSize"/> (0: automatic), a vocabulary of <paramref name="vocab"/> and
    /// products in <paramref name="productType"/> on the CPU.
    /// </summary>
    public static int ChunkRows(int chunkSize, long vocab, ScalarType productType) => ChunkRows(chunkSize, vocab, productType, DeviceType.CPU);

    /// <summary>
    /// Rows per chunk for <paramref name="chunkSize"/> (0: automatic), a vocabulary of <paramref name="vocab"/> and
    /// products in <paramref name="productType"/> on <paramref name="device"/>.
    /// </summary>
    public static int ChunkRows(int chunkSize, long vocab, ScalarType productType, DeviceType device)
    {
        if (chunkSize < 0) throw new ArgumentOutOfRangeException(nameof(chunkSize), chunkSize, "Chunk size must be positive, or 0 for automatic.");
        if (chunkSize > 0) return chunkSize;
        return (int)Math.Clamp(AutoChunkBytes / (Math.Max(vocab, 1) * ChunkBytesPerLogit(productType, device)), 8, 4096);
    }

    /// <summary>
    /// Bytes a chunk holds per logit: the product's own, plus a float32 copy where the product is 16-bit and the CPU's
    /// softmax kernel does not take it.
    /// </summary>
    private static long ChunkBytesPerLogit(ScalarType productType, DeviceType device)
    {
        long product = ElementSize(productType);
        bool kernel = device == DeviceType.CPU && SoftmaxRowsKernel.Runs && productType is ScalarType.Float32 or ScalarType.BFloat16;
        return kernel || product >= sizeof(float) ? product : product + sizeof(float);
    }

    /// <summary>
    /// Summed cross-entropy (nats) of the rows of <paramref name="hidden"/> (<c>rows × dim</c>) projected by
    /// <paramref name="weight"/> (<c>vocab × dim</c>) against <paramref name="targets"/> (<c>rows</c>, int64, all valid).
    /// Differentiable with respect to <paramref name="hidden"/> and <paramref name="weight"/>. A
    /// <paramref name="workspace"/> that outlives the call (a trainer keeps one) holds the chunk's logits from one call
    /// to the next, so a training step allocates no vocabulary-sized buffer at all; without one the call allocates it.
    /// With an automatic chunk size, a head that the products must convert is taken in blocks instead of copied whole
    /// when every row's logits hold less than that copy; the call then allocates those logits itself.
    /// </summary>
    public static Tensor Sum(Tensor hidden, Tensor weight, Tensor targets, int chunkSize = AutoChunkSize, Workspace? workspace = null)
        => Sum(hidden, weight, targets, chunkSize, workspace, sumInsideGradient: true);

    /// <summary>
    /// <see cref="Sum(Tensor, Tensor, Tensor, int, Workspace?)"/>, where <paramref name="sumInsideGradient"/> false takes
    /// the path of devices on which a 16-bit sum cannot live inside the float32 gradient (a separate sum over chunks, a
    /// single chunk in blocks of vocabulary rows), so the CPU's tests reach it too.
    /// </summary>
    internal static Tensor Sum(Tensor hidden, Tensor weight, Tensor targets, int chunkSize, Workspace? workspace, bool sumInsideGradient)
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
        var productType = ComputePrecision.Current ?? hidden.dtype;
        var request = new Request(ChunkRows(chunkSize, weight.shape[0], productType, hidden.device_type), chunkSize == AutoChunkSize, grad && hidden.requires_grad, grad && weight.requires_grad, workspace ?? callWorkspace!)
        {
            SumInsideGradient = sumInsideGradient,
        };
        if (!request.NeedsHiddenGrad && !request.NeedsWeightGrad)
        {
            using var noGrad = no_grad();
            return Compute(hidden, weight, targets, request);
        }

        ReturnedGradients.Release();
        var loss = ChunkedCrossEntropyFunction.apply(hidden, weight, targets, request);
        // Autograd's saved variables now own the gradients; drop our handles so nothing waits for a finalizer.
        request.ReleaseHandles();
        return loss;
    }

    /// <summary>
    /// The reusable logits buffer of <see cref="Sum(Tensor, Tensor, Tensor, int, Workspace?)"/>: one chunk of <c>rows × vocab</c> values in the compute dtype,
    /// grown when a call needs more and kept until disposed. Not for concurrent calls.
    /// </summary>
    public sealed class Workspace : IDisposable
    {
        private Tensor? buffer;
        private Tensor? staging;
        private Tensor? gradient;

        /// <summary>Bytes held now.</summary>
        public long Bytes => BytesOf(buffer) + BytesOf(staging) + BytesOf(gradient);

        private static long BytesOf(Tensor? tensor) => tensor is null ? 0 : tensor.NumberOfElements * tensor.ElementSize;

        /// <summary>
        /// A <c>rows × dim</c> buffer in the compute dtype for a mixed-precision call's weight gradient in a single chunk:
        /// one block of vocabulary rows at a time on its way into the float32 gradient. Kept for the next call.
        /// </summary>
        internal Tensor WeightGradient(long rows, long dim, ScalarType dtype, Device device) => Rows(ref gradient, rows, dim, dtype, device);

        internal Tensor Logits(long rows, long vocab, ScalarType dtype, Device device) => Rows(ref buffer, rows, vocab, dtype, device);

        /// <summary>
        /// A chunk of <c>rows × vocab</c> values in the products' dtype when that differs from the logits' (mixed
        /// precision): the product lands here before it is widened into the logits, and the softmax is narrowed back
        /// here for the gradient products. Kept, like the logits, so that a step's chunks allocate nothing; a freed
        /// vocabulary-sized chunk would come back as fresh zero-filled pages (see <see cref="AutoChunkBytes"/>).
        /// </summary>
        internal Tensor Staging(long rows, long vocab, ScalarType dtype, Device device) => Rows(ref staging, rows, vocab, dtype, device);

        // The first rows of a kept rows × columns buffer, (re)allocated when it is too small or of another kind.
        private static Tensor Rows(ref Tensor? kept, long rows, long columns, ScalarType dtype, Device device)
        {
            if (!Fits(kept, columns, dtype, device) || kept!.shape[0] < rows)
            {
                kept?.Dispose();
                kept = empty(new[] { rows, columns }, dtype: dtype, device: device).DetachFromDisposeScope();
            }
            return kept.narrow(0, 0, rows);
        }

        // Whether a kept buffer has the columns, dtype and device asked for. Device is a reference type without value
        // equality: compare type and index.
        private static bool Fits(Tensor? kept, long columns, ScalarType dtype, Device device)
            => kept is not null && kept.shape[1] == columns && kept.dtype == dtype && kept.device_type == device.type && kept.device_index == device.index;

        /// <summary>Frees the buffers.</summary>
        public void Dispose()
        {
            buffer?.Dispose();
            buffer = null;
            staging?.Dispose();
            staging = null;
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
        using var head = new HeadProduct(weight, productType, HeadInBlocks(rows, weight, productType, computeType, request));
        long chunkSize = head.InBlocks ? rows : request.ChunkSize;
        var total = zeros(1, dtype: ScalarType.Float64, device: hidden.device);
        using var minusOne = (-1.0).ToScalar();
        if (request.NeedsHiddenGrad) request.HiddenGrad = zeros_like(hidden);
        // Mixed precision: the products weightsᵀ·h run in the compute dtype (the GEMM accumulates in float32) and the
        // chunks' products accumulate in a vocab × dim sum of that dtype (each chunk's sum rounded once); the float32
        // gradient is made from it at the end, after the head's converted copy is gone, and the target rows' −h are
        // added then. On the CPU the sum is written in the first half of the float32 gradient's own memory and widened
        // there (InPlaceWidening): one allocation of the float32 gradient's size per step, as a float32 run makes, where
        // a separate sum and its float32 copy made two, both fresh pages each step (narrow-full's bfloat16 peak, Zen 5,
        // 2026-12-02: 458–469 MB against 470–487 before and float32's 472–473). A single chunk (a batch of few rows, or
        // the tiny model's whole batch) takes the same path. Adding each chunk to a float32 gradient instead would read
        // and write it once per chunk. Where the alias cannot be made (not the CPU), several chunks sum in a tensor of
        // their own and a single chunk goes a block of vocabulary rows at a time into the float32 gradient, so that no
        // vocabulary-sized buffer of the compute dtype exists beside it.
        long vocab = weight.shape[0], dim = weight.shape[1];
        bool mixedGradient = request.NeedsWeightGrad && productType != weight.dtype;
        bool singleChunk = chunkSize >= rows;
        long gradientBlockRows = BlockRows(GradientBlockBytes, vocab, dim, productType);
        bool sumInPlace = mixedGradient && request.SumInsideGradient && InPlaceWidening.Applies(weight.dtype, productType, hidden.device);
        if (sumInPlace) request.WeightGrad = empty(new[] { vocab, dim }, dtype: weight.dtype, device: hidden.device);
        using var gradientSum = !mixedGradient || (singleChunk && !sumInPlace) ? null
            // A single chunk's product is written over the alias (beta 0), so its bytes need no zeroing.
            : sumInPlace ? (singleChunk ? InPlaceWidening.Alias(request.WeightGrad!, productType) : InPlaceWidening.Alias(request.WeightGrad!, productType).zero_())
            : zeros(new[] { vocab, dim }, dtype: productType, device: hidden.device);
        var gradientBlock = mixedGradient && gradientSum is null ? request.Workspace.WeightGradient(gradientBlockRows, dim, productType, hidden.device) : null;
        if (request.NeedsWeightGrad && gradientSum is null) request.WeightGrad = zeros_like(weight);
        for (long start = 0; start < rows; start += chunkSize)
        {
            using var scope = NewDisposeScope();
            long length = Math.Min(chunkSize, rows - start);
            var h = hidden.narrow(0, start, length);
            var t = targets.narrow(0, start, length).unsqueeze(1);
            // The product in its own dtype lands in the workspace's staging chunk (no allocation once it has the size).
            var staging = !head.InBlocks && productType != computeType ? request.Workspace.Staging(length, weight.shape[0], productType, hidden.device) : null;
            // The chunk the product lands in: the staging chunk, or else the workspace's logits.
            var product = head.InBlocks ? null : staging ?? request.Workspace.Logits(length, weight.shape[0], computeType, hidden.device);
            Tensor exps, rowMax, targetLogits, sums;
            if (product is not null && SoftmaxRowsKernel.Takes(product))
            {
                // On the CPU the softmax numerators are made row by row in the product's own chunk (float32, or the
                // 16-bit staging chunk, which then needs no float32 copy): exp(logit − max), each row's sum, maximum and
                // target logit; see SoftmaxRowsKernel.
                exps = product;
                head.Product(ComputePrecision.Cast(h), exps);
                (rowMax, targetLogits, sums) = SoftmaxRowsKernel.Run(exps, t);
            }
            else
            {
                // The chunk's logits, written into the workspace; all rows' logits, when the head is converted in
                // blocks, are the call's own. A product in another dtype is widened into them from the staging chunk.
                var logits = head.InBlocks
                    ? empty(new[] { length, weight.shape[0] }, dtype: computeType, device: hidden.device)
                    : request.Workspace.Logits(length, weight.shape[0], computeType, hidden.device);
                head.Logits(ComputePrecision.Cast(h), logits, staging);
                rowMax = logits.amax(new long[] { 1 }, keepdim: true);
                targetLogits = logits.gather(1, t);
                // In place: logits become exp(logit − max), whose row sums give log-sum-exp = max + log(sum) (sum ≥ 1,
                // so the logarithm is exact) and whose rows, divided by their sum, are the softmax.
                exps = logits.sub_(rowMax).exp_();
                sums = exps.sum(1, keepdim: true);
            }
            total.add_((sums.log() + rowMax - targetLogits).sum().to(ScalarType.Float64));
            if (!request.NeedsHiddenGrad && !request.NeedsWeightGrad) continue;

            // d(sum CE)/d(logits) = softmax − onehot. Both the 1/sum of the softmax and the onehot are applied to the
            // small products instead of the chunk: (softmax − onehot)·W = (exps·W)/sum − W[targets], and
            // (softmax − onehot)ᵀ·h = expsᵀ·(h/sum) − Σ h into the rows of the targets.
            // The softmax numerators in the products' dtype: narrowed into the staging chunk (whose product is spent).
            var weights = exps.dtype == productType ? exps : staging is not null ? staging.copy_(exps) : exps.to(productType);
            var inverse = sums.reciprocal().to(hidden.dtype);
            var targetRows = t.squeeze(1);
            if (request.NeedsHiddenGrad)
            {
                var spread = head.Spread(weights, computeType);
                if (spread.dtype != hidden.dtype) spread = spread.to(hidden.dtype);
                request.HiddenGrad!.narrow(0, start, length).copy_(spread.mul_(inverse).sub_(weight.index_select(0, targetRows).to(hidden.dtype)));
            }
            if (request.NeedsWeightGrad)
            {
                var scaled = ComputePrecision.Cast(h.mul(inverse)).to(weights.dtype);
                if (gradientBlock is null) (gradientSum ?? request.WeightGrad!).addmm_(weights.t(), scaled, beta: singleChunk && sumInPlace ? 0 : 1);
                else
                {
                    for (long first = 0; first < vocab; first += gradientBlockRows)
                    {
                        long count = Math.Min(gradientBlockRows, vocab - first);
                        var block = gradientBlock.narrow(0, 0, count).addmm_(weights.narrow(1, first, count).t(), scaled, beta: 0, alpha: 1);
                        request.WeightGrad!.narrow(0, first, count).add_(block);
                    }
                }
                if (gradientSum is null) request.WeightGrad!.index_add_(0, targetRows, h.to(request.WeightGrad!.dtype), minusOne);
            }
        }
        if (gradientSum is not null)
        {
            head.Dispose();
            if (sumInPlace) InPlaceWidening.Widen(request.WeightGrad!, gradientSum);
            else request.WeightGrad = gradientSum.to(weight.dtype);
            request.WeightGrad!.index_add_(0, targets, hidden.to(weight.dtype), minusOne);
        }
        return total.squeeze(0).to(hidden.dtype);
    }

    /// <summary>
    /// Bytes of a block of a single chunk's weight gradient in the compute dtype, where the sum cannot be kept inside the
    /// float32 gradient (not the CPU). Adding it to the float32 gradient converts it into a float32 temporary of twice
    /// its size, so the block is kept small. On the CPU this path took the small configuration's full fine-tuning over
    /// 1 × 64 tokens to 1,294–1,299 MB in bfloat16 against float32's 1,296–1,301 with 1 MiB blocks, 1,300–1,305 with
    /// 4 MiB (Zen 4, 2026-12-02, three alternated child processes each), before the in-place sum replaced it there.
    /// </summary>
    private const long GradientBlockBytes = 1L * 1024 * 1024;

    /// <summary>
    /// Whether the head's products should take it in blocks of vocabulary rows over all rows at once rather than as a
    /// whole converted copy over chunks of rows: only when it must be converted (a float32 head under bfloat16 compute),
    /// the chunk size is automatic, and that holds less. A whole copy holds <c>vocab × dim</c> values of the product
    /// dtype beside one chunk's logits; blocks hold every row's logits (and their product-dtype copy) beside one block.
    /// For Llama-3.2-1B's tied head at 1 × 128 tokens that is 0.12 GB instead of 0.56. A batch with more rows than about a
    /// third of the width keeps the whole copy, which also converts the head once per call where blocks convert it twice.
    /// </summary>
    private static bool HeadInBlocks(long rows, Tensor weight, ScalarType productType, ScalarType computeType, Request request)
        => weight.dtype != productType && request.AutoChunks
            && HeadInBlocksHoldsLess(rows, weight.shape[0], weight.shape[1], productType, computeType, request.ChunkSize, weight.device_type);

    /// <summary>Whether <see cref="HeadInBlocks"/> holds less than a whole converted copy, for a head to be converted.</summary>
    internal static bool HeadInBlocksHoldsLess(long rows, long vocab, long dim, ScalarType productType, ScalarType computeType, int chunkSize, DeviceType device = DeviceType.CPU)
    {
        long productBytes = ElementSize(productType), logitBytes = ElementSize(computeType);
        long chunkRows = Math.Min(chunkSize, rows);
        long whole = vocab * dim * productBytes + chunkRows * vocab * ChunkBytesPerLogit(productType, device);
        long blocks = rows * vocab * (logitBytes + productBytes) + BlockRows(HeadBlockBytes, vocab, dim, productType) * dim * productBytes;
        return blocks < whole;
    }

    /// <summary>
    /// Bytes of the buffer a head taken in blocks is converted into, a block of vocabulary rows at a time (4,096 rows of
    /// a 512-wide head in bfloat16, 512 of Llama-2-7B's 4,096-wide one): enough columns per product to keep the GEMM at
    /// its rate, small beside the rows' logits.
    /// </summary>
    private const long HeadBlockBytes = 4L * 1024 * 1024;

    /// <summary>Vocabulary rows per block of <paramref name="bytes"/> in the product dtype, at most the vocabulary.</summary>
    private static long BlockRows(long bytes, long vocab, long dim, ScalarType productType) => Math.Clamp(bytes / (dim * ElementSize(productType)), 1, Math.Max(1, vocab));

    private static long ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 => 8,
        ScalarType.Float32 => 4,
        _ => 2,
    };

    /// <summary>
    /// The head in the products' dtype: the weight itself when it has it, else a whole converted copy, or (in blocks)
    /// a buffer that a block of vocabulary rows at a time is converted into, so no full-size copy ever exists.
    /// </summary>
    private sealed class HeadProduct : IDisposable
    {
        private readonly Tensor weight;
        private readonly Tensor? copy;
        private readonly Tensor? block;

        public HeadProduct(Tensor weight, ScalarType productType, bool inBlocks)
        {
            this.weight = weight;
            InBlocks = inBlocks;
            if (inBlocks) block = empty(new[] { BlockRows(HeadBlockBytes, weight.shape[0], weight.shape[1], productType), weight.shape[1] }, dtype: productType, device: weight.device);
            else if (weight.dtype != productType) copy = weight.to(productType);
        }

        public bool InBlocks { get; }

        private Tensor Whole => copy ?? weight;

        /// <summary>
        /// Writes <c>h · weightᵀ</c> into <paramref name="logits"/> (rows × vocab); a product in another dtype than the
        /// logits' is computed into <paramref name="staging"/> (rows × vocab, that dtype) when given, else into a new tensor.
        /// </summary>
        public void Logits(Tensor h, Tensor logits, Tensor? staging = null)
        {
            if (!InBlocks)
            {
                if (h.dtype == logits.dtype && Whole.dtype == logits.dtype) logits.addmm_(h, Whole.t(), beta: 0, alpha: 1);
                else if (staging is not null && h.dtype == staging.dtype && Whole.dtype == staging.dtype) logits.copy_(staging.addmm_(h, Whole.t(), beta: 0, alpha: 1));
                else logits.copy_(h.matmul(Whole.t()));
                return;
            }
            foreach (var (start, rows) in Blocks())
            {
                using var scope = NewDisposeScope();
                logits.narrow(1, start, rows).copy_(h.matmul(Block(start, rows).t()));
            }
        }

        /// <summary>Writes <c>h · weightᵀ</c> into <paramref name="output"/> (rows × vocab) in its dtype; not in blocks.</summary>
        public void Product(Tensor h, Tensor output)
        {
            if (h.dtype == output.dtype && Whole.dtype == output.dtype) output.addmm_(h, Whole.t(), beta: 0, alpha: 1);
            else output.copy_(h.matmul(Whole.t()));
        }

        /// <summary><c>weights · weight</c> (rows × dim); in blocks, summed in <paramref name="sumType"/>.</summary>
        public Tensor Spread(Tensor weights, ScalarType sumType)
        {
            if (!InBlocks) return weights.matmul(Whole);
            var sum = zeros(new[] { weights.shape[0], weight.shape[1] }, dtype: sumType, device: weights.device);
            foreach (var (start, rows) in Blocks())
            {
                using var scope = NewDisposeScope();
                sum.add_(weights.narrow(1, start, rows).matmul(Block(start, rows)));
            }
            return sum;
        }

        private IEnumerable<(long Start, long Rows)> Blocks()
        {
            long vocab = weight.shape[0], blockRows = block!.shape[0];
            for (long start = 0; start < vocab; start += blockRows) yield return (start, Math.Min(blockRows, vocab - start));
        }

        private Tensor Block(long start, long rows)
        {
            var part = block!.narrow(0, 0, rows);
            part.copy_(weight.narrow(0, start, rows));
            return part;
        }

        public void Dispose()
        {
            copy?.Dispose();
            block?.Dispose();
        }
    }

    /// <summary>Per-call settings and the gradients the forward pass computed, handed to the autograd node.</summary>
    internal sealed class Request
    {
        public Request(int chunkSize, bool autoChunks, bool needsHiddenGrad, bool needsWeightGrad, Workspace workspace)
        {
            ChunkSize = chunkSize;
            AutoChunks = autoChunks;
            Workspace = workspace;
            NeedsHiddenGrad = needsHiddenGrad;
            NeedsWeightGrad = needsWeightGrad;
        }

        public int ChunkSize { get; }
        public bool AutoChunks { get; }
        public Workspace Workspace { get; }
        public bool NeedsHiddenGrad { get; }
        public bool NeedsWeightGrad { get; }

        /// <summary>Whether a 16-bit gradient sum may live inside the float32 gradient where the device allows it (always, outside tests).</summary>
        public bool SumInsideGradient { get; init; } = true;

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
            ReturnedGradients.Release();
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

        // The saved gradients belong to this node alone: scaling them in place saves a vocabulary-sized allocation. The
        // returned wrapper is kept by ReturnedGradients (disposed at this thread's next PeftGen autograd call, or by the
        // trainer after backward) instead of waiting for the garbage collector to let go of a vocabulary-sized tensor.
        private static Tensor Scaled(Tensor? gradient, Tensor gradOutput) =>
            gradient is null || gradient.IsInvalid ? null! : ReturnedGradients.Keep(gradient.mul_(gradOutput).alias());
    }
}
