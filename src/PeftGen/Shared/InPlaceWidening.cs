using System;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen;

/// <summary>
/// A 16-bit tensor kept in the first half of a float32 tensor's own memory, then widened into it in place: one
/// float32-sized allocation where a 16-bit tensor and its float32 copy would make two.
/// </summary>
/// <remarks>
/// <para>The chunked vocabulary head sums its weight gradient in the compute dtype (bfloat16) and hands out a float32
/// gradient. Made as a 16-bit sum and then converted, the two stand side by side at the end (half and whole the
/// float32 size) and come as fresh pages every step; written here, the sum lives where its float32 value will, as the
/// float32 run's single gradient does.</para>
/// <para>TorchSharp 0.107 has no dtype-reinterpreting view (<c>Tensor.view(dtype)</c>); <see cref="Alias"/> makes one on
/// the CPU through the same native call TorchSharp makes for <c>torch.frombuffer</c> (libtorch's <c>from_blob</c>) with
/// a deleter that frees nothing, since the float32 tensor owns the memory. On other devices that call copies the data to
/// the device, so <see cref="Applies"/> is false there and callers keep a separate 16-bit tensor. The tests in
/// InPlaceWideningTests check the alias against the float32 tensor's bytes, so a change of TorchSharp's native
/// signature fails there first.</para>
/// </remarks>
internal static class InPlaceWidening
{
    /// <summary>
    /// Whether a <paramref name="narrowType"/> tensor can be kept inside a <paramref name="wideType"/> tensor on
    /// <paramref name="device"/>: a 16-bit floating type inside float32, on the CPU.
    /// </summary>
    public static bool Applies(ScalarType wideType, ScalarType narrowType, Device device)
        => wideType == ScalarType.Float32 && narrowType is ScalarType.BFloat16 or ScalarType.Float16 && device.type == DeviceType.CPU;

    /// <summary>
    /// A <paramref name="narrowType"/> tensor of <paramref name="target"/>'s shape over the first half of
    /// <paramref name="target"/>'s memory (a contiguous float32 CPU tensor). Its values are whatever those bytes hold.
    /// It owns nothing: it must not be used after <paramref name="target"/> is freed, and writing it overwrites target.
    /// </summary>
    public static unsafe Tensor Alias(Tensor target, ScalarType narrowType)
    {
        ArgumentNullException.ThrowIfNull(target);
        if (!Applies(target.dtype, narrowType, target.device) || !target.is_contiguous())
            throw new ArgumentException($"Expected a contiguous float32 CPU tensor to hold a 16-bit float tensor, got {target.dtype} on {target.device} for {narrowType}.", nameof(target));
        long[] shape = target.shape;
        nint data = target.NumberOfElements == 0 ? 0 : TensorMemory.Address(target);
        IntPtr handle;
        fixed (long* dimensions = shape)
            handle = THSTensor_new(data, KeepMemory, (IntPtr)dimensions, shape.Length, (sbyte)narrowType, (sbyte)narrowType, 0, -1, false);
        if (handle == IntPtr.Zero) CheckForErrors();
        return Tensor.UnsafeCreateTensor(handle);
    }

    /// <summary>
    /// Widens <paramref name="alias"/> (made by <see cref="Alias"/> over <paramref name="target"/>) into
    /// <paramref name="target"/>: afterwards target holds alias's values as float32, and alias holds nothing meaningful.
    /// </summary>
    /// <remarks>
    /// Element i is read from bytes [2i, 2i + 2) and written to [4i, 4i + 4), so the elements go from the last down, in
    /// blocks [start, end) with end ≤ 2·start: a block's writes start at byte 4·start, past every byte it and the blocks
    /// after it read (below 2·end ≤ 4·start). Each block is one vectorised, threaded <c>copy_</c>; about log₂ n of them.
    /// Element 0, whose 16 bits lie inside its own float32 slot, is copied out first and written last.
    /// </remarks>
    public static void Widen(Tensor target, Tensor alias)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(alias);
        if (!Applies(target.dtype, alias.dtype, target.device) || !target.is_contiguous() || !alias.shape.AsSpan().SequenceEqual(target.shape))
            throw new ArgumentException($"Expected a float32 CPU tensor and its 16-bit alias of the same shape, got {target.dtype} [{string.Join(", ", target.shape)}] and {alias.dtype} [{string.Join(", ", alias.shape)}].", nameof(alias));
        long count = target.NumberOfElements;
        if (count == 0) return;
        if (TensorMemory.Address(alias) != TensorMemory.Address(target))
            throw new ArgumentException("The 16-bit tensor does not lie at the start of the float32 tensor's memory.", nameof(alias));
        using var scope = NewDisposeScope();
        var wide = target.view(count);
        var narrow = alias.view(count);
        var first = narrow.narrow(0, 0, 1).to(ScalarType.Float32);
        for (long end = count; end > 1;)
        {
            long start = (end + 1) / 2;
            wide.narrow(0, start, end - start).copy_(narrow.narrow(0, start, end - start));
            end = start;
        }
        wide.narrow(0, 0, 1).copy_(first);
    }

    // The float32 tensor owns the memory; the alias frees nothing.
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate void Deleter(IntPtr memory);

    private static readonly Deleter KeepMemory = static _ => { };

    // LibTorchSharp's constructor over existing memory, as TorchSharp 0.107 declares it (NativeMethods.THSTensor_new):
    // from_blob(data, sizes, deleter, dtype = type), then a conversion to dtype and a move to the device when they differ.
    [DllImport("LibTorchSharp")]
    private static extern IntPtr THSTensor_new(IntPtr data, Deleter deleter, IntPtr dimensions, int numDimensions, sbyte type, sbyte dtype,
        int deviceType, int deviceIndex, [MarshalAs(UnmanagedType.U1)] bool requiresGrad);
}
