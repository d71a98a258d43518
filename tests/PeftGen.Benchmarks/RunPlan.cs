namespace PeftGen.Benchmarks;

/// <summary>How many warm-up and timed steps each kind of case gets: the full run and the quick smoke run.</summary>
/// <param name="Mirrored">A case with both precisions runs float32, bfloat16, bfloat16, float32, each pair pooled.</param>
public sealed record RunPlan(string Name, int TinyWarmup, int TinyTimed, int LargeWarmup, int LargeTimed, int ScalingTimed, bool Mirrored)
{
    /// <summary>
    /// About 10 minutes on 2 cores. Four warm-up steps on the tiny configuration: on an Intel Xeon with AMX
    /// (2026-12-01), the third and fourth steps of a process were still the slowest of ten in both precisions.
    /// </summary>
    public static readonly RunPlan Full = new("full", TinyWarmup: 4, TinyTimed: 8, LargeWarmup: 1, LargeTimed: 4, ScalingTimed: 5, Mirrored: true);

    /// <summary>Every case, one warm-up and one or two timed steps: checks the suite runs, measures little.</summary>
    public static readonly RunPlan Quick = new("quick", TinyWarmup: 1, TinyTimed: 2, LargeWarmup: 1, LargeTimed: 1, ScalingTimed: 1, Mirrored: false);

    /// <summary>Cases whose step the suite also profiles phase by phase.</summary>
    public static readonly string[] Profiled = ["tiny-full", "tiny-lora", "small-full", "small-lora"];

    public (int Warmup, int Timed) StepsFor(TrainingCase c)
    {
        if (c.Config == BenchConfig.Small && c.Batch == TrainingCases.Batch) return (LargeWarmup, LargeTimed);
        if (c.Config == BenchConfig.Tiny && c.Rank is 0 or 16) return (TinyWarmup, TinyTimed);
        return (TinyWarmup, ScalingTimed);
    }
}

/// <summary>The machine the numbers come from.</summary>
public sealed record MachineInfo(int Processors, string Cpu, string Os, string LoadAtStart)
{
    public static MachineInfo Read() => new(Environment.ProcessorCount, PeftGen.Precision.PrecisionSupport.CpuDescription, System.Runtime.InteropServices.RuntimeInformation.OSDescription, LoadAverage());

    public static string LoadAverage()
    {
        const string path = "/proc/loadavg";
        return File.Exists(path) ? string.Join(' ', File.ReadAllText(path).Split(' ').Take(3)) : "unknown";
    }
}
