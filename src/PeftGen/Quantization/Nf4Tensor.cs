using System;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen;

/// <summary>
/// A weight stored in 4 bits in bitsandbytes' blockwise layout (NF4 or FP4 code book), resident on one device.
/// </summary>
/// <remarks>
/// <para>Layout (bit-exact with bitsandbytes' CUDA kernels): the weight is flattened row-major and cut into blocks of
/// <see cref="Quant4BitOptions.BlockSize"/> values (the last one may be partial). Each block is scaled by the reciprocal
/// of its float32 absmax and each value gets the code whose decision interval holds it (strict <c>&gt;</c> against
/// bitsandbytes' thresholds). Element 2k goes to the high nibble of byte k, element 2k+1 to the low one; an odd count
/// is padded with the code of 0.0, as bitsandbytes' kernel does.</para>
/// <para>With double quantization the absmax values minus their mean (the offset) are quantized again in blocks of
/// 256 with the signed 8-bit dynamic map (<see cref="CodeBooks.DynamicMap"/>), keeping a float32 absmax per block of
/// 256. The offset is the float32 mean computed by torch on the weight's device, as bitsandbytes computes it; when
/// that float32 sum overflows (absmax values near float32's maximum), the mean is taken in float64 and rounded to
/// float32, so the offset is always finite. A weight with NaN or infinite values is refused for double quantization.</para>
/// <para>Code books are shared per device (<see cref="CodeBooks"/>); <see cref="StorageBytes"/> counts what this
/// tensor owns.</para>
/// </remarks>
public sealed class Nf4Tensor : IDisposable
{
    /// <summary>bitsandbytes' block size for the second-level (absmax) quantization.</summary>
    public const int NestedBlockSize = 256;

    private Tensor packed;
    private Tensor? absmax;
    private Tensor? quantizedAbsmax;
    private Tensor? nestedAbsmax;
    private Tensor? nestedMap;
    private bool ownsNestedMap;
    private bool disposed;

    // nestedMap: the 256-entry map the absmax codes index; null means our shared map, anything else this tensor owns.
    internal Nf4Tensor(Tensor packed, Tensor? absmax, Tensor? quantizedAbsmax, Tensor? nestedAbsmax, Tensor? nestedMap, float offset,
        long[] shape, ScalarType originalDType, Quant4BitOptions options)
    {
        this.packed = packed;
        this.absmax = absmax;
        this.quantizedAbsmax = quantizedAbsmax;
        this.nestedAbsmax = nestedAbsmax;
        ownsNestedMap = nestedMap is not null;
        this.nestedMap = nestedMap ?? (quantizedAbsmax is null ? null : CodeBooks.DynamicCode(packed.device));
        Offset = offset;
        Shape = shape;
        OriginalDType = originalDType;
        Options = options;
        Count = shape.Aggregate(1L, (a, b) => a * b);
    }

    /// <summary>The logical shape of the weight.</summary>
    public long[] Shape { get; }

    /// <summary>Number of weight values.</summary>
    public long Count { get; }

    /// <summary>The dtype the weight had before quantization (written to bitsandbytes' state as <c>dtype</c>).</summary>
    public ScalarType OriginalDType { get; }

    /// <summary>Code book, block size and double quantization.</summary>
    public Quant4BitOptions Options { get; }

    /// <summary>The mean subtracted from the absmax values before their quantization (0 without double quantization).</summary>
    public float Offset { get; }

    /// <summary>Number of first-level blocks.</summary>
    public long BlockCount => (Count + Options.BlockSize - 1) / Options.BlockSize;

    /// <summary>The device all state lives on.</summary>
    public Device Device => Packed.device;

    /// <summary>The packed codes, uint8, <c>ceil(Count/2)</c> bytes.</summary>
    public Tensor Packed => disposed ? throw new ObjectDisposedException(nameof(Nf4Tensor)) : packed;

    /// <summary>float32 absmax per block (null with double quantization).</summary>
    public Tensor? Absmax => absmax;

    /// <summary>uint8 codes of absmax − offset in the dynamic map (null without double quantization).</summary>
    public Tensor? QuantizedAbsmax => quantizedAbsmax;

    /// <summary>float32 absmax per block of 256 first-level absmax values (null without double quantization).</summary>
    public Tensor? NestedAbsmax => nestedAbsmax;

    /// <summary>
    /// The 256 ascending float32 values that <see cref="QuantizedAbsmax"/> indexes (null without double quantization):
    /// <see cref="CodeBooks.DynamicMap"/> for weights quantized here; for weights read from a file, the map stored in
    /// that file, as bitsandbytes dequantizes with it.
    /// </summary>
    public Tensor? NestedMap => nestedMap;

    /// <summary>Bytes this tensor owns on its device: packed codes plus the absmax state (code books are shared).</summary>
    public long StorageBytes
        => Packed.NumberOfElements
           + (absmax?.NumberOfElements * 4 ?? 0)
           + (quantizedAbsmax?.NumberOfElements ?? 0)
           + (nestedAbsmax?.NumberOfElements * 4 ?? 0)
           + (ownsNestedMap ? nestedMap!.NumberOfElements * 4 : 0)
           + (Options.DoubleQuant ? sizeof(float) : 0);

    /// <summary>
    /// Values per slice when quantizing: a weight is converted to float32 and coded one slice of whole blocks at a time,
    /// so the temporaries are a slice's (a few MiB), however large the weight.
    /// </summary>
    private const long SliceValues = 1 << 20;

    /// <summary>Quantizes a floating-point weight on its own device.</summary>
    /// <remarks>
    /// The weight is read one slice of whole blocks at a time, each converted to float32 on its own (a float32
    /// contiguous weight is read in place), and the absmax values are coded 16,384 at a time: beyond the weight and the
    /// result, quantizing needs a few MiB whatever the weight's size. On the CPU a managed kernel codes each slice in
    /// one pass (<see cref="Nf4CpuKernel"/>); on other devices torch operations do, with the same bits.
    /// </remarks>
    /// <exception cref="ArgumentException">The weight is empty or not floating-point, or it holds NaN or infinite
    /// values and <see cref="Quant4BitOptions.DoubleQuant"/> is on.</exception>
    public static Nf4Tensor Quantize(Tensor weight, Quant4BitOptions options)
        => Quantize(weight, options, useCpuKernel: true);

    /// <summary>As the public overload; <paramref name="useCpuKernel"/> false runs the torch-op path on the CPU too (tests compare them).</summary>
    internal static Nf4Tensor Quantize(Tensor weight, Quant4BitOptions options, bool useCpuKernel)
    {
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (!weight.is_floating_point())
            throw new ArgumentException($"Only floating-point weights can be quantized, got {weight.dtype}.", nameof(weight));
        if (weight.NumberOfElements == 0) throw new ArgumentException("Cannot quantize an empty weight.", nameof(weight));

        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var device = weight.device;
        var n = weight.NumberOfElements;
        var blockSize = options.BlockSize;
        var blocks = (n + blockSize - 1) / blockSize;
        var packed = empty((n + 1) / 2, ScalarType.Byte, device);
        var absmax = empty(blocks, ScalarType.Float32, device);
        var onCpu = useCpuKernel && device.type == DeviceType.CPU;

        // Rows of whole blocks: a contiguous weight is sliced flat, a strided one (a transposed Conv1D weight) by rows of
        // its first dimension, each made contiguous on its own.
        var source = weight.detach();
        var rows = source.is_contiguous() ? source.view(-1) : source;
        var rowLength = n / rows.shape[0];
        var rowsPerBlockRun = blockSize / GreatestCommonDivisor(rowLength, blockSize);
        var rowsPerSlice = Math.Max(1, SliceValues / rowLength / rowsPerBlockRun) * rowsPerBlockRun;
        for (long row = 0; row < rows.shape[0]; row += rowsPerSlice)
        {
            using var sliceScope = NewDisposeScope();
            var slice = rows.narrow(0, row, Math.Min(rowsPerSlice, rows.shape[0] - row)).to(ScalarType.Float32).contiguous().view(-1);
            var first = row * rowLength;
            var count = slice.NumberOfElements;
            var sliceBlocks = (count + blockSize - 1) / blockSize;
            var packedPart = packed.narrow(0, first / 2, (count + 1) / 2);
            var absmaxPart = absmax.narrow(0, first / blockSize, sliceBlocks);
            if (onCpu)
            {
                QuantizeOnCpu(slice, packedPart, absmaxPart, options.QuantType, blockSize);
            }
            else
            {
                var (slicePacked, sliceAbsmax) = QuantizeWithTorchOps(slice, options.QuantType, blockSize);
                packedPart.copy_(slicePacked);
                absmaxPart.copy_(sliceAbsmax);
            }
        }

        Tensor? plainAbsmax = null, quantizedAbsmax = null, nestedAbsmax = null;
        var offset = 0f;
        if (options.DoubleQuant)
        {
            // A NaN or infinite absmax would make the offset NaN or infinite, which no reader (ours included) accepts.
            if (!absmax.isfinite().all().item<bool>())
                throw new ArgumentException("The weight holds NaN or infinite values, which double quantization cannot store (its absmax offset would not be finite); "
                    + "clean the weight or quantize with DoubleQuant = false.", nameof(weight));
            // bitsandbytes' offset is torch's float32 mean; its float32 sum overflows when absmax values near float32's
            // maximum add up past it. The mean itself always fits, so it is then taken in float64 and rounded once.
            var mean = absmax.mean();
            if (!float.IsFinite(mean.item<float>())) mean = absmax.to(ScalarType.Float64).mean().to(ScalarType.Float32);
            offset = mean.item<float>();
            (quantizedAbsmax, nestedAbsmax) = QuantizeAbsmax(absmax.sub_(mean), device);
        }
        else
        {
            plainAbsmax = absmax;
        }

        var result = new Nf4Tensor(packed, plainAbsmax, quantizedAbsmax, nestedAbsmax, null, offset,
            weight.shape.ToArray(), weight.dtype, options);
        result.DetachAll();
        return result;
    }

    /// <summary>The CPU kernel over one contiguous float32 slice, writing into (contiguous) parts of the result.</summary>
    private static unsafe void QuantizeOnCpu(Tensor slice, Tensor packed, Tensor absmax, QuantType quantType, int blockSize)
    {
        Nf4CpuKernel.Quantize(Address<float>(slice), Address<byte>(packed), Address<float>(absmax), slice.NumberOfElements, blockSize,
            quantType, get_num_threads());
        GC.KeepAlive(slice);
    }

    /// <summary>The device-generic path over one flat float32 slice: its packed codes and block absmax values.</summary>
    private static (Tensor Packed, Tensor Absmax) QuantizeWithTorchOps(Tensor flat, QuantType quantType, int blockSize)
    {
        var n = flat.NumberOfElements;
        var blocks = (n + blockSize - 1) / blockSize;
        var padded = PadTo(flat, blocks * blockSize).view(blocks, blockSize);
        var absmax = padded.abs().amax(new long[] { 1 });
        var scaled = padded.mul(absmax.reciprocal().unsqueeze(1)).view(-1);
        // An odd count keeps the code of the 0.0 that bitsandbytes' kernel loads past the end (the padding above).
        var codes = Encode(scaled, quantType, flat.device).narrow(0, 0, (n + 1) / 2 * 2);
        var pairs = codes.view(-1, 2);
        using var four = tensor(4);
        return (pairs.select(1, 0).bitwise_left_shift(four).bitwise_or(pairs.select(1, 1)).to(ScalarType.Byte), absmax);
    }

    /// <summary>
    /// The double quantization of centered absmax values, in runs of whole nested blocks (each independent), so its
    /// int64 search state stays a run's size.
    /// </summary>
    private static (Tensor Codes, Tensor Absmax) QuantizeAbsmax(Tensor centered, Device device)
    {
        const long run = 64 * NestedBlockSize;
        var n = centered.NumberOfElements;
        var codes = empty(n, ScalarType.Byte, device);
        var nested = empty((n + NestedBlockSize - 1) / NestedBlockSize, ScalarType.Float32, device);
        for (long first = 0; first < n; first += run)
        {
            using var scope = NewDisposeScope();
            var count = Math.Min(run, n - first);
            var (runCodes, runAbsmax) = QuantizeDynamic(centered.narrow(0, first, count), device);
            codes.narrow(0, first, count).copy_(runCodes);
            nested.narrow(0, first / NestedBlockSize, runAbsmax.NumberOfElements).copy_(runAbsmax);
        }
        return (codes, nested);
    }

    private static long GreatestCommonDivisor(long a, long b) => b == 0 ? a : GreatestCommonDivisor(b, a % b);

    /// <summary>
    /// The 4-bit state of an all-zero weight, bit for bit what <see cref="Quantize(Tensor, Quant4BitOptions)"/> gives
    /// for one (every block's absmax is 0, so each value scales to NaN and takes code 0; with double quantization the
    /// offset and every absmax code are 0 too), allocated directly: a 4-bit projection's base before a checkpoint fills it.
    /// </summary>
    internal static Nf4Tensor Zeros(long[] shape, Quant4BitOptions options, ScalarType originalDType, Device device)
    {
        options.Validate();
        var count = shape.Aggregate(1L, (a, b) => checked(a * b));
        if (count == 0) throw new ArgumentException("Cannot quantize an empty weight.", nameof(shape));
        var blocks = (count + options.BlockSize - 1) / options.BlockSize;
        using var scope = NewDisposeScope();
        var packed = zeros((count + 1) / 2, ScalarType.Byte, device);
        Nf4Tensor result = options.DoubleQuant
            ? new(packed, null, zeros(blocks, ScalarType.Byte, device), zeros((blocks + NestedBlockSize - 1) / NestedBlockSize, ScalarType.Float32, device),
                null, 0f, shape.ToArray(), originalDType, options)
            : new(packed, zeros(blocks, ScalarType.Float32, device), null, null, null, 0f, shape.ToArray(), originalDType, options);
        result.DetachAll();
        return result;
    }

    /// <summary>
    /// Dequantizes on this tensor's device: <c>code[nibble] × absmax[block]</c> in float32, then cast to <paramref name="dtype"/>.
    /// The caller owns (and disposes) the result.
    /// </summary>
    /// <remarks>
    /// On the CPU a managed kernel writes the float32 values in one pass into a new tensor (see
    /// <see cref="DequantizeInto"/>); bfloat16 and float16 are a cast of that. On other devices it is a few torch
    /// operations: a gather from a 256-entry table of code pairs, then an in-place multiply by the block absmax.
    /// Both give bit-identical values.
    /// </remarks>
    public Tensor Dequantize(ScalarType dtype = ScalarType.Float32)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        Tensor weight;
        if (Device.type == DeviceType.CPU)
        {
            weight = empty(Shape, ScalarType.Float32, Device);
            DequantizeInto(weight);
        }
        else
        {
            weight = DequantizeWithTorchOps();
        }
        return weight.to(dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Dequantizes into <paramref name="output"/>, a float32 tensor of this weight's <see cref="Shape"/> on its
    /// <see cref="Device"/>, overwriting every value: callers that dequantize repeatedly can reuse one buffer.
    /// </summary>
    /// <remarks>
    /// On the CPU, with a contiguous <paramref name="output"/>, a managed kernel reads the packed codes once and writes
    /// each block's <c>code × absmax</c> products straight into the output's memory (AVX-512 or AVX2 permutes where
    /// the processor has them, a scalar loop otherwise), split over torch's intra-op thread count. Anywhere else the
    /// torch-op path of <see cref="Dequantize"/> runs and its result is copied in. The values are the same either way.
    /// The write happens outside autograd.
    /// </remarks>
    /// <exception cref="ArgumentException"><paramref name="output"/> is not float32, has another shape, lives on
    /// another device, or requires grad.</exception>
    public void DequantizeInto(Tensor output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (output.dtype != ScalarType.Float32)
            throw new ArgumentException($"The output must be float32, got {output.dtype}; cast the result of Dequantize(dtype) for other dtypes.", nameof(output));
        if (!output.shape.SequenceEqual(Shape))
            throw new ArgumentException($"The output has shape [{string.Join(", ", output.shape)}]; this weight's shape is [{string.Join(", ", Shape)}].", nameof(output));
        if (output.device.type != Device.type || output.device.index != Device.index)
            throw new ArgumentException($"The output is on {output.device}; this weight is on {Device}. Move one of them with To(device).", nameof(output));
        if (output.requires_grad)
            throw new ArgumentException("The output requires grad; it is overwritten outside autograd, so pass a tensor that does not.", nameof(output));

        using var scope = NewDisposeScope();
        using var _ = no_grad();
        if (Device.type == DeviceType.CPU && output.is_contiguous())
        {
            DequantizeOnCpu(output, Nf4CpuKernel.Best, get_num_threads());
        }
        else
        {
            output.copy_(DequantizeWithTorchOps());
        }
    }

    /// <summary>The CPU kernel with a chosen instruction set and worker count (tests run every one this machine supports).</summary>
    internal unsafe void DequantizeOnCpu(Tensor output, Nf4CpuKernel.Isa isa, int workers)
    {
        // The scope keeps these tensors (and so the addresses taken from them) alive until the kernel has returned.
        using var scope = NewDisposeScope();
        var packed = Packed.contiguous();
        var absmax = this.absmax?.contiguous();
        var quantizedAbsmax = this.quantizedAbsmax?.contiguous();
        var nestedAbsmax = this.nestedAbsmax?.contiguous();
        var nestedMap = this.nestedMap?.contiguous();
        var scales = absmax is not null
            ? Nf4CpuKernel.BlockScales.Plain(Address<float>(absmax))
            : Nf4CpuKernel.BlockScales.Nested(Address<byte>(quantizedAbsmax!), Address<float>(nestedAbsmax!), Address<float>(nestedMap!), Offset);
        Nf4CpuKernel.Dequantize(Address<byte>(packed), scales, Address<float>(output), Count, Options.BlockSize,
            CodeBooks.Values(Options.QuantType), workers, isa);
        GC.KeepAlive(output);
    }

    /// <summary>
    /// The device-generic path, float32 in <see cref="Shape"/>: gather code pairs by byte, then multiply each block by
    /// its absmax in place (full blocks as one broadcast, a partial last block on its own).
    /// </summary>
    internal Tensor DequantizeWithTorchOps()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var blockSize = Options.BlockSize;
        var fullBlocks = Count / blockSize;
        var covered = fullBlocks * blockSize;
        var absmax = BlockAbsmax();
        // Two values per byte: an odd count leaves one padding value at the end, dropped by the final narrow.
        var values = CodeBooks.PairTable(Options.QuantType, Device).index_select(0, Packed.to(ScalarType.Int32)).view(-1);
        if (fullBlocks > 0)
            values.narrow(0, 0, covered).view(fullBlocks, blockSize).mul_(absmax.narrow(0, 0, fullBlocks).unsqueeze(1));
        if (covered < Count)
            values.narrow(0, covered, Count - covered).mul_(absmax.narrow(0, fullBlocks, 1));
        return values.narrow(0, 0, Count).view(Shape).MoveToOuterDisposeScope();
    }

    /// <summary>The float32 absmax of every first-level block (dequantized first when double quantization is on).</summary>
    public Tensor BlockAbsmax()
    {
        if (this.absmax is not null) return this.absmax.alias();
        using var scope = NewDisposeScope();
        var nestedBlocks = nestedAbsmax!.NumberOfElements;
        var values = nestedMap!.index_select(0, quantizedAbsmax!.to(ScalarType.Int64));
        var absmax = PadTo(values, nestedBlocks * NestedBlockSize).view(nestedBlocks, NestedBlockSize)
            .mul(nestedAbsmax.unsqueeze(1)).view(-1).narrow(0, 0, BlockCount);
        using var offset = Offset.ToScalar();
        return absmax.add(offset).MoveToOuterDisposeScope();
    }

    /// <summary>A copy on another device (the same codes and state).</summary>
    public Nf4Tensor To(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        using var scope = NewDisposeScope();
        var copy = new Nf4Tensor(Packed.to(device), absmax?.to(device), quantizedAbsmax?.to(device), nestedAbsmax?.to(device),
            ownsNestedMap ? nestedMap!.to(device) : null, Offset, Shape, OriginalDType, Options);
        copy.DetachAll();
        return copy;
    }

    /// <summary>
    /// This state written into the storage of <paramref name="storage"/>, when both have the same layout (shape, block
    /// size, double quantization, device): the result, with this tensor's offset, original dtype and settings, owns that
    /// storage, and this tensor and <paramref name="storage"/> are disposed. Null, with nothing changed, when the layouts
    /// differ or this tensor owns a nested map of its own (read from a file).
    /// </summary>
    /// <remarks>
    /// A base that a checkpoint fills keeps the memory it was built with, so a load allocates no lasting 4-bit state: the
    /// new state is as short-lived as the weight read for it. Allocating it to keep, between reads and quantization
    /// temporaries that are freed, leaves holes that the C heap keeps resident: 0.16 GB over the 112 projections of
    /// Llama-3.2-1B in 4 bits (glibc's free heap bytes at the end of the load, given back only by <c>malloc_trim</c>).
    /// </remarks>
    internal Nf4Tensor? MoveInto(Nf4Tensor storage)
    {
        ArgumentNullException.ThrowIfNull(storage);
        if (ownsNestedMap || !SameLayout(storage)) return null;
        using (no_grad())
        {
            storage.packed.copy_(Packed);
            storage.absmax?.copy_(absmax!);
            storage.quantizedAbsmax?.copy_(quantizedAbsmax!);
            storage.nestedAbsmax?.copy_(nestedAbsmax!);
        }
        var moved = new Nf4Tensor(storage.packed, storage.absmax, storage.quantizedAbsmax, storage.nestedAbsmax, null, Offset, Shape, OriginalDType, Options);
        // The storage now belongs to the result: only what it does not take is released.
        storage.disposed = true;
        if (storage.ownsNestedMap) storage.nestedMap!.Dispose();
        Dispose();
        return moved;
    }

    private bool SameLayout(Nf4Tensor other)
        => Shape.SequenceEqual(other.Shape) && Options.BlockSize == other.Options.BlockSize && Options.DoubleQuant == other.Options.DoubleQuant
           && Device.type == other.Device.type && Device.index == other.Device.index
           && Packed.NumberOfElements == other.Packed.NumberOfElements
           && (absmax is null) == (other.absmax is null) && (quantizedAbsmax is null) == (other.quantizedAbsmax is null)
           && (nestedAbsmax is null) == (other.nestedAbsmax is null)
           && (nestedAbsmax is null || nestedAbsmax.NumberOfElements == other.nestedAbsmax!.NumberOfElements);

    /// <summary>Releases the device memory.</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        packed.Dispose();
        absmax?.Dispose();
        quantizedAbsmax?.Dispose();
        nestedAbsmax?.Dispose();
        if (ownsNestedMap) nestedMap!.Dispose();
    }

    internal void DetachAll()
    {
        packed.DetachFromDisposeScope();
        absmax?.DetachFromDisposeScope();
        quantizedAbsmax?.DetachFromDisposeScope();
        nestedAbsmax?.DetachFromDisposeScope();
        if (ownsNestedMap) nestedMap!.DetachFromDisposeScope();
    }

    /// <summary>4-bit codes (int32) of values already scaled into [-1, 1].</summary>
    private static Tensor Encode(Tensor scaled, QuantType quantType, Device device)
    {
        var nan = scaled.isnan();
        using Scalar zero = 0.ToScalar(), eight = 8.ToScalar();
        if (quantType == QuantType.Nf4)
        {
            // The number of thresholds strictly below x: bitsandbytes' decision tree, ties to the lower code.
            return bucketize(scaled, CodeBooks.Thresholds(quantType, device), outInt32: true).masked_fill(nan, zero);
        }

        var rank = bucketize(scaled.abs(), CodeBooks.Thresholds(quantType, device), outInt32: true).masked_fill(nan, zero);
        var magnitude = CodeBooks.Fp4Ranks(device).index_select(0, rank.view(-1)).view(rank.shape);
        return magnitude.add(scaled.lt(zero).to(ScalarType.Int32).mul(eight));
    }

    /// <summary>
    /// bitsandbytes' blockwise 8-bit quantization with the dynamic map (blocks of 256), choosing codes as its kernel
    /// <c>dQuantize&lt;0&gt;</c> does: seven probes narrow the range to a lower bound, an upper bound and the final
    /// pivot between them (never probed); the value then takes the bound on its side of the pivot only when it lies
    /// strictly beyond the float32 midpoint of bound and pivot, else the pivot.
    /// </summary>
    internal static (Tensor Codes, Tensor Absmax) QuantizeDynamic(Tensor values, Device device)
    {
        using var scope = NewDisposeScope();
        var n = values.NumberOfElements;
        var blocks = (n + NestedBlockSize - 1) / NestedBlockSize;
        var padded = PadTo(values, blocks * NestedBlockSize).view(blocks, NestedBlockSize);
        var absmax = padded.abs().amax(new long[] { 1 });
        var x = padded.mul(absmax.reciprocal().unsqueeze(1)).view(-1).narrow(0, 0, n);
        var code = CodeBooks.DynamicCode(device);

        using Scalar middle = 127L.ToScalar(), top = 255L.ToScalar(), half = 0.5f.ToScalar();
        var pivot = full(n, middle, dtype: ScalarType.Int64, device: device);
        var lower = zeros(n, dtype: ScalarType.Int64, device: device);
        var upper = full(n, top, dtype: ScalarType.Int64, device: device);
        for (long step = 64; step > 0; step >>= 1)
        {
            var above = x.gt(code.index_select(0, pivot));
            lower = where(above, pivot, lower);
            upper = where(above, upper, pivot);
            using Scalar twice = (2 * step).ToScalar(), once = step.ToScalar();
            pivot = pivot.add(above.to(ScalarType.Int64).mul(twice).sub(once));
        }
        var pivotValue = code.index_select(0, pivot);
        // float32 midpoints, rounded after the add and after the halving, as the kernel computes them.
        var upperMidpoint = code.index_select(0, upper).add(pivotValue).mul(half);
        var lowerMidpoint = code.index_select(0, lower).add(pivotValue).mul(half);
        var codes = where(x.gt(pivotValue),
            where(x.gt(upperMidpoint), upper, pivot),
            where(x.lt(lowerMidpoint), lower, pivot));
        return (codes.to(ScalarType.Byte).contiguous().MoveToOuterDisposeScope(), absmax.contiguous().MoveToOuterDisposeScope());
    }

    /// <summary>The address of a contiguous CPU tensor's first element; valid while the tensor lives.</summary>
    private static unsafe T* Address<T>(Tensor tensor) where T : unmanaged
    {
        if (tensor.device_type != DeviceType.CPU || !tensor.is_contiguous() || tensor.ElementSize != sizeof(T))
            throw new InvalidOperationException($"Expected a contiguous CPU tensor of {typeof(T).Name}, got {tensor.dtype} on {tensor.device}.");
        // storage<T>() wraps the tensor in a new handle; the scope releases it at once.
        using var scope = NewDisposeScope();
        using var storage = tensor.storage<T>();
        return (T*)storage.data_ptr() + tensor.storage_offset();
    }

    private static Tensor PadTo(Tensor flat, long length)
    {
        var missing = length - flat.NumberOfElements;
        return missing == 0 ? flat : nn.functional.pad(flat, new[] { 0L, missing });
    }
}
