using System.Diagnostics;
using TinyGpt.Models;
using static TorchSharp.torch;

namespace PeftGen.Benchmarks;

/// <summary>Forward times of one batch served by one adapter and by several, one per row, timed alternately in one process.</summary>
/// <param name="Model">The model and adapters.</param>
/// <param name="Rows">Rows in the batch.</param>
/// <param name="Tokens">Tokens per row.</param>
/// <param name="Adapters">Distinct adapters among the mixed batch's rows.</param>
/// <param name="OneAdapterSeconds">Each timed forward with every row on one adapter (<c>AdapterContext.Use</c>), wall time.</param>
/// <param name="MixedSeconds">Each timed forward with the rows spread over the adapters (<c>AdapterContext.UsePerRow</c>), wall time.</param>
/// <param name="OneAdapterCpuSeconds">The process's CPU time of each one-adapter forward.</param>
/// <param name="MixedCpuSeconds">The process's CPU time of each mixed forward.</param>
public sealed record MixedAdapterMeasurement(
    string Model, int Rows, int Tokens, int Adapters,
    double[] OneAdapterSeconds, double[] MixedSeconds, double[] OneAdapterCpuSeconds, double[] MixedCpuSeconds)
{
    /// <summary>Median of the pairs' mixed ÷ one-adapter wall-time ratios (goal of issue #19 item 3: at most 1.3).</summary>
    public double Ratio => MedianRatio(MixedSeconds, OneAdapterSeconds);

    /// <summary>The same in CPU time, which other processes on a shared machine disturb less than wall time.</summary>
    public double CpuRatio => MedianRatio(MixedCpuSeconds, OneAdapterCpuSeconds);

    private static double MedianRatio(double[] mixed, double[] one) => Stats.Median(mixed.Zip(one, (m, o) => m / o).ToArray());
}

/// <summary>
/// Issue #19 item 3's number: a batch of 8 rows over 4 adapters against the same 8 rows on one adapter, on the tiny
/// configuration (6 × 384, context 128), LoRA r = 16 on every projection, unmerged, float32, eval mode.
/// </summary>
public static class MixedAdapterBenchmark
{
    private static readonly string[] Tenants = ["tenant_1", "tenant_2", "tenant_3"];

    /// <summary>Times <paramref name="runs"/> alternating pairs of forwards after one warm-up pair.</summary>
    public static MixedAdapterMeasurement Run(int runs)
    {
        const int rows = 8, tokens = 128;
        manual_seed(12);
        using var model = new TinyGptLora();
        using (no_grad())
        {
            // Three more tenants at the declared rank, so the two batches differ only in how rows pick adapters.
            foreach (var (_, layer) in ((IPeftModel)model).Projections())
            {
                var declared = layer.AdapterConfig(TinyGptLora.Adapters.Default);
                foreach (var tenant in Tenants) layer.AddAdapter(tenant, declared);
                foreach (var adapter in layer.Adapters) layer.LoraB(adapter).normal_(0, 0.02);
            }
        }
        model.eval();
        using var ids = randint(0, TinyConfig.Vocab, new long[] { rows, tokens });
        // Rows interleaved over the four adapters, two each: no adapter's rows are contiguous.
        string?[] adapters = [.. Enumerable.Range(0, rows).Select(row => row % 4 == 0 ? TinyGptLora.Adapters.Default : Tenants[row % 4 - 1])];

        var process = Process.GetCurrentProcess();
        (double Wall, double Cpu) Time(bool mixed)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            using var selection = mixed ? AdapterContext.UsePerRow(model, adapters) : AdapterContext.Use(adapter: TinyGptLora.Adapters.Default);
            process.Refresh();
            var cpu = process.TotalProcessorTime;
            var clock = Stopwatch.StartNew();
            model.forward(ids);
            double wall = clock.Elapsed.TotalSeconds;
            process.Refresh();
            return (wall, (process.TotalProcessorTime - cpu).TotalSeconds);
        }
        Time(false);
        Time(true);
        var one = new List<(double Wall, double Cpu)>();
        var mixedRuns = new List<(double Wall, double Cpu)>();
        for (int i = 0; i < runs; i++)
        {
            one.Add(Time(false));
            mixedRuns.Add(Time(true));
        }
        return new MixedAdapterMeasurement("tiny LoRA (6 × 384, r = 16 on every projection, unmerged, float32)", rows, tokens, 1 + Tenants.Length,
            [.. one.Select(r => r.Wall)], [.. mixedRuns.Select(r => r.Wall)], [.. one.Select(r => r.Cpu)], [.. mixedRuns.Select(r => r.Cpu)]);
    }
}
