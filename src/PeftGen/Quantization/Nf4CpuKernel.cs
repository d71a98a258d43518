using System;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Threading.Tasks;

namespace PeftGen;

/// <summary>
/// The CPU kernels of <see cref="Nf4Tensor"/>: dequantization in one pass over the packed codes, writing
/// <c>code[nibble] × absmax[block]</c> straight into float32 memory, and quantization in one pass over float32 values,
/// writing packed codes and absmax values straight into the result's memory.
/// </summary>
/// <remarks>
/// <para>Quantization computes what bitsandbytes' kernel does, per block: the float32 absmax (NaN when the block holds
/// one), its float32 reciprocal, each value times it, and the code whose thresholds the product exceeds strictly (a NaN
/// product takes code 0). Blocks are independent, so the result does not depend on how they are split over workers or
/// slices; it is bit-identical to the torch-op path of <see cref="Nf4Tensor.Quantize(TorchSharp.torch.Tensor, Quant4BitOptions)"/> (<c>Nf4CpuKernelTests</c>).</para>
/// <para>Per block the 16 code values are multiplied by the block's absmax once; every output value is then a pick from
/// those 16 products. A float32 product does not depend on where it is computed, so the result is bit-identical to
/// multiplying each looked-up code by its absmax (the torch-op path).</para>
/// <para>AVX-512 permutes 16 products by 16 nibbles per instruction; AVX2 permutes two halves of 8 and blends them on
/// bit 3 of the nibble; elsewhere (and for the tail of a partial last block) a scalar loop picks from the 16 products.
/// Blocks are split into contiguous ranges, one per worker; each value is written by exactly one worker, so the result
/// does not depend on the split.</para>
/// </remarks>
internal static unsafe class Nf4CpuKernel
{
    /// <summary>Instruction sets the kernel has a loop for.</summary>
    internal enum Isa
    {
        Scalar,
        Avx2,
        Avx512,
    }

    /// <summary>
    /// Values per worker below which splitting costs more than it saves: 1 MB of output is tens of microseconds of
    /// work, against a few for handing a range to a thread-pool thread.
    /// </summary>
    private const long MinValuesPerWorker = 1 << 18;

    /// <summary>The widest loop this machine runs.</summary>
    internal static Isa Best
        => Avx512F.IsSupported ? Isa.Avx512
            : Avx2.IsSupported ? Isa.Avx2
            : Isa.Scalar;

    /// <summary>Whether this machine can run <paramref name="isa"/>'s loop.</summary>
    internal static bool IsSupported(Isa isa) => isa <= Best;

    /// <summary>Where a block's absmax comes from: a float32 array, or 8-bit codes of the dynamic map (double quantization).</summary>
    internal readonly struct BlockScales
    {
        private readonly float* absmax;
        private readonly byte* quantized;
        private readonly float* nested;
        private readonly float* map;
        private readonly float offset;

        private BlockScales(float* absmax, byte* quantized, float* nested, float* map, float offset)
        {
            this.absmax = absmax;
            this.quantized = quantized;
            this.nested = nested;
            this.map = map;
            this.offset = offset;
        }

        public static BlockScales Plain(float* absmax) => new(absmax, null, null, null, 0f);

        // map: the 256-entry map the codes index, the tensor's own (a file may carry another torch build's).
        public static BlockScales Nested(byte* quantized, float* nested, float* map, float offset) => new(null, quantized, nested, map, offset);

        /// <summary>The float32 absmax of a block, rounded as <see cref="Nf4Tensor.BlockAbsmax"/> rounds it (multiply, then add).</summary>
        public float this[long block]
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get
            {
                if (absmax != null) return absmax[block];
                var scaled = map[quantized[block]] * nested[block / Nf4Tensor.NestedBlockSize];
                return scaled + offset;
            }
        }
    }

    /// <summary>
    /// Dequantizes <paramref name="count"/> values packed two per byte (high nibble first) into <paramref name="output"/>,
    /// in parallel over at most <paramref name="workers"/> contiguous ranges of blocks.
    /// </summary>
    internal static void Dequantize(byte* packed, BlockScales scales, float* output, long count, int blockSize,
        float[] code, int workers, Isa isa)
    {
        if (code.Length != 16) throw new ArgumentException("A 4-bit code book has 16 values.", nameof(code));
        if (blockSize < 16 || blockSize % 16 != 0) throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "Block size must be a multiple of 16.");
        if (!IsSupported(isa)) throw new PlatformNotSupportedException($"This machine cannot run the {isa} loop.");

        var blocks = (count + blockSize - 1) / blockSize;
        var parts = (int)Math.Clamp(count / MinValuesPerWorker, 1, Math.Max(1, workers));
        if (parts == 1)
        {
            DequantizeBlocks(packed, scales, output, count, blockSize, code, 0, blocks, isa);
            return;
        }

        // Pointers cannot be captured by a lambda; their addresses can.
        nint packedAddress = (nint)packed, outputAddress = (nint)output;
        Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, part =>
            DequantizeBlocks((byte*)packedAddress, scales, (float*)outputAddress, count, blockSize, code,
                blocks * part / parts, blocks * (part + 1) / parts, isa));
    }

    /// <summary>
    /// Quantizes <paramref name="count"/> float32 values in blocks of <paramref name="blockSize"/> (the last may be
    /// partial): each block's absmax into <paramref name="absmax"/>, its codes packed two per byte (high nibble first;
    /// an odd count is padded with the code of 0.0, as bitsandbytes' kernel does) into <paramref name="packed"/>, in
    /// parallel over at most <paramref name="workers"/> contiguous ranges of blocks.
    /// </summary>
    internal static void Quantize(float* input, byte* packed, float* absmax, long count, int blockSize, QuantType quantType, int workers)
    {
        if (blockSize < 16 || blockSize % 16 != 0) throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "Block size must be a multiple of 16.");
        var thresholds = quantType == QuantType.Nf4 ? CodeBooks.Nf4Thresholds : CodeBooks.Fp4Thresholds;
        var blocks = (count + blockSize - 1) / blockSize;
        var parts = (int)Math.Clamp(count / MinValuesPerWorker, 1, Math.Max(1, workers));
        if (parts == 1)
        {
            QuantizeBlocks(input, packed, absmax, count, blockSize, quantType, thresholds, 0, blocks);
            return;
        }

        nint inputAddress = (nint)input, packedAddress = (nint)packed, absmaxAddress = (nint)absmax;
        Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, part =>
            QuantizeBlocks((float*)inputAddress, (byte*)packedAddress, (float*)absmaxAddress, count, blockSize, quantType, thresholds,
                blocks * part / parts, blocks * (part + 1) / parts));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void QuantizeBlocks(float* input, byte* packed, float* absmax, long count, int blockSize, QuantType quantType,
        float[] thresholds, long firstBlock, long endBlock)
    {
        var codes = stackalloc byte[blockSize + 1];
        for (var block = firstBlock; block < endBlock; block++)
        {
            var start = block * blockSize;
            var length = (int)Math.Min(blockSize, count - start);
            var values = input + start;
            // torch's amax: NaN when any value is NaN (Math.Max propagates it); the padding of a partial block is 0.
            var max = 0f;
            for (var i = 0; i < length; i++) max = MathF.Max(max, MathF.Abs(values[i]));
            absmax[block] = max;
            var scale = 1f / max;
            if (quantType == QuantType.Nf4) CodeNf4(values, length, scale, thresholds, codes);
            else CodeFp4(values, length, scale, thresholds, codes);
            // An odd count: the value after the last one is the padding 0.0, scaled like the rest.
            if ((length & 1) == 1) codes[length] = Code(0f * scale, quantType, thresholds);
            var target = packed + start / 2;
            for (var i = 0; i < length; i += 2) target[i / 2] = (byte)((codes[i] << 4) | codes[i + 1]);
        }
    }

    /// <summary>NF4 codes: how many thresholds each scaled value exceeds (NaN exceeds none).</summary>
    private static void CodeNf4(float* values, int length, float scale, float[] thresholds, byte* codes)
    {
        var i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var factor = Vector256.Create(scale);
            for (; i + 8 <= length; i += 8)
            {
                var scaled = Vector256.Load(values + i) * factor;
                var count = Vector256<int>.Zero;
                // A true comparison is all ones (-1 as an integer): subtracting it counts.
                foreach (var t in thresholds) count -= Vector256.GreaterThan(scaled, Vector256.Create(t)).AsInt32();
                for (var lane = 0; lane < 8; lane++) codes[i + lane] = (byte)count.GetElement(lane);
            }
        }
        for (; i < length; i++) codes[i] = Code(values[i] * scale, QuantType.Nf4, thresholds);
    }

    /// <summary>FP4 codes: the magnitude's rank among the thresholds mapped to its code, plus 8 for a negative value.</summary>
    private static void CodeFp4(float* values, int length, float scale, float[] thresholds, byte* codes)
    {
        for (var i = 0; i < length; i++) codes[i] = Code(values[i] * scale, QuantType.Fp4, thresholds);
    }

    private static byte Code(float scaled, QuantType quantType, float[] thresholds)
    {
        var magnitude = quantType == QuantType.Nf4 ? scaled : MathF.Abs(scaled);
        var rank = 0;
        foreach (var t in thresholds) rank += magnitude > t ? 1 : 0;
        return quantType == QuantType.Nf4
            ? (byte)rank
            : (byte)(CodeBooks.Fp4RankToCode[rank] + (scaled < 0 ? 8 : 0));
    }

    private static void DequantizeBlocks(byte* packed, BlockScales scales, float* output, long count, int blockSize,
        float[] code, long firstBlock, long endBlock, Isa isa)
    {
        switch (isa)
        {
            case Isa.Avx512:
                DequantizeAvx512(packed, scales, output, count, blockSize, code, firstBlock, endBlock);
                break;
            case Isa.Avx2:
                DequantizeAvx2(packed, scales, output, count, blockSize, code, firstBlock, endBlock);
                break;
            default:
                DequantizeScalar(packed, scales, output, count, blockSize, code, firstBlock, endBlock);
                break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DequantizeAvx512(byte* packed, BlockScales scales, float* output, long count, int blockSize,
        float[] code, long firstBlock, long endBlock)
    {
        var codes = Vector512.Create(code);
        // Byte k of 8 feeds lanes 2k (high nibble: shift right by 4) and 2k+1 (low nibble: no shift).
        var duplicate = Vector128.Create((byte)0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        var shifts = Vector512.Create(4u, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0);
        var nibble = Vector512.Create(0x0Fu);
        for (var block = firstBlock; block < endBlock; block++)
        {
            var start = block * blockSize;
            var length = (int)Math.Min(blockSize, count - start);
            var scaled = codes * Vector512.Create(scales[block]);
            var source = packed + start / 2;
            var target = output + start;
            var i = 0;
            for (; i + 16 <= length; i += 16)
            {
                var bytes = Vector128.CreateScalar(Unsafe.ReadUnaligned<ulong>(source + i / 2)).AsByte();
                var lanes = Avx512F.ConvertToVector512UInt32(Ssse3.Shuffle(bytes, duplicate));
                var index = Avx512F.ShiftRightLogicalVariable(lanes, shifts) & nibble;
                Avx512F.Store(target + i, Avx512F.PermuteVar16x32(scaled, index.AsInt32()));
            }
            if (i < length) Tail(source, target, i, length, scaled);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DequantizeAvx2(byte* packed, BlockScales scales, float* output, long count, int blockSize,
        float[] code, long firstBlock, long endBlock)
    {
        var low = Vector256.Create(code.AsSpan(0, 8));
        var high = Vector256.Create(code.AsSpan(8, 8));
        var duplicate = Vector128.Create((byte)0, 0, 1, 1, 2, 2, 3, 3, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80);
        var shifts = Vector256.Create(4u, 0, 4, 0, 4, 0, 4, 0);
        for (var block = firstBlock; block < endBlock; block++)
        {
            var start = block * blockSize;
            var length = (int)Math.Min(blockSize, count - start);
            var absmax = Vector256.Create(scales[block]);
            var scaledLow = low * absmax;
            var scaledHigh = high * absmax;
            var source = packed + start / 2;
            var target = output + start;
            var i = 0;
            for (; i + 8 <= length; i += 8)
            {
                var bytes = Vector128.CreateScalar(Unsafe.ReadUnaligned<uint>(source + i / 2)).AsByte();
                var lanes = Avx2.ConvertToVector256Int32(Ssse3.Shuffle(bytes, duplicate)).AsUInt32();
                // Lanes hold the nibble in bits 0–3 (above them: the high nibble of odd lanes, ignored by the permute).
                var index = Avx2.ShiftRightLogicalVariable(lanes, shifts).AsInt32();
                var fromLow = Avx2.PermuteVar8x32(scaledLow, index);
                var fromHigh = Avx2.PermuteVar8x32(scaledHigh, index);
                // Bit 3 of the nibble moved to the sign bit chooses the upper half of the code book.
                var useHigh = Avx2.ShiftLeftLogical(index, 28).AsSingle();
                Avx.Store(target + i, Avx.BlendVariable(fromLow, fromHigh, useHigh));
            }
            if (i < length) Tail(source, target, i, length, Vector512.Create(scaledLow, scaledHigh));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DequantizeScalar(byte* packed, BlockScales scales, float* output, long count, int blockSize,
        float[] code, long firstBlock, long endBlock)
    {
        var scaled = stackalloc float[16];
        for (var block = firstBlock; block < endBlock; block++)
        {
            var start = block * blockSize;
            var length = (int)Math.Min(blockSize, count - start);
            var absmax = scales[block];
            for (var c = 0; c < 16; c++) scaled[c] = code[c] * absmax;
            Pick(packed + start / 2, output + start, 0, length, scaled);
        }
    }

    /// <summary>The values of a partial last block that the vector loop did not cover.</summary>
    private static void Tail(byte* source, float* target, int from, int length, Vector512<float> scaled)
    {
        var products = stackalloc float[16];
        scaled.Store(products);
        Pick(source, target, from, length, products);
    }

    /// <summary>Values <paramref name="from"/> (even) to <paramref name="length"/> of a block, picked from its 16 products.</summary>
    private static void Pick(byte* source, float* target, int from, int length, float* scaled)
    {
        var i = from;
        for (; i + 2 <= length; i += 2)
        {
            var pair = source[i / 2];
            target[i] = scaled[pair >> 4];
            target[i + 1] = scaled[pair & 0x0F];
        }
        if (i < length) target[i] = scaled[source[i / 2] >> 4];
    }
}
