using static TorchSharp.torch;

namespace PeftGen;

/// <summary>Where a CPU tensor's storage is, for the project's vector kernels.</summary>
internal static unsafe class TensorMemory
{
    /// <summary>
    /// The address of <paramref name="tensor"/>'s first element (a contiguous CPU tensor). Native memory does not move, so
    /// the address holds while the tensor lives; pointers cannot be captured by a worker's lambda, addresses can.
    /// </summary>
    public static nint Address(Tensor tensor)
    {
        fixed (byte* bytes = tensor.bytes) return (nint)bytes;
    }
}
