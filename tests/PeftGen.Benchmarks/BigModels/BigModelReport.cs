using System.Globalization;
using System.Text;
using System.Text.Json;

namespace PeftGen.Benchmarks.BigModels;

/// <summary>The big-model section's tables and goals (issue #16 item 5), as Markdown and JSON.</summary>
public sealed class BigModelReport(MachineInfo machine, IReadOnlyList<CheckpointWrite> checkpoints, IReadOnlyList<BigModelMeasurement> cases)
{
    private const double GB = 1e9;

    /// <summary>
    /// The issue's goals. Ratios read memory above the process before the model (runtime and libtorch, the same for any
    /// model), against the estimate; the 7B total is the whole process's peak.
    /// </summary>
    public IReadOnlyList<Goal> Goals()
    {
        var goals = new List<Goal>();
        foreach (var m in cases)
        {
            goals.Add(Goal.AtMost($"{m.Case}: build + load peak above the process ÷ weights estimate", BuildLoadRatio(m), 1.15));
            goals.Add(Goal.AtMost($"{m.Case}: stored tensors read (and quantized) per tensor, most", m.ReadsPerTensorMax, 1));
            goals.Add(Goal.AtMost($"{m.Case}: training peak above the process ÷ (training estimate + measured activations)", TrainRatio(m), 1.3));
            if (m.Shape == LlamaCheckpointShape.Llama2_7B.Name)
                goals.Add(Goal.AtMost($"{m.Case}: peak resident memory of the whole process, build to last step (GB)", Math.Max(m.BuildLoadPeakBytes, m.TrainPeakBytes) / GB, 6));
        }
        return goals;
    }

    private static double BuildLoadRatio(BigModelMeasurement m) => (m.BuildLoadPeakBytes - m.ResidentBeforeModelBytes) / (double)m.EstimatedWeightBytes;

    private static double TrainRatio(BigModelMeasurement m) => (m.TrainPeakBytes - m.ResidentBeforeModelBytes) / (double)(m.EstimatedTrainingBytes + m.ActivationBytes);

    public string Markdown(TimeSpan elapsed)
    {
        var md = new StringBuilder();
        string Gb(long bytes) => (bytes / GB).ToString("F2", CultureInfo.InvariantCulture);
        md.AppendLine("## Big models (issue #16 item 5)");
        md.AppendLine();
        md.AppendLine($"Machine: {machine.Processors} × {machine.Cpu}, {machine.Os}; load average at start {machine.LoadAtStart}, at end {MachineInfo.LoadAverage()}. " +
            "GB = 10⁹ bytes. Peaks are VmHWM of the case's own process; \"above\" is above its resident memory before the model.");
        md.AppendLine();
        md.AppendLine("| checkpoint | shards | bf16 bytes (GB) | largest tensor (GB) | written in (s) |");
        md.AppendLine("|---|---:|---:|---:|---|");
        foreach (var c in checkpoints)
            md.AppendLine($"| {c.Shape} | {c.Shards} | {Gb(c.Bytes)} | {Gb(c.LargestTensorBytes)} | {(c.Reused ? "reused" : c.Seconds.ToString("F1", CultureInfo.InvariantCulture))} |");
        md.AppendLine();
        md.AppendLine("| case | method | layers | weights estimate (GB) | before model (GB) | build (s) | load (s) | build + load peak (GB) | above ÷ estimate | weights measured (GB) | tensors read | 4-bit projections |");
        md.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var m in cases)
            md.AppendLine($"| {m.Case} | {m.Method} | {m.Layers} | {Gb(m.EstimatedWeightBytes)} | {Gb(m.ResidentBeforeModelBytes)} | {m.BuildSeconds:F1} | {m.LoadSeconds:F1} | " +
                $"{Gb(m.BuildLoadPeakBytes)} | {BuildLoadRatio(m):F2} | {Gb(m.MeasuredWeightBytes)} | {m.TensorsRead} (each {m.ReadsPerTensorMax}×) | {m.QuantizedProjections} |");
        md.AppendLine();
        md.AppendLine("| case | precision | batch × seq | step times (s) | losses | training estimate (GB) | activations (GB) | training peak (GB) | above ÷ (estimate + activations) | held between steps (GB) |");
        md.AppendLine("|---|---|---|---|---|---:|---:|---:|---:|---:|");
        foreach (var m in cases)
            md.AppendLine($"| {m.Case} | {m.Precision} | {m.Batch} × {m.Sequence} | {string.Join(", ", m.StepSeconds.Select(s => s.ToString("F1", CultureInfo.InvariantCulture)))} | " +
                $"{string.Join(", ", m.Losses.Select(l => l.ToString("F2", CultureInfo.InvariantCulture)))} | {Gb(m.EstimatedTrainingBytes)} | {Gb(m.ActivationBytes)} | {Gb(m.TrainPeakBytes)} | {TrainRatio(m):F2} | " +
                $"{(m.HeapHeldBetweenStepsBytes is { } held ? Gb(held) : "n/a")} |");
        md.AppendLine();
        md.AppendLine("| goal | measured | target | met |");
        md.AppendLine("|---|---:|---:|---|");
        foreach (var g in Goals())
            md.AppendLine($"| {g.Name} | {g.Measured:F3} | {(g.Maximum ? "≤" : "≥")} {g.Target:F2} | {(g.Met ? "met" : $"not met ({g.Measured / g.Target:F2}× target)")} |");
        md.AppendLine();
        md.AppendLine($"Section run time: {elapsed.TotalMinutes:F1} min.");
        return md.ToString();
    }

    public string Json() => JsonSerializer.Serialize(new
    {
        date = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture),
        machine,
        loadAverageAtEnd = MachineInfo.LoadAverage(),
        checkpoints,
        cases,
        goals = Goals(),
    }, new JsonSerializerOptions { WriteIndented = true });
}
