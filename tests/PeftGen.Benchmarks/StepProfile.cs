using System.Diagnostics;
using PeftGen.Architectures;
using PeftGen.Data;
using PeftGen.Precision;
using PeftGen.Training;
using TinyGpt.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftGen.Benchmarks;

/// <summary>Seconds, CPU time and page faults that one phase of a training step took (medians over the timed steps).</summary>
public sealed record PhaseMeasurement(string Phase, double Seconds, double UserSeconds, double SystemSeconds, double MinorFaults, double PeakResidentMegabytes, double HeapAfterMegabytes);

/// <summary>Where one training case's step time goes, phase by phase, in one precision (<c>float32</c> or <c>bfloat16</c>).</summary>
public sealed record StepProfileMeasurement(string Case, string Precision, double StepSeconds, PhaseMeasurement[] Phases);

/// <summary>
/// A phase-by-phase profile of the trainer's step: the same operations as <see cref="PeftTrainer"/> (forward of the
/// trunk, chunked head + loss with its gradients, backward through the trunk, gradient norm and clipping, AdamW),
/// each timed on its own. CPU work is synchronous, so wall-clock per phase is exact; user/system CPU time and minor
/// page faults per phase come from <c>/proc/self/stat</c> and show what is computation and what is the kernel handing
/// out fresh memory. In bfloat16 the step runs inside <see cref="ComputePrecision.Use"/>, as the trainer's does.
/// </summary>
public static class StepProfile
{
    private static readonly string[] PhaseNames = ["forward (trunk)", "head + loss (chunked, with gradients)", "backward (trunk)", "gradient norm + clip", "optimizer (AdamW)", "zero gradients"];

    public static StepProfileMeasurement Run(TrainingCase c, string baseFolder, int warmup, int timed, TrainingPrecision precision)
    {
        if (c.Path != TrainingPath.Trainer) throw new ArgumentException($"Case '{c.Name}' does not use the trainer.");
        var dtype = TrainingCases.DTypeOf(precision);
        using var workspace = new ChunkedCrossEntropy.Workspace(); // as PeftTrainer keeps one
        using var model = (Gpt2LMHeadModel)TrainingCases.Build(c, baseFolder);
        model.train();
        var trainable = ((IPeftModel)model).NamedTrainableParameters();
        using var optimizer = new AdamWOptimizer(trainable, 0.9, 0.999, 1e-8, 0.0);
        var batches = new RandomBatches(c.Batch, c.Sequence, c.Config.Vocab, seed: 7);
        var samples = new List<double[][]>();
        var steps = new List<double>();
        for (int step = 0; step < warmup + timed; step++)
        {
            var batch = batches.GetBatch(step);
            var phases = new double[PhaseNames.Length][];
            var total = Stopwatch.StartNew();
            using (ComputePrecision.Use(dtype))
            using (var scope = NewDisposeScope())
            {
                var ids = batch.InputIdsTensor();
                var labels = batch.LabelsTensor();
                Tensor hidden = null!, sum = null!;
                phases[0] = Measure(() => hidden = model.ForwardHidden(ids));
                phases[1] = Measure(() => sum = CausalLmLoss.Sum(hidden, model.HeadWeight, labels, workspace: workspace).Sum);
                double labelled = batch.LabelledTokens;
                phases[2] = Measure(() => sum.div(labelled).backward());
                // The trainer's own gradient code, with its default clip (TrainerOptions.MaxGradNorm = 1).
                phases[3] = Measure(() => Gradients.Clip(trainable, Gradients.Norm(trainable), 1.0));
                phases[4] = Measure(() => optimizer.Step(1e-4));
                phases[5] = Measure(() => Gradients.Zero(trainable));
            }
            total.Stop();
            if (step < warmup) continue;
            samples.Add(phases);
            steps.Add(total.Elapsed.TotalSeconds);
        }
        var result = new PhaseMeasurement[PhaseNames.Length];
        for (int i = 0; i < PhaseNames.Length; i++)
        {
            double Median(int field) => Stats.Median(samples.Select(s => s[i][field]).ToArray());
            result[i] = new PhaseMeasurement(PhaseNames[i], Median(0), Median(1), Median(2), Median(3), Median(4), Median(5));
        }
        return new StepProfileMeasurement(c.Name, PrecisionSupport.Name(dtype), Stats.Median(steps), result);
    }

    /// <summary>
    /// Wall seconds, user seconds, system seconds and minor faults of one call, the process's peak resident megabytes
    /// during it (the peak reset before it; NaN where it cannot be) and the C heap in use after it (NaN where unknown).
    /// </summary>
    private static double[] Measure(Action action)
    {
        bool peakReset = ProcessMemory.TryResetPeak();
        var before = ProcStat.Read();
        var clock = Stopwatch.StartNew();
        action();
        clock.Stop();
        var after = ProcStat.Read();
        double peak = peakReset ? ProcessMemory.PeakResidentBytes() / 1e6 : double.NaN;
        double heap = ProcessMemory.NativeHeapInUseBytes() is { } bytes ? bytes / 1e6 : double.NaN;
        return [clock.Elapsed.TotalSeconds, after.UserSeconds - before.UserSeconds, after.SystemSeconds - before.SystemSeconds, after.MinorFaults - before.MinorFaults, peak, heap];
    }
}

/// <summary>This process's CPU times and minor page faults from <c>/proc/self/stat</c> (zeros elsewhere).</summary>
public readonly record struct ProcStat(double UserSeconds, double SystemSeconds, long MinorFaults)
{
    // USER_HZ is 100 on every Linux configuration .NET runs on.
    private const double TicksPerSecond = 100.0;

    public static ProcStat Read()
    {
        const string path = "/proc/self/stat";
        if (!File.Exists(path)) return default;
        string text = File.ReadAllText(path);
        // Fields after the parenthesised command name; minflt is field 10, utime 14, stime 15 (1-based).
        var fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');
        return new ProcStat(long.Parse(fields[11]) / TicksPerSecond, long.Parse(fields[12]) / TicksPerSecond, long.Parse(fields[7]));
    }
}
