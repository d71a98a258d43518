using System;
using System.Collections.Generic;
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

    /// <summary>
    /// Mixed precision with float16 products, for GPUs that multiply float16 fast but not bfloat16 (Volta and Turing:
    /// V100, T4). float16 keeps 11 significant bits but its range ends at 65,504 and its normal numbers at 6.1 × 10⁻⁵,
    /// so the trainer scales the loss (<see cref="LossScaler"/>, set by <see cref="Training.TrainerOptions.LossScaling"/>):
    /// small gradients stay representable, and a step whose gradients overflow is skipped and the scale lowered.
    /// Float32 master weights, optimizer state, softmax, loss and norms as with bfloat16. Never chosen by
    /// <see cref="Auto"/>; on CPUs without float16 arithmetic it runs, slowly, for checking results.
    /// </summary>
    Float16,
}

/// <summary>Which devices multiply bfloat16 matrices fast, and how <see cref="TrainingPrecision.Auto"/> resolves.</summary>
public static class PrecisionSupport
{
    private static readonly Lazy<CpuInfo> Cpu = new(CpuInfo.ReadThisMachine);

    /// <summary>
    /// True when this CPU has bfloat16 dot-product instructions that libtorch's GEMMs use (x86 AVX-512 BF16 or AMX
    /// BF16, read from <c>/proc/cpuinfo</c> on Linux). Elsewhere false: without them bfloat16 products are emulated
    /// and slower than float32.
    /// </summary>
    public static bool CpuHasFastBFloat16 => Cpu.Value.HasFastBFloat16;

    /// <summary>
    /// This CPU for reports: its model name and, where <c>/proc/cpuinfo</c> gives them, its family and model numbers
    /// and the bfloat16 instruction sets it has, e.g. <c>AMD EPYC (family 25, model 17; avx512_bf16)</c>. Hosts sold under
    /// one name differ in what bfloat16 buys (an EPYC of family 25, Zen 4, ran a 2048² bfloat16 GEMM 2.2× faster than
    /// float32 where another host measured 5.2×), so every figure should name its host this precisely.
    /// </summary>
    public static string CpuDescription => Cpu.Value.Description;

    /// <summary>
    /// The compute dtype for <paramref name="precision"/> on <paramref name="device"/>: <see cref="TrainingPrecision.Auto"/>
    /// is bfloat16 on CUDA (Ampere and later multiply it at full rate; on older GPUs choose
    /// <see cref="TrainingPrecision.Float16"/> or <see cref="TrainingPrecision.Float32"/>: TorchSharp does not expose a
    /// device's compute capability to tell them apart) and on CPUs with <see cref="CpuHasFastBFloat16"/>, float32 elsewhere.
    /// </summary>
    public static ScalarType ComputeDType(TrainingPrecision precision, Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        return precision switch
        {
            TrainingPrecision.Float32 => ScalarType.Float32,
            TrainingPrecision.BFloat16 => ScalarType.BFloat16,
            TrainingPrecision.Float16 => ScalarType.Float16,
            TrainingPrecision.Auto => device.type == DeviceType.CUDA || (device.type == DeviceType.CPU && CpuHasFastBFloat16)
                ? ScalarType.BFloat16
                : ScalarType.Float32,
            _ => throw new ArgumentOutOfRangeException(nameof(precision), precision, null),
        };
    }

    /// <summary>
    /// Why products in <paramref name="dtype"/> will be slower than float32 on <paramref name="device"/>, or null when
    /// they will not be: bfloat16 on a CPU without AVX-512 BF16 or AMX BF16, float16 on a CPU without AVX-512 FP16 or
    /// AMX FP16 (read from <c>/proc/cpuinfo</c>; where it gives no x86 flags, null). There libtorch emulates the
    /// products, so such a run is for checking results, not for speed (an Intel Ice Lake multiplied bfloat16 4× slower
    /// than float32). <see cref="TrainingPrecision.Auto"/> never chooses them there; the trainer raises this as a
    /// warning before its first step when the choice was explicit.
    /// </summary>
    public static string? SlowComputeWarning(ScalarType dtype, Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        return SlowComputeWarning(dtype, device, Cpu.Value);
    }

    internal static string? SlowComputeWarning(ScalarType dtype, Device device, CpuInfo cpu)
    {
        // No flags read (not Linux, or not x86): nothing is known, so nothing is claimed.
        if (device.type != DeviceType.CPU || cpu.Flags.Count == 0) return null;
        string[] flags = dtype switch
        {
            ScalarType.BFloat16 => CpuInfo.BFloat16Flags,
            ScalarType.Float16 => CpuInfo.Float16Flags,
            _ => [],
        };
        if (flags.Length == 0 || flags.Any(cpu.Flags.Contains)) return null;
        return $"{Name(dtype)} compute on a CPU without {string.Join(" or ", flags)} ({cpu.Name}): libtorch emulates these " +
            $"products, so they run slower than float32; use float32 (or auto, which chooses it here) unless you are checking {Name(dtype)} results.";
    }

    /// <summary>A short name for reports: <c>bfloat16</c>, <c>float16</c> or <c>float32</c>.</summary>
    public static string Name(ScalarType dtype) => dtype switch
    {
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        ScalarType.Float32 => "float32",
        ScalarType.Float64 => "float64",
        _ => dtype.ToString(),
    };

    /// <summary>Parses <c>auto</c>, <c>float32</c>/<c>fp32</c>, <c>bfloat16</c>/<c>bf16</c> or <c>float16</c>/<c>fp16</c> (case-insensitive).</summary>
    public static TrainingPrecision Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return text.Trim().ToLowerInvariant() switch
        {
            "auto" => TrainingPrecision.Auto,
            "float32" or "fp32" => TrainingPrecision.Float32,
            "bfloat16" or "bf16" => TrainingPrecision.BFloat16,
            "float16" or "fp16" => TrainingPrecision.Float16,
            _ => throw new ArgumentException($"Unknown precision '{text}': use auto, float32, bfloat16 or float16.", nameof(text)),
        };
    }
}

/// <summary>What <c>/proc/cpuinfo</c> says of the first processor: model name, family, model and flags.</summary>
internal sealed record CpuInfo(string Name, int? Family, int? Model, IReadOnlySet<string> Flags)
{
    /// <summary>The bfloat16 dot-product instruction sets libtorch's GEMMs use, by their <c>/proc/cpuinfo</c> flag names.</summary>
    internal static readonly string[] BFloat16Flags = ["avx512_bf16", "amx_bf16"];

    /// <summary>The float16 dot-product instruction sets oneDNN's GEMMs use, by their <c>/proc/cpuinfo</c> flag names.</summary>
    internal static readonly string[] Float16Flags = ["avx512_fp16", "amx_fp16"];

    private static readonly CpuInfo Unknown = new("unknown CPU", null, null, new HashSet<string>());

    public bool HasFastBFloat16 => BFloat16Flags.Any(Flags.Contains);

    public string Description
    {
        get
        {
            var details = new List<string>();
            if (Family is { } family && Model is { } model) details.Add($"family {family}, model {model}");
            var bf16 = BFloat16Flags.Where(Flags.Contains).ToList();
            if (Flags.Count > 0) details.Add(bf16.Count > 0 ? string.Join(", ", bf16) : "no bfloat16 instructions");
            return details.Count == 0 ? Name : $"{Name} ({string.Join("; ", details)})";
        }
    }

    /// <summary>This machine's, on Linux; elsewhere (or unreadable) an unknown CPU without flags.</summary>
    public static CpuInfo ReadThisMachine()
    {
        const string path = "/proc/cpuinfo";
        if (!OperatingSystem.IsLinux() || !File.Exists(path)) return Unknown;
        try
        {
            return Parse(File.ReadLines(path));
        }
        catch (IOException)
        {
            return Unknown;
        }
    }

    /// <summary>The first processor's block of <c>/proc/cpuinfo</c> lines (<c>key : value</c>).</summary>
    public static CpuInfo Parse(IEnumerable<string> lines)
    {
        string name = Unknown.Name;
        int? family = null, model = null;
        var flags = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in lines)
        {
            if (line.Length == 0 && (family is not null || flags.Count > 0)) break; // the next processor's block
            int colon = line.IndexOf(':');
            if (colon < 0) continue;
            string key = line[..colon].Trim(), value = line[(colon + 1)..].Trim();
            switch (key)
            {
                case "model name" when value.Length > 0: name = value; break;
                case "cpu family": family = int.TryParse(value, out var f) ? f : null; break;
                case "model": model = int.TryParse(value, out var m) ? m : null; break;
                case "flags": flags.UnionWith(value.Split(' ', StringSplitOptions.RemoveEmptyEntries)); break;
            }
        }
        return new CpuInfo(name, family, model, flags);
    }
}
