using System;
using static TorchSharp.torch;

namespace PeftGen;

/// <summary>
/// The dtype a projection's float base weight is stored in. float32 is the default; bfloat16 and float16 halve the
/// memory of a frozen base (PEFT users load 7B models in bfloat16), are loaded from a checkpoint of that dtype as
/// stored, and cannot be trained (training keeps float32 master weights).
/// </summary>
/// <remarks>
/// The compute-time rules are in <c>docs/precision.md</c>: products run in the scope's compute dtype
/// (<see cref="Precision.ComputePrecision"/>), so a bfloat16 base under bfloat16 compute is used as stored, and
/// outside a scope in the input's dtype, so a 16-bit base is widened per call.
/// </remarks>
public enum BaseDType
{
    /// <summary>float32: 4 bytes per value; trainable.</summary>
    Float32 = 0,

    /// <summary>bfloat16: 2 bytes per value, float32's exponent range; frozen only.</summary>
    BFloat16 = 1,

    /// <summary>float16: 2 bytes per value; frozen only.</summary>
    Float16 = 2,
}

/// <summary>Conversions of <see cref="BaseDType"/>.</summary>
public static class BaseDTypes
{
    /// <summary>The torch dtype of <paramref name="dtype"/>.</summary>
    public static ScalarType ToScalarType(this BaseDType dtype) => dtype switch
    {
        BaseDType.Float32 => ScalarType.Float32,
        BaseDType.BFloat16 => ScalarType.BFloat16,
        BaseDType.Float16 => ScalarType.Float16,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Not a base dtype."),
    };

    /// <summary>Bytes per stored value: 4 for float32, 2 for the 16-bit types.</summary>
    public static int BytesPerValue(this BaseDType dtype) => dtype == BaseDType.Float32 ? 4 : 2;

    /// <summary>The base dtype of a torch dtype.</summary>
    /// <exception cref="ArgumentException">The dtype is not float32, bfloat16 or float16.</exception>
    public static BaseDType FromScalarType(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => BaseDType.Float32,
        ScalarType.BFloat16 => BaseDType.BFloat16,
        ScalarType.Float16 => BaseDType.Float16,
        _ => throw new ArgumentException($"A base weight is stored in float32, bfloat16 or float16, not {dtype}.", nameof(dtype)),
    };
}
