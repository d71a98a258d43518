using System;

namespace PeftGen;

/// <summary>
/// Stores the frozen base weight of a projection (or of every projection in a class) in 4 bits, in bitsandbytes'
/// blockwise layout, and dequantizes it on its device for each use. Embeddings and norms stay in full precision.
/// </summary>
/// <remarks>
/// On a class it reaches every projection of that class (on the model class, every projection of the model) except
/// those that stay in full precision: <see cref="TrainableAttribute"/> and <see cref="NoQuantizeAttribute"/> members,
/// and the model's output head, the model class's own projection whose checkpoint name is <c>lm_head</c> (transformers
/// keeps it unquantized by default too). A member's own <c>[Quantize4Bit]</c> always applies, the head's included.
/// </remarks>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
public sealed class Quantize4BitAttribute : Attribute
{
    /// <summary>The 4-bit code book. Default <see cref="QuantType.Nf4"/> (bitsandbytes itself defaults to FP4).</summary>
    public QuantType QuantType { get; set; } = QuantType.Nf4;

    /// <summary>Values per absmax block: a power of two from 32 to 4096. Default 64.</summary>
    public int BlockSize { get; set; } = SettingRules.QuantBlockSize;

    /// <summary>Quantize the absmax values again (8-bit, blocks of 256). Default true.</summary>
    public bool DoubleQuant { get; set; } = SettingRules.QuantDoubleQuant;

    /// <summary>The dtype the weight is dequantized to for the matmul. Default: bfloat16 on CUDA, float32 on CPU.</summary>
    public ComputeDType ComputeDType { get; set; } = ComputeDType.Auto;
}

/// <summary>
/// Keeps a projection's base weight in full precision under a class-level or model-level
/// <see cref="Quantize4BitAttribute"/>, without making it trainable (unlike <see cref="TrainableAttribute"/>): as
/// transformers' <c>llm_int8_skip_modules</c>. Only on <c>[Linear]</c> members, and not together with a member-level
/// <c>[Quantize4Bit]</c>.
/// </summary>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false, Inherited = false)]
public sealed class NoQuantizeAttribute : Attribute
{
}

/// <summary>4-bit code books, with bitsandbytes' values and code order.</summary>
public enum QuantType
{
    /// <summary>NormalFloat4: quantiles of a standard normal, for normally distributed weights.</summary>
    Nf4 = 0,

    /// <summary>FP4 (E2M1).</summary>
    Fp4 = 1,
}

/// <summary>The dtype a 4-bit weight is dequantized to.</summary>
public enum ComputeDType
{
    /// <summary>bfloat16 on CUDA, float32 on CPU.</summary>
    Auto = 0,

    /// <summary>float32.</summary>
    Float32 = 1,

    /// <summary>bfloat16.</summary>
    BFloat16 = 2,

    /// <summary>float16 (CUDA only: CPU matmuls in float16 are slow or unsupported).</summary>
    Float16 = 3,
}
