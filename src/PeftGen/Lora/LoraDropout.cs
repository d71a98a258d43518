using System;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Threading.Tasks;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen;

/// <summary>
/// The dropout of LoRA's path (<c>B(A(dropout(x)))</c>), as <c>nn.Dropout</c> in training mode: each input element is
/// zeroed with probability p, the others scaled by <c>1 / (1 − p)</c>.
/// </summary>
/// <remarks>
/// <para>On the CPU the mask comes from a counter-based generator instead of torch's: libtorch draws dropout masks
/// one element at a time on one thread (its parallel MKL path runs on Intel processors only), about 5 ns per element,
/// which made dropout the largest cost LoRA adds to a step (0.28 s of a 4.6 s step of the benchmarks' small model).
/// Here element <c>i</c>'s decision is a pure function of <c>(seed, i)</c> — the SplitMix64 finaliser of
/// <c>seed + i/2 · φ</c>, one 32-bit half per element, against <c>p · 2³²</c> — so any split over threads gives the same
/// mask. The seed is drawn from torch's default generator, so <c>torch.manual_seed</c> (and the trainer's
/// <c>Seed</c>) make runs repeatable, as with torch's dropout, though the masks differ from torch's.</para>
/// <para>float32 and bfloat16 inputs are dropped in one pass (<see cref="DropoutFunction"/>), and the backward pass makes
/// the mask again from the seed instead of keeping it: on the benchmarks' small model with LoRA, bfloat16, that lowered
/// the peak of a step from 1,274–1,275 MB to 1,125–1,138 (float32: 1,673–1,715 to 1,614–1,651) with steps no slower
/// (alternating `PeftGen.Benchmarks child small-lora` runs against the stored-mask path behind a temporary switch, since removed).
/// Other dtypes multiply by a stored mask.</para>
/// <para>Elsewhere (CUDA) it is torch's dropout, which runs on the device.</para>
/// </remarks>
public static class LoraDropout
{
    private const ulong Golden = 0x9E3779B97F4A7C15UL, MixFirst = 0xBF58476D1CE4E5B9UL, MixSecond = 0x94D049BB133111EBUL;
    private const long MinValuesPerWorker = 1 << 18;

    /// <summary>Dropout of <paramref name="input"/> with probability <paramref name="p"/> (training mode), differentiable.</summary>
    public static Tensor Apply(Tensor input, double p)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (p is < 0 or >= 1 || double.IsNaN(p)) throw new ArgumentOutOfRangeException(nameof(p), p, "Dropout probability must be in [0, 1).");
        if (p == 0) return input.alias();
        if (input.device_type != DeviceType.CPU) return nn.functional.dropout(input, p, training: true);

        using var scope = NewDisposeScope();
        ulong seed;
        using (var seedTensor = randint(long.MaxValue, new long[] { 1 }, dtype: ScalarType.Int64)) seed = (ulong)seedTensor.item<long>();
        if (DropoutFunction.Takes(input)) return DropoutFunction.Apply(input, p, seed).MoveToOuterDisposeScope();
        var mask = empty(input.shape, dtype: ScalarType.Float32);
        FillMask(mask, p, seed, get_num_threads());
        return input.mul(mask.to(input.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Writes the mask of seed <paramref name="seed"/> (0 or <c>1 / (1 − p)</c> per element) into the contiguous
    /// float32 CPU tensor <paramref name="mask"/>, on up to <paramref name="workers"/> threads.
    /// </summary>
    internal static unsafe void FillMask(Tensor mask, double p, ulong seed, int workers)
    {
        if (mask.device_type != DeviceType.CPU || mask.dtype != ScalarType.Float32 || !mask.is_contiguous())
            throw new ArgumentException("Expected a contiguous float32 CPU tensor.", nameof(mask));
        long count = mask.NumberOfElements;
        if (count == 0) return;
        uint threshold = Threshold(p);
        float keep = (float)(1.0 / (1.0 - p));
        nint address;
        using (var storage = mask.storage<float>()) address = (nint)((float*)storage.data_ptr() + mask.storage_offset());

        long pairs = (count + 1) / 2;
        int parts = (int)Math.Clamp(count / MinValuesPerWorker, 1, Math.Max(1, workers));
        if (parts == 1)
        {
            FillPairs((float*)address, count, 0, pairs, seed, threshold, keep);
            return;
        }
        Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, part =>
            FillPairs((float*)address, count, pairs * part / parts, pairs * (part + 1) / parts, seed, threshold, keep));
    }

    private static unsafe void FillPairs(float* mask, long count, long firstPair, long endPair, ulong seed, uint threshold, float keep)
    {
        for (long pair = firstPair; pair < endPair; pair++)
        {
            ulong bits = Draw(seed, pair);
            long i = 2 * pair;
            mask[i] = (uint)bits < threshold ? 0f : keep;
            if (i + 1 < count) mask[i + 1] = (uint)(bits >> 32) < threshold ? 0f : keep;
        }
    }

    /// <summary>The bound below which a 32-bit half of a draw drops its element: <c>p · 2³²</c>.</summary>
    internal static uint Threshold(double p) => (uint)Math.Min(p * 4294967296.0, uint.MaxValue);

    /// <summary>The 64-bit draw of elements <c>2·pair</c> (low half) and <c>2·pair + 1</c> (high half) for <paramref name="seed"/>.</summary>
    internal static ulong Draw(ulong seed, long pair) => Mix(seed + (ulong)pair * Golden);

    /// <summary>
    /// <see cref="Draw"/> of pairs <c>firstPair … firstPair + 7</c> at once, as sixteen 32-bit halves in element order
    /// (the low half of each pair's draw first).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<uint> Draw8(ulong seed, long firstPair)
    {
        var z = Vector512.Create(seed) + (Vector512.Create((ulong)firstPair) + PairLanes) * Vector512.Create(Golden);
        z = (z ^ (z >> 30)) * Vector512.Create(MixFirst);
        z = (z ^ (z >> 27)) * Vector512.Create(MixSecond);
        return (z ^ (z >> 31)).AsUInt32();
    }

    private static readonly Vector512<ulong> PairLanes = Vector512.Create(0UL, 1, 2, 3, 4, 5, 6, 7);

    /// <summary>SplitMix64's finaliser: a bijective 64-bit mix whose outputs pass BigCrush for consecutive inputs.</summary>
    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * MixFirst;
        z = (z ^ (z >> 27)) * MixSecond;
        return z ^ (z >> 31);
    }
}
