using System;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Threading.Tasks;

namespace PeftGen;

/// <summary>
/// The CPU dequantization kernel of <see cref="Nf4Tensor"/>: one pass over the packed codes, writing
/// <c>code[nibble] × absmax[block]</c> straight into float32 memory.
/// </summary>
/// <remarks>
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
        private readonly float* _absmax;
        private readonly byte* _quantized;
        private readonly float* _nested;
        private readonly float* _map;
        private readonly float _offset;

        private BlockScales(float* absmax, byte* quantized, float* nested, float* map, float offset)
        {
            _absmax = absmax;
            _quantized = quantized;
            _nested = nested;
            _map = map;
            _offset = offset;
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
                if (_absmax != null) return _absmax[block];
                var scaled = _map[_quantized[block]] * _nested[block / Nf4Tensor.NestedBlockSize];
                return scaled + _offset;
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
