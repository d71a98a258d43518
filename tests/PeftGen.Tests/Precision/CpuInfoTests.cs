using System.Linq;
using PeftGen.Precision;
using Xunit;

namespace PeftGen.Tests.Precision;

public sealed class CpuInfoTests
{
    // Two processors' blocks, as /proc/cpuinfo lists them; only the first is read.
    private static readonly string[] AmdZen4 =
    [
        "processor\t: 0",
        "vendor_id\t: AuthenticAMD",
        "cpu family\t: 25",
        "model\t\t: 17",
        "model name\t: AMD EPYC",
        "flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni",
        "",
        "processor\t: 1",
        "cpu family\t: 99",
        "model name\t: Other",
        "flags\t\t: amx_bf16",
    ];

    [Fact]
    public void The_first_processor_names_its_family_model_and_bfloat16_instructions()
    {
        var cpu = CpuInfo.Parse(AmdZen4);
        Assert.Equal("AMD EPYC (family 25, model 17; avx512_bf16)", cpu.Description);
        Assert.True(cpu.HasFastBFloat16);
    }

    [Fact]
    public void Amx_counts_as_fast_bfloat16_and_a_cpu_without_either_says_so()
    {
        var intel = CpuInfo.Parse(["cpu family\t: 6", "model\t\t: 143", "model name\t: Intel(R) Xeon(R) Platinum 8481C", "flags\t\t: avx512f avx512_bf16 amx_bf16 amx_tile"]);
        Assert.Equal("Intel(R) Xeon(R) Platinum 8481C (family 6, model 143; avx512_bf16, amx_bf16)", intel.Description);
        Assert.True(intel.HasFastBFloat16);

        var old = CpuInfo.Parse(["cpu family\t: 23", "model\t\t: 49", "model name\t: AMD EPYC 7B12", "flags\t\t: avx2 fma"]);
        Assert.Equal("AMD EPYC 7B12 (family 23, model 49; no bfloat16 instructions)", old.Description);
        Assert.False(old.HasFastBFloat16);
    }

    [Fact]
    public void Without_cpuinfo_lines_the_cpu_is_unknown_and_not_fast()
    {
        var none = CpuInfo.Parse([]);
        Assert.Equal("unknown CPU", none.Description);
        Assert.False(none.HasFastBFloat16);
        // An ARM block: no family numbers, no x86 flags line.
        var arm = CpuInfo.Parse(["processor\t: 0", "BogoMIPS\t: 50.00", "Features\t: fp asimd bf16"]);
        Assert.Equal("unknown CPU", arm.Description);
    }

    [Fact]
    public void An_emulated_16_bit_compute_is_named_with_what_the_cpu_lacks_and_a_fast_or_unknown_one_is_not()
    {
        var iceLake = CpuInfo.Parse(["cpu family\t: 6", "model\t\t: 106", "model name\t: Intel(R) Xeon(R) Processor @ 2.60GHz", "flags\t\t: avx512f avx512bw avx512_vnni"]);
        string? bf16 = PrecisionSupport.SlowComputeWarning(TorchSharp.torch.ScalarType.BFloat16, TorchSharp.torch.CPU, iceLake);
        Assert.NotNull(bf16);
        Assert.Contains("avx512_bf16 or amx_bf16", bf16);
        Assert.Contains("slower than float32", bf16);
        Assert.Contains("avx512_fp16 or amx_fp16", PrecisionSupport.SlowComputeWarning(TorchSharp.torch.ScalarType.Float16, TorchSharp.torch.CPU, iceLake));
        Assert.Null(PrecisionSupport.SlowComputeWarning(TorchSharp.torch.ScalarType.Float32, TorchSharp.torch.CPU, iceLake));

        // Silent where the products are fast, where nothing is known (no flags) and off the CPU.
        var zen4 = CpuInfo.Parse(AmdZen4);
        Assert.Null(PrecisionSupport.SlowComputeWarning(TorchSharp.torch.ScalarType.BFloat16, TorchSharp.torch.CPU, zen4));
        Assert.NotNull(PrecisionSupport.SlowComputeWarning(TorchSharp.torch.ScalarType.Float16, TorchSharp.torch.CPU, zen4));
        var sapphireRapids = CpuInfo.Parse(["flags\t\t: avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_tile"]);
        Assert.Null(PrecisionSupport.SlowComputeWarning(TorchSharp.torch.ScalarType.Float16, TorchSharp.torch.CPU, sapphireRapids));
        Assert.Null(PrecisionSupport.SlowComputeWarning(TorchSharp.torch.ScalarType.BFloat16, TorchSharp.torch.CPU, CpuInfo.Parse([])));
        Assert.Null(PrecisionSupport.SlowComputeWarning(TorchSharp.torch.ScalarType.BFloat16, new TorchSharp.torch.Device("cuda"), iceLake));
    }

    [Fact]
    public void This_machine_has_a_description_that_agrees_with_the_detection()
    {
        Assert.False(string.IsNullOrWhiteSpace(PrecisionSupport.CpuDescription));
        Assert.Equal(PrecisionSupport.CpuHasFastBFloat16, CpuInfo.BFloat16Flags.Any(PrecisionSupport.CpuDescription.Contains));
    }
}
