using System;
using System.IO;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen.Precision;

/// <summary>The precision a trainer or generator computes in.</summary>
public enum TrainingPrecision
{
    /// <summary>bfloat16 compute where the device multiplies it fast (see <see cref="PrecisionSupport"/>), float32 elsewhere.</summary>
    Auto,

    /// <summary>Everything in float32.</summary>
    Float32,

    /// <summary>
    /// Mixed precision: matrix products in bfloat16; float32 master weights, optimizer state, softmax, loss and
    /// norms. bfloat16 keeps float32's exponent range, so no loss scaling is needed.
    /// </summary>
    BFloat16,
}

/// <summary>Which devices multiply bfloat16 matrices fast, and how <see cref="TrainingPrecision.Auto"/> resolves.</summary>
public static class PrecisionSupport
{
    private static readonly Lazy<bool> CpuBf16 = new(DetectCpuBf16);

    /// <summary>
    /// True when this CPU has bfloat16 dot-product instructions that libtorch's GEMMs use (x86 AVX-512 BF16 or AMX
    /// BF16, read from <c>/proc/cpuinfo</c> on Linux). Elsewhere false: without them bfloat16 products are emulated
    /// and slower than float32.
    /// </summary>
    public static bool CpuHasFastBFloat16 => CpuBf16.Value;

    /// <summary>
    /// The compute dtype for <paramref name="precision"/> on <paramref name="device"/>: <see cref="TrainingPrecision.Auto"/>
    /// is bfloat16 on CUDA (Ampere and later multiply it at full rate; on older GPUs choose
    /// <see cref="TrainingPrecision.Float32"/>) and on CPUs with <see cref="CpuHasFastBFloat16"/>, float32 elsewhere.
    /// </summary>
    public static ScalarType ComputeDType(TrainingPrecision precision, Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        return precision switch
        {
            TrainingPrecision.Float32 => ScalarType.Float32,
            TrainingPrecision.BFloat16 => ScalarType.BFloat16,
            TrainingPrecision.Auto => device.type == DeviceType.CUDA || (device.type == DeviceType.CPU && CpuHasFastBFloat16)
                ? ScalarType.BFloat16
                : ScalarType.Float32,
            _ => throw new ArgumentOutOfRangeException(nameof(precision), precision, null),
        };
    }

    /// <summary>A short name for reports: <c>bfloat16</c> or <c>float32</c>.</summary>
    public static string Name(ScalarType dtype) => dtype switch
    {
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        ScalarType.Float32 => "float32",
        ScalarType.Float64 => "float64",
        _ => dtype.ToString(),
    };

    /// <summary>Parses <c>auto</c>, <c>float32</c>/<c>fp32</c> or <c>bfloat16</c>/<c>bf16</c> (case-insensitive).</summary>
    public static TrainingPrecision Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return text.Trim().ToLowerInvariant() switch
        {
            "auto" => TrainingPrecision.Auto,
            "float32" or "fp32" => TrainingPrecision.Float32,
            "bfloat16" or "bf16" => TrainingPrecision.BFloat16,
            _ => throw new ArgumentException($"Unknown precision '{text}': use auto, float32 or bfloat16.", nameof(text)),
        };
    }

    private static bool DetectCpuBf16()
    {
        const string cpuinfo = "/proc/cpuinfo";
        if (!OperatingSystem.IsLinux() || !File.Exists(cpuinfo)) return false;
        try
        {
            var flags = File.ReadLines(cpuinfo).FirstOrDefault(line => line.StartsWith("flags", StringComparison.Ordinal));
            if (flags is null) return false;
            var names = flags[(flags.IndexOf(':') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return names.Contains("avx512_bf16") || names.Contains("amx_bf16");
        }
        catch (IOException)
        {
            return false;
        }
    }
}
