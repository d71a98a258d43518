using System;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Threading.Tasks;
using PeftGen.Inference;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen.Training;

/// <summary>
/// The softmax numerators of a chunk of logit rows on the CPU, two sweeps over each row while it is in the core's cache:
/// the row's maximum, then <c>exp(x − max)</c> written over the row and summed. For <see cref="ChunkedCrossEntropy"/>.
/// </summary>
/// <remarks>
/// <para>libtorch does this as separate passes over the whole chunk (maximum, subtract, exponential, sum, and under
/// bfloat16 compute a widening before and a narrowing after), each streaming a chunk of millions of values through
/// memory. On the benchmarks' small model (50,257 tokens, 2,048 rows a step, LoRA) the bfloat16 head-and-loss phase
/// went from 0.85 s to 0.64 s with this kernel and the three-times-larger chunks it allows (the step profiles of the
/// benchmark runs of 2026-11-30 22:54 and 2026-12-01 00:07 UTC).</para>
/// <para>Numerics: the maximum is exact; <c>exp</c> is <see cref="Exp"/> (within 3 ulp of float32's correctly rounded
/// value); the sum runs in float32 over four vector accumulators (64 partial sums, each of at most a 64th of the row's
/// terms, all in [0, 1]) added in float64; bfloat16 rows receive each numerator rounded to nearest even, as converting
/// the float32 numerators would.</para>
/// </remarks>
internal static unsafe class SoftmaxRowsKernel
{
    private const int Lanes = 16;

    /// <summary>Whether the kernel runs on this processor: it needs accelerated 512-bit vectors.</summary>
    internal static bool Runs => Vector512.IsHardwareAccelerated;

    /// <summary>Whether <see cref="Run"/> takes <paramref name="logits"/>: a contiguous float32 or bfloat16 CPU matrix, where the kernel <see cref="Runs"/>.</summary>
    internal static bool Takes(Tensor logits)
        => Runs && logits.device_type == DeviceType.CPU && logits.dim() == 2 && logits.is_contiguous()
            && logits.dtype is ScalarType.Float32 or ScalarType.BFloat16;

    /// <summary>
    /// For each row of <paramref name="logits"/> (<c>rows × vocab</c>): its maximum, the logit of its target
    /// (<paramref name="targets"/>, int64, one per row) and <c>Σ exp(x − max)</c>, each <c>rows × 1</c> float32; the row
    /// is overwritten with <c>exp(x − max)</c> in its own dtype.
    /// </summary>
    internal static (Tensor RowMax, Tensor TargetLogits, Tensor Sums) Run(Tensor logits, Tensor targets)
    {
        if (!Takes(logits)) throw new ArgumentException("Expected a contiguous float32 or bfloat16 CPU matrix on a processor with 512-bit vectors.", nameof(logits));
        long rows = logits.shape[0], vocab = logits.shape[1];
        using var scope = NewDisposeScope();
        var ids = targets.to(ScalarType.Int64).contiguous();
        if (ids.NumberOfElements != rows) throw new ArgumentException($"Expected {rows} targets, got {ids.NumberOfElements}.", nameof(targets));
        var rowMax = empty(new[] { rows, 1L }, dtype: ScalarType.Float32);
        var targetLogits = empty(new[] { rows, 1L }, dtype: ScalarType.Float32);
        var sums = empty(new[] { rows, 1L }, dtype: ScalarType.Float32);
        nint x = TensorMemory.Address(logits), t = TensorMemory.Address(ids), m = TensorMemory.Address(rowMax), g = TensorMemory.Address(targetLogits), s = TensorMemory.Address(sums);
        for (long row = 0; row < rows; row++)
        {
            long id = ((long*)t)[row];
            if (id < 0 || id >= vocab) throw new ArgumentOutOfRangeException(nameof(targets), id, $"Target {id} of row {row} is outside the vocabulary of {vocab}.");
        }
        bool half = logits.dtype == ScalarType.BFloat16;
        int parts = (int)Math.Clamp(rows, 1, Math.Max(1, get_num_threads()));
        void Rows(long first, long end)
        {
            for (long row = first; row < end; row++)
            {
                long id = ((long*)t)[row];
                float max, target;
                double sum;
                if (half)
                {
                    var r = (ushort*)x + row * vocab;
                    target = BFloat16RowKernel.Widen(r[id]);
                    max = Max(r, vocab);
                    sum = ExpInPlace(r, vocab, max);
                }
                else
                {
                    var r = (float*)x + row * vocab;
                    target = r[id];
                    max = Max(r, vocab);
                    sum = ExpInPlace(r, vocab, max);
                }
                ((float*)m)[row] = max;
                ((float*)g)[row] = target;
                ((float*)s)[row] = (float)sum;
            }
        }
        if (parts == 1) Rows(0, rows);
        else Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, part => Rows(rows * part / parts, rows * (part + 1) / parts));
        return (rowMax.MoveToOuterDisposeScope(), targetLogits.MoveToOuterDisposeScope(), sums.MoveToOuterDisposeScope());
    }

    private static float Max(float* x, long n)
    {
        var m0 = Vector512.Create(float.NegativeInfinity);
        var m1 = m0;
        long i = 0;
        for (; i + 2 * Lanes <= n; i += 2 * Lanes)
        {
            m0 = Vector512.Max(m0, Vector512.Load(x + i));
            m1 = Vector512.Max(m1, Vector512.Load(x + i + Lanes));
        }
        float max = Reduce(Vector512.Max(m0, m1));
        for (; i < n; i++) max = MaxOf(max, x[i]);
        return max;
    }

    private static float Max(ushort* x, long n)
    {
        var m0 = Vector512.Create(float.NegativeInfinity);
        var m1 = m0;
        long i = 0;
        for (; i + 2 * Lanes <= n; i += 2 * Lanes)
        {
            var (low, high) = BFloat16RowKernel.Widen(Vector512.Load(x + i));
            m0 = Vector512.Max(m0, low);
            m1 = Vector512.Max(m1, high);
        }
        float max = Reduce(Vector512.Max(m0, m1));
        for (; i < n; i++) max = MaxOf(max, BFloat16RowKernel.Widen(x[i]));
        return max;
    }

    private static double ExpInPlace(float* x, long n, float max)
    {
        var shift = Vector512.Create(max);
        Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
        long i = 0;
        for (; i + 4 * Lanes <= n; i += 4 * Lanes)
        {
            var e0 = Exp(Vector512.Load(x + i) - shift);
            var e1 = Exp(Vector512.Load(x + i + Lanes) - shift);
            var e2 = Exp(Vector512.Load(x + i + 2 * Lanes) - shift);
            var e3 = Exp(Vector512.Load(x + i + 3 * Lanes) - shift);
            e0.Store(x + i);
            e1.Store(x + i + Lanes);
            e2.Store(x + i + 2 * Lanes);
            e3.Store(x + i + 3 * Lanes);
            s0 += e0;
            s1 += e1;
            s2 += e2;
            s3 += e3;
        }
        double sum = Total(s0, s1, s2, s3);
        for (; i < n; i++)
        {
            float e = ExpOne(x[i] - max);
            x[i] = e;
            sum += e;
        }
        return sum;
    }

    private static double ExpInPlace(ushort* x, long n, float max)
    {
        var shift = Vector512.Create(max);
        Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
        long i = 0;
        for (; i + 4 * Lanes <= n; i += 4 * Lanes)
        {
            var (w0, w1) = BFloat16RowKernel.Widen(Vector512.Load(x + i));
            var (w2, w3) = BFloat16RowKernel.Widen(Vector512.Load(x + i + 2 * Lanes));
            var e0 = Exp(w0 - shift);
            var e1 = Exp(w1 - shift);
            var e2 = Exp(w2 - shift);
            var e3 = Exp(w3 - shift);
            Vector512.Narrow(BFloat16RowKernel.Round(e0), BFloat16RowKernel.Round(e1)).Store(x + i);
            Vector512.Narrow(BFloat16RowKernel.Round(e2), BFloat16RowKernel.Round(e3)).Store(x + i + 2 * Lanes);
            s0 += e0;
            s1 += e1;
            s2 += e2;
            s3 += e3;
        }
        double sum = Total(s0, s1, s2, s3);
        for (; i < n; i++)
        {
            float e = ExpOne(BFloat16RowKernel.Widen(x[i]) - max);
            x[i] = BFloat16RowKernel.Round(e);
            sum += e;
        }
        return sum;
    }

    /// <summary>
    /// <c>exp(x)</c> for <c>x ≤ 88</c> (so that k ≤ 127 and 2ᵏ is a float32; a softmax passes x ≤ 0,
    /// <see cref="GeluTanhKernel"/> up to 88): <c>2ᵏ · exp(r)</c> with <c>k = round(x / ln 2)</c> and <c>r = x − k·ln 2</c>
    /// in two parts (Cody and Waite), <c>exp(r)</c> by its Taylor polynomial of degree 6 (|r| ≤ ln 2 / 2: truncation below
    /// 2⁻²⁷ relative). Below −87.3 (where float32's normal range ends) it returns exp(−87.3) ≈ 1.2·10⁻³⁸, which no sum
    /// of numerators (each row's largest is 1) can tell from 0. NaN stays NaN.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Exp(Vector512<float> x)
    {
        x = Vector512.Max(x, Vector512.Create(-87.3f));
        var k = Vector512.Round(x * Vector512.Create(1.44269504089f));
        var r = Vector512.FusedMultiplyAdd(k, Vector512.Create(-0.693145751953125f), x);
        r = Vector512.FusedMultiplyAdd(k, Vector512.Create(-1.428606765330187e-06f), r);
        var p = Vector512.Create(1f / 720);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 120));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 24));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 6));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(0.5f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        var scale = (Vector512.ConvertToInt32(k) + Vector512.Create(127)) << 23;
        return p * scale.AsSingle();
    }

    // The vector exponential on one value (the tail of a row), so a row's numerators come from one formula.
    private static float ExpOne(float x) => Exp(Vector512.Create(x)).ToScalar();

    private static float Reduce(Vector512<float> values)
    {
        float max = float.NegativeInfinity;
        for (int lane = 0; lane < Lanes; lane++) max = MaxOf(max, values.GetElement(lane));
        return max;
    }

    private static double Total(Vector512<float> s0, Vector512<float> s1, Vector512<float> s2, Vector512<float> s3)
    {
        double sum = 0;
        for (int lane = 0; lane < Lanes; lane++) sum += (double)s0.GetElement(lane) + s1.GetElement(lane) + s2.GetElement(lane) + s3.GetElement(lane);
        return sum;
    }

    // NaN-propagating maximum, as torch's amax.
    private static float MaxOf(float a, float b) => float.IsNaN(a) || float.IsNaN(b) ? float.NaN : Math.Max(a, b);
}
