using System.Globalization;
using System.Text;
using System.Text.Json;
using PeftGen.Benchmarks.Generator;
using PeftGen.Precision;

namespace PeftGen.Benchmarks;

/// <summary>
/// One training case in one precision in the tables: measured values and what they are compared with (full
/// fine-tuning and the matmul ceiling of the same precision).
/// </summary>
public sealed record Row(
    string Case, string Config, string Method, string Precision, long Batch, long Sequence, double MedianSeconds, double TokensPerSecond,
    double TimeRatioToFull, double Flops, double FloorRatio, double FlopsPerSecond, double FractionOfMatmul,
    long PeakBytes, long ResidentBeforeModelBytes, long EstimatedBytes, long? HeldBetweenStepsBytes);

/// <summary>A goal from the issue next to the measured value.</summary>
public sealed record Goal(string Name, double Measured, double Target, bool Maximum)
{
    public bool Met => Maximum ? Measured <= Target : Measured >= Target;

    public static Goal AtMost(string name, double measured, double target) => new(name, measured, target, true);

    public static Goal AtLeast(string name, double measured, double target) => new(name, measured, target, false);
}

/// <summary>Turns one run's measurements into rows, goals, Markdown and JSON.</summary>
public sealed class Report
{
    private readonly RunPlan plan;
    private readonly MachineInfo machine;
    private readonly MatmulCeiling matmul;
    private readonly IReadOnlyDictionary<(string Case, TrainingPrecision Precision), TrainingMeasurement> training;
    private readonly PairMeasurement modelPair;
    private readonly IReadOnlyList<StepProfileMeasurement> profiles;
    private readonly MicroBenchmarks.DequantResult dequant;
    private readonly MicroBenchmarks.QuantizedBytes quantizedBytes;
    private readonly MicroBenchmarks.DropoutResult dropout;
    private readonly MicroBenchmarks.InferenceResult inference;
    private readonly MicroBenchmarks.InferencePrecisionResult inferencePrecision;
    private readonly GeneratorMeasurement generator;
    private readonly Dictionary<(string Case, TrainingPrecision Precision), Row> rows = [];
    private readonly List<Goal> goals = [];

    public Report(RunPlan plan, MachineInfo machine, MatmulCeiling matmul, IReadOnlyDictionary<(string Case, TrainingPrecision Precision), TrainingMeasurement> training,
        PairMeasurement modelPair, IReadOnlyList<StepProfileMeasurement> profiles, MicroBenchmarks.DequantResult dequant, MicroBenchmarks.QuantizedBytes quantizedBytes,
        MicroBenchmarks.DropoutResult dropout, MicroBenchmarks.InferenceResult inference, MicroBenchmarks.InferencePrecisionResult inferencePrecision,
        GeneratorMeasurement generator)
    {
        this.plan = plan;
        this.machine = machine;
        this.matmul = matmul;
        this.training = training;
        this.modelPair = modelPair;
        this.profiles = profiles;
        this.dequant = dequant;
        this.quantizedBytes = quantizedBytes;
        this.dropout = dropout;
        this.inference = inference;
        this.inferencePrecision = inferencePrecision;
        this.generator = generator;
        foreach (var c in TrainingCases.All)
        {
            foreach (var precision in c.Precisions) rows[(c.Name, precision)] = RowOf(c, precision);
        }
        AddGoals();
    }

    public IReadOnlyList<Goal> Goals => goals;

    /// <summary>The full fine-tuning case a case is compared with: same configuration and batch shape.</summary>
    private static TrainingCase FullOf(TrainingCase c)
    {
        long sequence = c.Sequence + (c.Method == "prompt" ? TrainingCase.PromptTokens : 0);
        return TrainingCases.All.First(f => f.Method == "full" && f.Path == TrainingPath.Trainer && f.Config == c.Config && f.Batch == c.Batch && f.Sequence == sequence);
    }

    private Row RowOf(TrainingCase c, TrainingPrecision precision)
    {
        var m = training[(c.Name, precision)];
        var full = FullOf(c);
        var f = training[(full.Name, precision)];
        double ceiling = matmul.Of(m.Precision);
        // Per token, so prompt tuning's shorter real sequence does not skew either ratio.
        double floorRatio = c.Flops / m.TokensPerStep / (full.Flops / f.TokensPerStep);
        double timeRatio = m.MedianSeconds / m.TokensPerStep / (f.MedianSeconds / f.TokensPerStep);
        return new Row(c.Name, c.Config.Name, c.Method + (c.Path == TrainingPath.Trainer ? "" : c.Path == TrainingPath.NaiveGenerated ? " (naive loop)" : " (hand-written, naive loop)"),
            m.Precision, c.Batch, c.Sequence, m.MedianSeconds, m.TokensPerStep / m.MedianSeconds, timeRatio, c.Flops, floorRatio,
            c.Flops / m.MedianSeconds, c.Flops / m.MedianSeconds / ceiling, m.PeakResidentBytes, m.ResidentBeforeModelBytes, m.EstimatedTrainingBytes,
            m.HeapHeldBetweenStepsBytes);
    }

    /// <summary>The goals of the benchmark issue (float32 rows), then those of mixed precision (#14).</summary>
    private void AddGoals()
    {
        foreach (var config in new[] { "tiny", "small" })
        {
            foreach (var method in new[] { "lora", "qlora", "prompt" })
            {
                var r = rows[($"{config}-{method}", TrainingPrecision.Float32)];
                goals.Add(Goal.AtMost($"{config} {method}: (time per token ÷ full) ÷ (FLOPs per token ÷ full)", r.TimeRatioToFull / r.FloorRatio, 1.1));
            }
            goals.Add(Goal.AtMost($"{config}: QLoRA step ÷ LoRA step", Seconds($"{config}-qlora") / Seconds($"{config}-lora"), 1.3));
        }
        goals.Add(Goal.AtMost("small: LoRA step ÷ full fine-tuning step", Seconds("small-lora") / Seconds("small-full"), 0.75));
        goals.Add(Goal.AtLeast("small: best model FLOP/s ÷ matmul FLOP/s", rows.Values.Where(r => r.Config == "small" && r.Precision == "float32").Max(r => r.FractionOfMatmul), 0.5));
        goals.Add(Goal.AtMost("tiny: generated ÷ hand-written model, same loop, LoRA step (step for step)", modelPair.MedianRatio, 1.02));
        goals.Add(Goal.AtMost("tiny: PeftTrainer LoRA step ÷ naive hand-written LoRA step", Seconds("tiny-lora") / Seconds("tiny-naive-handwritten-lora"), 0.7));
        goals.Add(Goal.AtMost("tiny: PeftTrainer LoRA peak memory ÷ naive hand-written LoRA peak", Peak("tiny-lora") / Peak("tiny-naive-handwritten-lora"), 0.6));
        goals.Add(Goal.AtMost("weights dominate (small, 1 × 64 tokens): LoRA peak ÷ full peak", Peak("weights-lora") / Peak("weights-full"), 0.5));
        goals.Add(Goal.AtMost("NF4 base bytes ÷ float32 bytes (tiny model's projections)", (double)quantizedBytes.Nf4Bytes / quantizedBytes.Float32Bytes, 0.14));
        goals.Add(Goal.AtLeast("NF4 dequantize ÷ tensor copy (output bytes/s)", dequant.DequantizeBytesPerSecond / dequant.CopyBytesPerSecond, 0.4));
        goals.Add(Goal.AtMost("merged LoRA forward ÷ base forward", inference.MergedOverBase, 1.02));
        goals.Add(Goal.AtMost("generator: added to a full build of the 24-layer project (ms)", generator.GeneratorAddsMs, 100));
        goals.Add(Goal.AtMost("generator: PeftGen outputs recomputed after an unrelated edit", generator.GeneratorStepsRecomputed + generator.OutputStepsRecomputed, 0));
        goals.Add(Goal.AtMost("generator: driver time of an unrelated edit above the attribute-lookup floor (ms, \"~0\")", generator.UnrelatedEditDriverMs - generator.FloorEditDriverMs, 2));

        // Mixed precision (#14): the same case in bfloat16 against float32, both from this run.
        string[] configs = ["tiny", "small"], methods = ["full", "lora", "qlora", "prompt"];
        foreach (var config in configs)
        {
            foreach (var method in methods)
                goals.Add(Goal.AtMost($"{config} {method}: bfloat16 step ÷ float32 step", BFloat16Ratio($"{config}-{method}", Seconds), method == "full" ? 0.5 : 0.45));
        }
        foreach (var config in configs)
            goals.Add(Goal.AtMost($"{config}: bfloat16 ÷ float32 peak memory, highest of full, LoRA, QLoRA, prompt", methods.Max(m => BFloat16Ratio($"{config}-{m}", Peak)), 1.0));
        var methodCases = configs.SelectMany(config => methods.Select(method => $"{config}-{method}")).ToHashSet();
        var otherTwins = TrainingCases.All.Where(c => c.Precisions.Length > 1 && !methodCases.Contains(c.Name));
        goals.Add(Goal.AtMost("weights and scaling cases: bfloat16 ÷ float32 peak memory, highest", otherTwins.Max(c => BFloat16Ratio(c.Name, Peak)), 1.0));
        goals.Add(Goal.AtMost($"inference, tiny base model over {TrainingCases.Batch} × {BenchConfig.Tiny.Context} tokens: bfloat16 forward ÷ float32 forward", inferencePrecision.BFloat16OverFloat32, 0.4));
    }

    /// <summary>A float32 case's median step seconds.</summary>
    private double Seconds(string name) => Seconds(name, TrainingPrecision.Float32);

    private double Seconds(string name, TrainingPrecision precision) => training[(name, precision)].MedianSeconds;

    /// <summary>A float32 case's peak resident bytes.</summary>
    private double Peak(string name) => Peak(name, TrainingPrecision.Float32);

    private double Peak(string name, TrainingPrecision precision) => training[(name, precision)].PeakResidentBytes;

    private static double BFloat16Ratio(string name, Func<string, TrainingPrecision, double> measure) =>
        measure(name, TrainingPrecision.BFloat16) / measure(name, TrainingPrecision.Float32);

    public string Markdown(TimeSpan elapsed)
    {
        var md = new StringBuilder();
        md.AppendLine($"Run {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC ({plan.Name}), {machine.Processors} × {machine.Cpu}, {machine.Os}, 2 torch threads; " +
            $"matmul ceiling float32 {matmul.Float32FlopsPerSecond / 1e9:F1}, bfloat16 {matmul.BFloat16FlopsPerSecond / 1e9:F1} GFLOP/s (measured in this run). " +
            "Every trainer case runs in float32 and in bfloat16 mixed precision (bfloat16 products, float32 master weights, optimizer and softmax), " +
            $"each set explicitly; the naive loops and the step-for-step pair run in float32 only. Steps: median of {plan.TinyTimed} after {plan.TinyWarmup} warm-up " +
            $"(small: {plan.LargeTimed} after {plan.LargeWarmup}; scaling: {plan.ScalingTimed})" +
            (plan.Mirrored
                ? " in each process; a case with both precisions runs four processes, float32, bfloat16, bfloat16, float32, and each precision's median, highest peak and highest memory held are over its two (so a median of twice as many steps)."
                : "."));
        md.AppendLine();
        md.AppendLine("### Training steps (÷ full and % of matmul within the same precision)");
        md.AppendLine();
        md.AppendLine("| case | config | method | precision | batch × seq | step (s) | tokens/s | time/token ÷ full | GFLOP/step | FLOPs/token ÷ full | GFLOP/s | % of matmul | peak RSS (MB) | RSS before model (MB) | held between steps (MB) | compile-time estimate (MB) |");
        md.AppendLine("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in rows.Values)
        {
            md.AppendLine($"| {r.Case} | {r.Config} | {r.Method} | {r.Precision} | {r.Batch} × {r.Sequence} | {r.MedianSeconds:F3} | {r.TokensPerSecond:F0} | {r.TimeRatioToFull:F2} | " +
                $"{r.Flops / 1e9:F1} | {r.FloorRatio:F2} | {r.FlopsPerSecond / 1e9:F1} | {100 * r.FractionOfMatmul:F1} | {Mb(r.PeakBytes)} | {Mb(r.ResidentBeforeModelBytes)} | {MbOrDash(r.HeldBetweenStepsBytes)} | {Mb(r.EstimatedBytes)} |");
        }
        md.AppendLine();
        md.AppendLine("### float32 against bfloat16 (same case, same run)");
        md.AppendLine();
        md.AppendLine("| case | batch × seq | step fp32 (s) | step bf16 (s) | step bf16 ÷ fp32 | tokens/s fp32 | tokens/s bf16 | peak RSS fp32 (MB) | peak RSS bf16 (MB) | peak bf16 ÷ fp32 | held fp32 (MB) | held bf16 (MB) | held bf16 ÷ fp32 |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var c in TrainingCases.All.Where(c => c.Precisions.Length > 1))
        {
            var f = rows[(c.Name, TrainingPrecision.Float32)];
            var b = rows[(c.Name, TrainingPrecision.BFloat16)];
            string held = f.HeldBetweenStepsBytes is { } fh && b.HeldBetweenStepsBytes is { } bh && fh > 0 ? ((double)bh / fh).ToString("F2", CultureInfo.InvariantCulture) : "–";
            md.AppendLine($"| {c.Name} | {f.Batch} × {f.Sequence} | {f.MedianSeconds:F3} | {b.MedianSeconds:F3} | {b.MedianSeconds / f.MedianSeconds:F2} | {f.TokensPerSecond:F0} | {b.TokensPerSecond:F0} | " +
                $"{Mb(f.PeakBytes)} | {Mb(b.PeakBytes)} | {(double)b.PeakBytes / f.PeakBytes:F2} | {MbOrDash(f.HeldBetweenStepsBytes)} | {MbOrDash(b.HeldBetweenStepsBytes)} | {held} |");
        }
        md.AppendLine();
        md.AppendLine($"Generated against hand-written model, step for step in one process through the same loop (the trainer's chunked head and loss, " +
            $"torch's AdamW; the order alternating, {modelPair.SecondsA.Length} timed pairs): the models of {modelPair.CaseA} {Stats.Median(modelPair.SecondsA):F3} s " +
            $"and {modelPair.CaseB} {Stats.Median(modelPair.SecondsB):F3} s a step; median ratio of the pairs {modelPair.MedianRatio:F3}.");
        md.AppendLine();
        md.AppendLine("### Where a step's time goes (profile: each phase timed on its own; CPU seconds, minor page faults and the phase's peak resident memory from /proc; C heap in use after the phase from mallinfo2)");
        md.AppendLine();
        md.AppendLine("| case | precision | phase | seconds | share | user CPU s | system CPU s | minor faults | peak RSS in phase (MB) | heap after (MB) |");
        md.AppendLine("|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var p in profiles)
        {
            double sum = p.Phases.Sum(x => x.Seconds);
            foreach (var phase in p.Phases)
                md.AppendLine($"| {p.Case} | {p.Precision} | {phase.Phase} | {phase.Seconds:F3} | {100 * phase.Seconds / sum:F0} % | {phase.UserSeconds:F2} | {phase.SystemSeconds:F2} | {phase.MinorFaults:F0} | {phase.PeakResidentMegabytes:F0} | {phase.HeapAfterMegabytes:F0} |");
        }
        md.AppendLine();
        md.AppendLine("### Scaling (tiny: 4 layers, batch 8 × 128)");
        md.AppendLine();
        md.AppendLine("| case | width | LoRA rank | precision | step (s) | ÷ full at this width | FLOPs ÷ full | peak RSS (MB) | held between steps (MB) | compile-time estimate (MB) |");
        md.AppendLine("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|");
        foreach (var name in new[] { "tiny-lora-r1", "tiny-lora-r4", "tiny-lora", "tiny-lora-r64", "narrow-full", "narrow-lora", "tiny-full", "wide-full", "wide-lora" })
        {
            var c = TrainingCases.Named(name);
            foreach (var precision in c.Precisions)
            {
                var r = rows[(name, precision)];
                md.AppendLine($"| {name} | {c.Config.Width} | {(c.Rank > 0 ? c.Rank.ToString(CultureInfo.InvariantCulture) : "–")} | {r.Precision} | {r.MedianSeconds:F3} | {r.TimeRatioToFull:F2} | {r.FloorRatio:F2} | {Mb(r.PeakBytes)} | {MbOrDash(r.HeldBetweenStepsBytes)} | {Mb(r.EstimatedBytes)} |");
            }
        }
        md.AppendLine();
        md.AppendLine("### Kernels and inference");
        md.AppendLine();
        md.AppendLine("| kernel | measured |");
        md.AppendLine("|---|---:|");
        md.AppendLine($"| float32 matmul | {matmul.Float32FlopsPerSecond / 1e9:F1} GFLOP/s |");
        md.AppendLine($"| bfloat16 matmul | {matmul.BFloat16FlopsPerSecond / 1e9:F1} GFLOP/s ({matmul.BFloat16FlopsPerSecond / matmul.Float32FlopsPerSecond:F2}× float32) |");
        md.AppendLine($"| NF4 dequantize into a preallocated output ({Mb(dequant.OutputBytes)} MB) | {dequant.DequantizeBytesPerSecond / 1e9:F2} GB/s |");
        md.AppendLine($"| `copy_` into a preallocated output, same size | {dequant.CopyBytesPerSecond / 1e9:F2} GB/s |");
        md.AppendLine($"| NF4 dequantize, fresh output per call | {dequant.FreshDequantizeBytesPerSecond / 1e9:F2} GB/s |");
        md.AppendLine($"| `clone()`, fresh output per call | {dequant.FreshCopyBytesPerSecond / 1e9:F2} GB/s |");
        md.AppendLine($"| tiny model projections: float32 / NF4 bytes | {quantizedBytes.Float32Bytes:N0} / {quantizedBytes.Nf4Bytes:N0} |");
        md.AppendLine($"| LoRA dropout (p = {dropout.Probability}, {dropout.Elements / 1048576.0:F0} M float32 values, CPU mask) | {dropout.LoraDropoutSeconds * 1000:F1} ms |");
        md.AppendLine($"| libtorch `dropout`, same input | {dropout.TorchDropoutSeconds * 1000:F1} ms |");
        md.AppendLine($"| forward, base (batch {TrainingCases.Batch} × {BenchConfig.Tiny.Context}) | {inference.BaseSeconds * 1000:F1} ms |");
        md.AppendLine($"| forward, LoRA unmerged | {inference.UnmergedLoraSeconds * 1000:F1} ms ({inference.UnmergedOverBase:F3}× base, median of paired rounds) |");
        md.AppendLine($"| forward, LoRA merged | {inference.MergedLoraSeconds * 1000:F1} ms ({inference.MergedOverBase:F3}× base, median of paired rounds) |");
        md.AppendLine($"| forward, base, float32 (timed in turn with bfloat16) | {inferencePrecision.Float32Seconds * 1000:F1} ms ({inferencePrecision.Float32MinorFaults:F0} page faults a forward; bfloat16 {inferencePrecision.BFloat16MinorFaults:F0}) |");
        md.AppendLine($"| forward, base, bfloat16 (products and logits in bfloat16) | {inferencePrecision.BFloat16Seconds * 1000:F1} ms ({inferencePrecision.BFloat16OverFloat32:F3}× float32, median of paired rounds; logits' relative error {inferencePrecision.BFloat16RelativeError:E1}) |");
        md.AppendLine($"| forward, base stored in bfloat16 (`Module.to(BFloat16)`; not the goal's row) | {inferencePrecision.BFloat16WeightsSeconds * 1000:F1} ms ({inferencePrecision.BFloat16WeightsOverFloat32:F3}× float32, median of paired rounds; logits' relative error {inferencePrecision.BFloat16WeightsRelativeError:E1}) |");
        md.AppendLine();
        md.AppendLine("### The generator (in-process Roslyn, warm medians)");
        md.AppendLine();
        md.AppendLine("| measurement | value |");
        md.AppendLine("|---|---:|");
        md.AppendLine($"| project: hand-written files / lines | {generator.SourceFiles} / {generator.SourceLines} |");
        md.AppendLine($"| generated files / lines (LoRA projections per model) | {generator.GeneratedFiles} / {generator.GeneratedLines} ({generator.AdaptedProjections}) |");
        md.AppendLine($"| full build without the generator (its output compiled as source) | {generator.CompileWithoutGeneratorMs:F0} ms |");
        md.AppendLine($"| full build with the generator | {generator.CompileWithGeneratorMs:F0} ms |");
        md.AppendLine($"| the generator adds (median of paired differences; CPU) | {generator.GeneratorAddsMs:F0} ms ({generator.GeneratorAddsCpuMs:F0} ms CPU) |");
        md.AppendLine($"| driver alone, full run | {generator.DriverFullRunMs:F1} ms |");
        md.AppendLine($"| driver after an unrelated edit | {generator.UnrelatedEditDriverMs:F1} ms |");
        md.AppendLine($"| floors for the same edits: re-reading the classes' members / finding the classes only | {generator.MemberFloorEditDriverMs:F1} / {generator.FloorEditDriverMs:F1} ms |");
        md.AppendLine($"| PeftGen step outputs over the edits: cached / unchanged / recomputed | {generator.GeneratorStepsCached} / {generator.GeneratorStepsUnchanged} / {generator.GeneratorStepsRecomputed} |");
        md.AppendLine($"| source outputs over the edits: cached / unchanged / recomputed | {generator.OutputStepsCached} / {generator.OutputStepsUnchanged} / {generator.OutputStepsRecomputed} |");
        md.AppendLine($"| first (cold) build with the generator, driver share | {generator.ColdCompileWithGeneratorMs:F0} ms, {generator.ColdDriverFullRunMs:F0} ms |");
        md.AppendLine();
        md.AppendLine("### Goals");
        md.AppendLine();
        md.AppendLine("| goal | measured | target | met |");
        md.AppendLine("|---|---:|---:|---|");
        foreach (var g in goals)
            md.AppendLine($"| {g.Name} | {g.Measured:F3} | {(g.Maximum ? "≤" : "≥")} {g.Target:F2} | {(g.Met ? "met" : $"not met ({g.Measured / g.Target:F2}× target)")} |");
        md.AppendLine();
        // What the bfloat16 ratios can reach here: a step that was only products would take float32's time times this.
        double productFloor = matmul.Float32FlopsPerSecond / matmul.BFloat16FlopsPerSecond;
        if (productFloor >= 1)
        {
            // A CPU without bfloat16 instructions: the bfloat16 rows measure emulation, which Auto never chooses.
            md.AppendLine($"On this host a bfloat16 product takes {productFloor:F3}× the time of the same float32 product (the matmul ceilings above): " +
                $"{(PrecisionSupport.CpuHasFastBFloat16 ? "slower, although the CPU names bfloat16 instructions" : "the CPU has no bfloat16 instructions, so libtorch emulates them")}. " +
                "Every bfloat16 row here measures that emulation, which TrainingPrecision.Auto does not choose on such a host (it trains in float32); " +
                "the #14 goals on bfloat16 time cannot be met here and say nothing of hosts with AVX-512 BF16 or AMX. The memory rows compare the two dtypes too, " +
                "but with the emulated products' own buffers, not those of a host with bfloat16 instructions.");
        }
        else
        {
            md.AppendLine($"On this host a bfloat16 product takes {productFloor:F3}× the time of the same float32 product (the matmul ceilings above): " +
                "the floor of every bfloat16 ÷ float32 ratio of a step made only of products. The rest of a step (norms, activations, " +
                "softmax, additions, casts) reads half the bytes in bfloat16, so it takes at best half its float32 time: with a floor " +
                "under 0.5, no step's ratio can go below the floor, and one near it needs a step that is almost all products. The #14 targets (0.40–0.50) were set on a host whose bfloat16 " +
                "products ran 5.2× float32's (a floor of 0.19).");
        }
        md.AppendLine();
        md.AppendLine($"Total run time: {elapsed.TotalMinutes:F1} min. Load average (1/5/15 min) at start: {machine.LoadAtStart}; at end: {MachineInfo.LoadAverage()} " +
            "(other processes on the machine slow every number above; the ratios are less affected than absolute times).");
        return md.ToString();
    }

    public string Json() => JsonSerializer.Serialize(new
    {
        date = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture),
        machine,
        loadAverageAtEnd = MachineInfo.LoadAverage(),
        plan,
        matmulCeiling = matmul,
        training = rows.Values,
        steps = training.Values,
        modelPair,
        profiles,
        dequantization = dequant,
        quantizedBytes,
        dropout,
        inference,
        inferencePrecision,
        generator,
        goals,
    }, new JsonSerializerOptions { WriteIndented = true });

    private static string MbOrDash(long? bytes) => bytes is { } b ? Mb(b) : "–";

    private static string Mb(long bytes) => (bytes / (1024.0 * 1024.0)).ToString("F0", CultureInfo.InvariantCulture);
}
