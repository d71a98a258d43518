using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using PeftGen.Benchmarks;
using PeftGen.Benchmarks.BigModels;
using PeftGen.Precision;
using static TorchSharp.torch;

// PeftGen's benchmark suite. Every training case runs in a child process of this same program, so each one's peak
// resident memory (VmHWM) is its own; kernel benchmarks run here. All numbers come from this run.
set_num_threads(2);
var culture = CultureInfo.InvariantCulture;
CultureInfo.DefaultThreadCurrentCulture = culture;
CultureInfo.CurrentCulture = culture;

// child|child-profile CASE DIR/CONFIG WARMUP TIMED [float32|bfloat16] (float32 when left out).
if (args.Length >= 5 && args[0] is "child" or "child-profile")
{
    var c = TrainingCases.Named(args[1]);
    int childWarmup = int.Parse(args[3], culture), childTimed = int.Parse(args[4], culture);
    var precision = args.Length >= 6 ? PrecisionSupport.Parse(args[5]) : TrainingPrecision.Float32;
    object measurement = args[0] == "child"
        ? TrainingCases.Run(c, args[2], childWarmup, childTimed, precision)
        : StepProfile.Run(c, args[2], childWarmup, childTimed, precision);
    Console.WriteLine("RESULT " + JsonSerializer.Serialize(measurement));
    return 0;
}

if (args.Length == 6 && args[0] == "child-pair")
{
    var pair = TrainingCases.RunPair(TrainingCases.Named(args[1]), TrainingCases.Named(args[2]), args[3],
        int.Parse(args[4], culture), int.Parse(args[5], culture));
    Console.WriteLine("RESULT " + JsonSerializer.Serialize(pair));
    return 0;
}

// Writes every configuration's base into a folder, for running or profiling one case by hand:
//   PeftGen.Benchmarks bases DIR; PeftGen.Benchmarks child CASE DIR/CONFIG WARMUP TIMED [float32|bfloat16]
if (args.Length == 2 && args[0] == "bases")
{
    foreach (var config in BenchConfig.All) TrainingCases.SaveBase(config, Path.Combine(args[1], config.Name));
    return 0;
}

if (args.Length >= 1 && args[0] == "generator")
{
    // The generator section alone (it needs no torch), for work on the generator: its numbers as JSON.
    var only = PeftGen.Benchmarks.Generator.GeneratorBenchmark.Run(args.Contains("--quick"));
    Console.WriteLine(JsonSerializer.Serialize(only, new JsonSerializerOptions { WriteIndented = true }));
    return 0;
}

// The base forward in float32 against bfloat16 alone, in a fresh process (the report measures it in its own process,
// after everything else): `inference-precision [ROUNDS]` prints the same record as the report's row, as JSON.
if (args.Length >= 1 && args[0] == "inference-precision")
{
    int rounds = args.Length >= 2 ? int.Parse(args[1], culture) : 15;
    if (rounds < 1) throw new ArgumentOutOfRangeException(nameof(args), rounds, "ROUNDS must be at least 1.");
    var alone = MicroBenchmarks.InferencePrecision(TrainingCases.Batch, BenchConfig.Tiny.Context, 2, rounds);
    Console.WriteLine(JsonSerializer.Serialize(alone, new JsonSerializerOptions { WriteIndented = true }));
    return 0;
}

// The same forward taken apart, op by op, beside the whole forward and the matmul ceiling, several times in one process:
// `forward-profile [MEASUREMENTS] [ROUNDS]` prints one markdown table per measurement.
if (args.Length is >= 1 and <= 3 && args[0] == "forward-profile")
{
    int measurements = args.Length >= 2 ? int.Parse(args[1], culture) : 4;
    int profileRounds = args.Length >= 3 ? int.Parse(args[2], culture) : 10;
    Console.WriteLine($"{PrecisionSupport.CpuDescription}; {get_num_threads()} torch threads");
    Console.WriteLine();
    Console.Write(ForwardProfile.Markdown(ForwardProfile.Run(measurements, profileRounds)));
    return 0;
}

// Issue #19's three numbers: `serving` runs all three; `generation`, `mixed-adapters` and `main-job-generation` one each.
if (args.Length >= 1 && args[0] is "serving" or "generation" or "mixed-adapters" or "main-job-generation")
{
    bool quickServing = args.Contains("--quick");
    bool all = args[0] == "serving";
    if (all || args[0] == "generation")
    {
        // Tokens/s with and without the KV cache.
        foreach (var m in GenerationBenchmark.Run(quickServing ? 1 : 3))
            Console.WriteLine($"{m.Model}, {m.Precision}: {m.PromptTokens}-token prompt + {m.NewTokens} new tokens: {m.CachedTokensPerSecond:F1} tokens/s with the KV cache, {m.RecomputedTokensPerSecond:F1} without: {m.Speedup:F1}x (goal >= 5x: {Met(m.Speedup >= 5)})");
    }
    if (all || args[0] == "mixed-adapters")
    {
        // One batch over several adapters, one per row, against the batch on one adapter.
        var m = MixedAdapterBenchmark.Run(quickServing ? 3 : 15);
        Console.WriteLine($"{m.Model}, {m.Rows} rows × {m.Tokens} tokens, forward, medians of {m.MixedSeconds.Length} alternating pairs:");
        Console.WriteLine($"  wall time: one adapter {Stats.Median(m.OneAdapterSeconds) * 1000:F1} ms, {m.Adapters} adapters (interleaved rows) {Stats.Median(m.MixedSeconds) * 1000:F1} ms; median ratio {m.Ratio:F2}x (goal <= 1.3x: {Met(m.Ratio <= 1.3)})");
        Console.WriteLine($"  CPU time:  one adapter {Stats.Median(m.OneAdapterCpuSeconds) * 1000:F1} ms, {m.Adapters} adapters {Stats.Median(m.MixedCpuSeconds) * 1000:F1} ms; median ratio {m.CpuRatio:F2}x (goal <= 1.3x: {Met(m.CpuRatio <= 1.3)})");
    }
    if (all || args[0] == "main-job-generation")
    {
        // The main job's generation phase with the cache against without it.
        var m = MainJobGenerationBenchmark.Run(quickServing ? 24 : 128);
        Console.WriteLine($"main job's generation phase (shipped base, LoRA), {m.Precision}, first {m.Records} validation records, greedy then {m.Samples} samples per prompt: {m.CachedSeconds:F1} s as the main job decodes now (KV cache, left-padded batches), {m.RecomputedSeconds:F1} s without the cache, as it decoded when issue #19 was filed (every step recomputes the sequence; batches of one prompt length): {m.Ratio:F2}x the time (goal <= 0.5x: {Met(m.Ratio <= 0.5)}); the same greedy output both ways for {m.SameGreedyOutputs} of {m.Records} records");
    }
    return 0;
}

// big-child CASE CHECKPOINT STEPS: one big-model case (build, load, train) in its own process.
if (args.Length == 4 && args[0] == "big-child")
{
    var measurement = BigModelCases.Run(BigModelCases.Named(args[1]), args[2], int.Parse(args[3], culture));
    Console.WriteLine("RESULT " + JsonSerializer.Serialize(measurement));
    return 0;
}

// big-report OUTPUT RESULTS.JSON...: the big-model section's runs, made one case at a time, as one report.
if (args.Length >= 3 && args[0] == "big-report")
{
    var merged = BigModelReport.Merge(args.Skip(2));
    Directory.CreateDirectory(args[1]);
    string mergedMarkdown = merged.Markdown(TimeSpan.Zero);
    Console.WriteLine(mergedMarkdown);
    File.WriteAllText(Path.Combine(args[1], "results.md"), mergedMarkdown);
    File.WriteAllText(Path.Combine(args[1], "results.json"), merged.Json());
    return 0;
}

// big-models [--checkpoints DIR] [--output DIR] [--cases A,B]: the big-model section alone (issue #16 item 5). The
// synthetic checkpoints (16 GB) stay in the checkpoint folder and are reused by the next run.
if (args.Length >= 1 && args[0] == "big-models")
{
    string Option(string name, string fallback) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    string checkpoints = Option("--checkpoints", Path.Combine("runs", "big-models-checkpoints"));
    string bigOutput = Option("--output", Path.Combine("runs", "big-models-" + DateTime.Now.ToString("yyyyMMdd-HHmmss", culture)));
    var cases = Option("--cases", string.Join(',', BigModelCases.All.Select(c => c.Name))).Split(',').Select(BigModelCases.Named).ToList();
    Directory.CreateDirectory(bigOutput);
    var bigClock = Stopwatch.StartNew();
    var bigMachine = MachineInfo.Read();
    var writes = new List<CheckpointWrite>();
    foreach (var shape in cases.Select(c => c.Shape).Distinct())
    {
        Console.Error.WriteLine($"  checkpoint: {shape.Name} ...");
        writes.Add(SyntheticCheckpoint.Ensure(shape, Path.Combine(checkpoints, shape.Name)));
    }
    var measured = new List<BigModelMeasurement>();
    foreach (var c in cases)
    {
        Console.Error.WriteLine($"  big model: {c.Name} (build, load, {BigModelCases.Steps} steps) ...");
        measured.Add(Child<BigModelMeasurement>("big-child", c.Name, Path.Combine(checkpoints, c.Shape.Name), BigModelCases.Steps.ToString(culture)));
    }
    var bigReport = new BigModelReport(bigMachine, writes, measured);
    string bigMarkdown = bigReport.Markdown(bigClock.Elapsed);
    Console.WriteLine(bigMarkdown);
    File.WriteAllText(Path.Combine(bigOutput, "results.md"), bigMarkdown);
    File.WriteAllText(Path.Combine(bigOutput, "results.json"), bigReport.Json());
    Console.WriteLine($"Results written to {Path.GetFullPath(bigOutput)}");
    return 0;
}

// The whole report: `[--quick] [--output DIR]`. Anything else is a mistake, not a request for a 20-minute run.
if (args is ["--help"] or ["-h"])
{
    Console.WriteLine(Usage());
    return 0;
}
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--quick") continue;
    if (args[i] == "--output" && i + 1 < args.Length)
    {
        i++;
        continue;
    }
    Console.Error.WriteLine($"Unknown or incomplete arguments: {string.Join(' ', args)}");
    Console.Error.WriteLine(Usage());
    return 2;
}

bool quick = args.Contains("--quick");
int outputIndex = Array.IndexOf(args, "--output");
string output = outputIndex >= 0 && outputIndex + 1 < args.Length
    ? args[outputIndex + 1]
    : Path.Combine("runs", "bench-" + DateTime.Now.ToString("yyyyMMdd-HHmmss", culture));
Directory.CreateDirectory(output);
var plan = quick ? RunPlan.Quick : RunPlan.Full;

var clock = Stopwatch.StartNew();
var machine = MachineInfo.Read();
Console.Error.WriteLine($"PeftGen benchmarks ({(quick ? "quick" : "full")}), 2 threads, on {machine.Cpu} ({machine.Processors} processors).");

// Every case of a configuration starts from the same freshly initialised base, loaded as fine-tuning loads one.
string bases = Path.Combine(Path.GetTempPath(), "peftgen-bench-" + Environment.ProcessId.ToString(culture));
try
{
    foreach (var config in BenchConfig.All)
    {
        Console.Error.WriteLine($"  base weights: {config.Name} ...");
        TrainingCases.SaveBase(config, Path.Combine(bases, config.Name));
    }

    // A case's float32 and bfloat16 runs follow each other, so both see about the same machine load. In the full run
    // a case with both precisions runs in the order float32, bfloat16, bfloat16, float32 (each in its own process) and
    // each precision's two runs are pooled: a machine whose speed drifts over a minute (a shared VM's does, by 10–30 %)
    // moves both precisions alike instead of tilting their ratio.
    var training = new Dictionary<(string Case, TrainingPrecision Precision), TrainingMeasurement>();
    foreach (var c in TrainingCases.All)
    {
        var (warmup, timed) = plan.StepsFor(c);
        TrainingPrecision[] order = plan.Mirrored && c.Precisions.Length > 1 ? [.. c.Precisions, .. Enumerable.Reverse(c.Precisions)] : c.Precisions;
        foreach (var precision in order)
        {
            string dtype = PrecisionSupport.Name(TrainingCases.DTypeOf(precision));
            Console.Error.WriteLine($"  training: {c.Name}, {dtype} ({warmup} warm-up + {timed} timed steps) ...");
            var measured = Child<TrainingMeasurement>("child", c.Name, Path.Combine(bases, c.Config.Name), warmup.ToString(culture), timed.ToString(culture), dtype);
            training[(c.Name, precision)] = training.TryGetValue((c.Name, precision), out var earlier) ? TrainingMeasurement.Pool(earlier, measured) : measured;
        }
    }
    // The generated and the hand-written model once more, step for step in one process and through the same
    // low-noise loop: separate runs of the naive loop, which page-faults over a gigabyte per step, differ by more than
    // the two models do. The goal's ratio comes from here.
    var generated = TrainingCases.Named("tiny-naive-generated-lora");
    var handWritten = TrainingCases.Named("tiny-naive-handwritten-lora");
    var (pairWarmup, pairTimed) = plan.StepsFor(generated);
    Console.Error.WriteLine($"  training, step for step: the models of {generated.Name} and {handWritten.Name} ...");
    var modelPair = Child<PairMeasurement>("child-pair", generated.Name, handWritten.Name, Path.Combine(bases, generated.Config.Name),
        pairWarmup.ToString(culture), pairTimed.ToString(culture));

    var profiles = new List<StepProfileMeasurement>();
    foreach (var name in RunPlan.Profiled)
    {
        var c = TrainingCases.Named(name);
        var (warmup, timed) = plan.StepsFor(c);
        foreach (var precision in c.Precisions)
        {
            string dtype = PrecisionSupport.Name(TrainingCases.DTypeOf(precision));
            Console.Error.WriteLine($"  profile: {name}, {dtype} ...");
            profiles.Add(Child<StepProfileMeasurement>("child-profile", c.Name, Path.Combine(bases, c.Config.Name), warmup.ToString(culture), Math.Min(timed, 4).ToString(culture), dtype));
        }
    }

    Console.Error.WriteLine("  matmul ceiling, float32 and bfloat16 ...");
    var matmul = new MatmulCeiling(
        MicroBenchmarks.MatmulFlopsPerSecond(quick ? 1024 : 2048, 2, quick ? 3 : 10, ScalarType.Float32),
        MicroBenchmarks.MatmulFlopsPerSecond(quick ? 1024 : 2048, 2, quick ? 3 : 10, ScalarType.BFloat16));
    Console.Error.WriteLine("  NF4 dequantization ...");
    var dequant = MicroBenchmarks.Dequantize(quick ? 1024 : 4096, quick ? 1024 : 4096, 2, quick ? 3 : 10);
    var quantizedBytes = MicroBenchmarks.TinyModelBase();
    Console.Error.WriteLine("  LoRA dropout ...");
    var dropout = MicroBenchmarks.Dropout(4L << 20, 0.05, 2, quick ? 3 : 10);
    Console.Error.WriteLine("  inference ...");
    var inference = MicroBenchmarks.Inference(TrainingCases.Batch, BenchConfig.Tiny.Context, 2, quick ? 3 : 25);
    Console.Error.WriteLine("  inference, float32 and bfloat16 ...");
    var inferencePrecision = MicroBenchmarks.InferencePrecision(TrainingCases.Batch, BenchConfig.Tiny.Context, 2, quick ? 3 : 15);

    Console.Error.WriteLine("  generator compile time ...");
    var generator = PeftGen.Benchmarks.Generator.GeneratorBenchmark.Run(quick);

    var report = new Report(plan, machine, matmul, training, modelPair, profiles, dequant, quantizedBytes, dropout, inference, inferencePrecision, generator);
    string markdown = report.Markdown(clock.Elapsed);
    Console.WriteLine(markdown);
    File.WriteAllText(Path.Combine(output, "results.md"), markdown);
    File.WriteAllText(Path.Combine(output, "results.json"), report.Json());
    Console.WriteLine($"Results written to {Path.GetFullPath(output)}");
    return 0;
}
finally
{
    if (Directory.Exists(bases)) Directory.Delete(bases, recursive: true);
}

static string Met(bool met) => met ? "met" : "not met";

static T Child<T>(params string[] arguments)
{
    string self = Environment.ProcessPath ?? throw new InvalidOperationException("No process path.");
    var start = new ProcessStartInfo { FileName = self, RedirectStandardOutput = true, UseShellExecute = false };
    // Under `dotnet PeftGen.Benchmarks.dll` the process is the dotnet host: pass the assembly again.
    if (Path.GetFileNameWithoutExtension(self) == "dotnet") start.ArgumentList.Add(typeof(TrainingCases).Assembly.Location);
    foreach (var argument in arguments) start.ArgumentList.Add(argument);
    using var child = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {self}.");
    string stdout = child.StandardOutput.ReadToEnd();
    child.WaitForExit();
    var line = stdout.Split('\n').FirstOrDefault(l => l.StartsWith("RESULT ", StringComparison.Ordinal));
    if (child.ExitCode != 0 || line is null)
        throw new InvalidOperationException($"{string.Join(' ', arguments)} failed (exit {child.ExitCode}):\n{stdout}");
    return JsonSerializer.Deserialize<T>(line["RESULT ".Length..])!;
}

static string Usage() => """
    PeftGen.Benchmarks: the benchmark report (docs/benchmarks.md says what each number means).

      [--quick] [--output DIR]              the whole report (full: 12-20 min; quick: about 6) into DIR (default runs/bench-TIME)
      inference-precision [ROUNDS]          the report's float32 / bfloat16 forward row alone, as JSON
      forward-profile [MEASUREMENTS] [ROUNDS]
                                            that forward op by op beside the whole and the matmul ceiling, 4 × 10 rounds
      generator [--quick]                   the generator's compile-time section alone, as JSON
      serving | generation | mixed-adapters | main-job-generation [--quick]
                                            issue #19's serving numbers
      big-models [--checkpoints DIR] [--output DIR] [--cases A,B]
                                            the big-model section (writes 16 GB of synthetic checkpoints once)
      big-report OUTPUT RESULTS.JSON...     merge big-model runs into one report
      bases DIR                             write every configuration's base, for the child commands
      child | child-profile CASE DIR/CONFIG WARMUP TIMED [float32|bfloat16]
                                            one training case (or its per-phase profile) in this process
      child-pair CASE_A CASE_B DIR/CONFIG WARMUP TIMED
                                            two models step for step in this process
      big-child CASE CHECKPOINT STEPS       one big-model case in this process
    """;
