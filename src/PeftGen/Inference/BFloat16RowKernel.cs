using System;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Threading.Tasks;

namespace PeftGen.Inference;

/// <summary>
/// <c>y = x·Wᵀ (+ b)</c> for a few rows of bfloat16 on the CPU, written in C#: decoding's shape in bfloat16, where the
/// weight is read once per token and the product is bound by how fast memory delivers it.
/// </summary>
/// <remarks>
/// <para>Measured on the 2-core AMD EPYC (family 25, model 17) this was written on: libtorch hands a one-row bfloat16
/// product to oneDNN, which read the weight at 11–15 GB/s on two threads (a 51 MB head, GPT-2's vocabulary at width
/// 512) while a float32 sum streamed at 28 GB/s. This loop reads each weight row once, widens its bfloat16 values to
/// float32 (a bfloat16 value is the upper half of a float32's bits: zero-extend and shift), multiplies them with every
/// input row (widened once per call) and accumulates in float32; 20–23 GB/s on one thread, 29–38 GB/s on two. (These
/// bandwidths come from a throwaway harness, not a committed command; `PeftGen.Benchmarks generation` times the decoding
/// they serve, docs/benchmarks.md#serving-issue-19.)</para>
/// <para>Each output value is one float32 dot product over the input features, plus the bias, rounded once to bfloat16
/// (round to nearest even, as libtorch rounds); the weight rows are split into contiguous ranges, one per worker, and
/// each output value is written by exactly one worker, so the result does not depend on the split.</para>
/// </remarks>
internal static unsafe class BFloat16RowKernel
{
    /// <summary>
    /// Weight values per worker below which the product runs on the calling thread alone (4 M values, 8 MB). Handing a
    /// range to a thread-pool thread and waking it costs more than it saves for a transformer block's weights: with the
    /// split at 256 K values, a decoding step of the small configuration (32 products of 0.5–2 MB and a 51 MB head) spent
    /// a quarter of its samples in the scheduler and the thread pool, and one thread reads 20 GB/s anyway. The head, and
    /// the projections of models far wider than the example's, are split.
    /// </summary>
    internal const long MinValuesPerWorker = 1 << 22;

    /// <summary>The most input rows the kernel takes (its accumulators live on the stack, one per row).</summary>
    internal const int MaxRows = 8;

    /// <summary>The vector widths the kernel has a loop for.</summary>
    internal enum Width
    {
        Bits256,
        Bits512,
    }

    /// <summary>Whether this machine has the vector width the kernel needs (512 or 256 bits, hardware accelerated).</summary>
    internal static bool IsSupported => Vector512.IsHardwareAccelerated || Vector256.IsHardwareAccelerated;

    /// <summary>The widest loop this machine runs (meaningful when <see cref="IsSupported"/>).</summary>
    internal static Width Best => Vector512.IsHardwareAccelerated ? Width.Bits512 : Width.Bits256;

    /// <summary>Whether this machine runs <paramref name="width"/>'s loop in hardware (tests run every one it does).</summary>
    internal static bool Runs(Width width) => width == Width.Bits512 ? Vector512.IsHardwareAccelerated : Vector256.IsHardwareAccelerated;

    /// <summary>
    /// Computes <paramref name="rows"/> × <paramref name="outFeatures"/> outputs (bfloat16 bits, row-major) from input
    /// rows already widened to float32 (<paramref name="rows"/> × <paramref name="inFeatures"/>), bfloat16 weight bits
    /// (<paramref name="outFeatures"/> × <paramref name="inFeatures"/>) and optional bfloat16 bias bits.
    /// </summary>
    internal static void Multiply(float* input, ushort* weight, ushort* bias, ushort* output, int rows, long outFeatures, int inFeatures, int workers, Width width)
    {
        if (rows < 1 || rows > MaxRows) throw new ArgumentOutOfRangeException(nameof(rows), rows, $"The kernel takes 1 to {MaxRows} rows.");
        if (!Runs(width)) throw new PlatformNotSupportedException($"This machine has no hardware-accelerated {width} vectors for the bfloat16 row kernel.");
        long values = outFeatures * inFeatures;
        int parts = (int)Math.Clamp(values / MinValuesPerWorker, 1, Math.Max(1, workers));
        if (parts == 1)
        {
            Range(input, weight, bias, output, rows, outFeatures, inFeatures, 0, outFeatures, width);
            return;
        }
        // Pointers cannot be captured by a lambda; their addresses can.
        nint inputAddress = (nint)input, weightAddress = (nint)weight, biasAddress = (nint)bias, outputAddress = (nint)output;
        long perPart = (outFeatures + parts - 1) / parts;
        Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, part =>
        {
            long start = part * perPart, end = Math.Min(outFeatures, start + perPart);
            if (start < end)
                Range((float*)inputAddress, (ushort*)weightAddress, (ushort*)biasAddress, (ushort*)outputAddress, rows, outFeatures, inFeatures, start, end, width);
        });
    }

    // Output columns [start, end) of every row.
    private static void Range(float* input, ushort* weight, ushort* bias, ushort* output, int rows, long outFeatures, int inFeatures, long start, long end, Width width)
    {
        float* sums = stackalloc float[MaxRows];
        for (long o = start; o < end; o++)
        {
            ushort* w = weight + o * inFeatures;
            if (width == Width.Bits512) Dot512(input, w, sums, rows, inFeatures);
            else Dot256(input, w, sums, rows, inFeatures);
            float b = bias == null ? 0f : Widen(bias[o]);
            for (int r = 0; r < rows; r++) output[r * outFeatures + o] = Round(sums[r] + b);
        }
    }

    // sums[r] = Σ_k input[r, k] · w[k], the weight row read once for all rows.
    private static void Dot512(float* input, ushort* w, float* sums, int rows, int n)
    {
        if (rows == 1)
        {
            // Decoding's one row: two accumulators in registers.
            var a0 = Vector512<float>.Zero;
            var a1 = Vector512<float>.Zero;
            int i = 0;
            for (; i + 32 <= n; i += 32)
            {
                var raw = Vector512.Load(w + i);
                a0 = Vector512.FusedMultiplyAdd(Vector512.ShiftLeft(Vector512.WidenLower(raw), 16).AsSingle(), Vector512.Load(input + i), a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.ShiftLeft(Vector512.WidenUpper(raw), 16).AsSingle(), Vector512.Load(input + i + 16), a1);
            }
            float total = Vector512.Sum(a0 + a1);
            for (; i < n; i++) total += Widen(w[i]) * input[i];
            sums[0] = total;
            return;
        }
        var acc = stackalloc Vector512<float>[MaxRows];
        for (int r = 0; r < rows; r++) acc[r] = Vector512<float>.Zero;
        int k = 0;
        for (; k + 16 <= n; k += 16)
        {
            var wide = Vector512.ShiftLeft(Vector512.WidenLower(Vector512.Create(Vector256.Load(w + k), Vector256<ushort>.Zero)), 16).AsSingle();
            for (int r = 0; r < rows; r++) acc[r] = Vector512.FusedMultiplyAdd(wide, Vector512.Load(input + (long)r * n + k), acc[r]);
        }
        for (int r = 0; r < rows; r++)
        {
            float sum = Vector512.Sum(acc[r]);
            float* x = input + (long)r * n;
            for (int j = k; j < n; j++) sum += Widen(w[j]) * x[j];
            sums[r] = sum;
        }
    }

    private static void Dot256(float* input, ushort* w, float* sums, int rows, int n)
    {
        var acc = stackalloc Vector256<float>[MaxRows];
        for (int r = 0; r < rows; r++) acc[r] = Vector256<float>.Zero;
        int k = 0;
        for (; k + 8 <= n; k += 8)
        {
            var wide = Vector256.ShiftLeft(Vector256.WidenLower(Vector256.Create(Vector128.Load(w + k), Vector128<ushort>.Zero)), 16).AsSingle();
            for (int r = 0; r < rows; r++) acc[r] = Vector256.FusedMultiplyAdd(wide, Vector256.Load(input + (long)r * n + k), acc[r]);
        }
        for (int r = 0; r < rows; r++)
        {
            float sum = Vector256.Sum(acc[r]);
            float* x = input + (long)r * n;
            for (int j = k; j < n; j++) sum += Widen(w[j]) * x[j];
            sums[r] = sum;
        }
    }

    /// <summary>The float32 value of bfloat16 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Widen(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary>A float32 rounded to the nearest bfloat16 (ties to even); NaN stays a (quiet) NaN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ushort Round(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }

    /// <summary>Thirty-two bfloat16 values widened to float32: the first sixteen, then the last.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static (Vector512<float> Low, Vector512<float> High) Widen(Vector512<ushort> bits)
    {
        var (low, high) = Vector512.Widen(bits);
        return ((low << 16).AsSingle(), (high << 16).AsSingle());
    }

    /// <summary><see cref="Round(float)"/> on sixteen values; each bfloat16 in the low half of its lane (for <c>Vector512.Narrow</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<uint> Round(Vector512<float> values)
    {
        var bits = values.AsUInt32();
        var rounded = (bits + Vector512.Create(0x7FFFu) + ((bits >> 16) & Vector512<uint>.One)) >> 16;
        var quiet = (bits >> 16) | Vector512.Create(0x40u);
        return Vector512.ConditionalSelect(Vector512.Equals(values, values).AsUInt32(), rounded, quiet);
    }
}
