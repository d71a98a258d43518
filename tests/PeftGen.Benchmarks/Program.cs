using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using PeftGen.Benchmarks;
using TinyGpt.Models;
using static TorchSharp.torch;

// PeftGen's benchmark suite. Every training case runs in a child process of this same program, so each one's peak
// resident memory (VmHWM) is its own; kernel benchmarks run here. All numbers come from this run.
set_num_threads(2);
var culture = CultureInfo.InvariantCulture;
CultureInfo.DefaultThreadCurrentCulture = culture;
CultureInfo.CurrentCulture = culture;

bool quick = args.Contains("--quick");
int warmup = quick ? 1 : 2, timed = quick ? 2 : 8;

if (args.Length >= 2 && args[0] == "child")
{
    var measurement = TrainingCases.Run(args[1], warmup, timed);
    Console.WriteLine("RESULT " + JsonSerializer.Serialize(measurement));
    return 0;
}

int outputIndex = Array.IndexOf(args, "--output");
string output = outputIndex >= 0 && outputIndex + 1 < args.Length
    ? args[outputIndex + 1]
    : Path.Combine("runs", "bench-" + DateTime.Now.ToString("yyyyMMdd-HHmmss", culture));
Directory.CreateDirectory(output);

var clock = Stopwatch.StartNew();
string loadAtStart = LoadAverage();
Console.Error.WriteLine($"PeftGen benchmarks ({(quick ? "quick" : "full")}): {warmup} warm-up + {timed} timed steps per case, 2 threads.");

var training = new Dictionary<string, TrainingMeasurement>();
foreach (var name in TrainingCases.All)
{
    Console.Error.WriteLine($"  training: {name} ...");
    training[name] = RunChild(name, quick);
}

Console.Error.WriteLine("  matmul ceiling ...");
double matmulFlops = MicroBenchmarks.MatmulFlopsPerSecond(quick ? 1024 : 2048, warmup, quick ? 3 : 10);
Console.Error.WriteLine("  NF4 dequantization ...");
var dequant = MicroBenchmarks.Dequantize(quick ? 1024 : 4096, quick ? 1024 : 4096, warmup, quick ? 3 : 10);
var quantizedBytes = MicroBenchmarks.TinyModelBase();
Console.Error.WriteLine("  inference ...");
var inference = MicroBenchmarks.Inference(TrainingCases.Batch, TinyConfig.Context, warmup, quick ? 3 : 8);

// Derived figures and goals.
GptShape Shape(string name) => new(TinyConfig.Vocab, TinyConfig.Width, TinyConfig.Layers, TrainingCases.Batch, TrainingCases.Sequence(name));
double FlopsOf(string name) => name switch
{
    "trainer-full" => ModelFlops.Full(Shape(name)),
    "trainer-prompt" => ModelFlops.Prompt(Shape(name), TrainingCases.PromptTokens),
    _ => ModelFlops.Lora(Shape(name), rank: 16),
};
var full = training["trainer-full"];
double fullFlops = FlopsOf("trainer-full");

var rows = new List<Row>();
var goals = new List<Goal>();
foreach (var (name, m) in training)
{
    double flops = FlopsOf(name);
    // The floor compares FLOPs per token, so prompt tuning's shorter real sequence does not skew it.
    double floorRatio = flops / m.TokensPerStep / (fullFlops / full.TokensPerStep);
    double timeRatio = m.MedianSeconds / m.TokensPerStep / (full.MedianSeconds / full.TokensPerStep);
    rows.Add(new Row(name, m.Sequence, m.MedianSeconds, m.TokensPerStep / m.MedianSeconds, timeRatio, flops, floorRatio,
        flops / m.MedianSeconds, flops / m.MedianSeconds / matmulFlops, m.PeakResidentBytes, m.ResidentBeforeModelBytes, m.EstimatedTrainingBytes));
    if (name.StartsWith("trainer-", StringComparison.Ordinal) && name != "trainer-full")
        goals.Add(Goal.AtMost($"{name}: time per token vs full ÷ FLOP-floor ratio", timeRatio / floorRatio, 1.1));
}
var lora = training["trainer-lora"];
var qlora = training["trainer-qlora"];
var naiveGenerated = training["naive-generated-lora"];
var naiveHand = training["naive-handwritten-lora"];
goals.Add(Goal.AtMost("QLoRA step ÷ LoRA step", qlora.MedianSeconds / lora.MedianSeconds, 1.3));
goals.Add(Goal.AtLeast("tiny: best achieved model FLOP/s ÷ matmul FLOP/s (goal is for the small config)",
    rows.Max(r => r.FlopsPerSecond) / matmulFlops, 0.5));
goals.Add(Goal.AtMost("generated model ÷ hand-written model, naive loss path, LoRA step", naiveGenerated.MedianSeconds / naiveHand.MedianSeconds, 1.02));
goals.Add(Goal.AtMost("PeftTrainer LoRA step ÷ naive hand-written LoRA step", lora.MedianSeconds / naiveHand.MedianSeconds, 0.7));
goals.Add(Goal.AtMost("PeftTrainer LoRA peak memory ÷ naive hand-written LoRA peak", (double)lora.PeakResidentBytes / naiveHand.PeakResidentBytes, 0.6));
goals.Add(Goal.AtMost("tiny: LoRA peak ÷ full peak (goal is for a weights-dominated config)", (double)lora.PeakResidentBytes / full.PeakResidentBytes, 0.5));
goals.Add(Goal.AtMost("NF4 base bytes ÷ float32 bytes (tiny model's projections)", (double)quantizedBytes.Nf4Bytes / quantizedBytes.Float32Bytes, 0.14));
goals.Add(Goal.AtLeast("NF4 dequantize ÷ tensor copy (output bytes/s)", dequant.DequantizeBytesPerSecond / dequant.CopyBytesPerSecond, 0.4));
goals.Add(Goal.AtMost("merged LoRA forward ÷ base forward", inference.MergedLoraSeconds / inference.BaseSeconds, 1.02));

var markdown = new StringBuilder();
markdown.AppendLine($"Tiny config: vocab {TinyConfig.Vocab}, d {TinyConfig.Width}, {TinyConfig.Layers} layers, batch {TrainingCases.Batch} × seq; " +
    $"median of {timed} steps after {warmup} warm-up; matmul ceiling {matmulFlops / 1e9:F1} GFLOP/s (float32, measured in this run).");
markdown.AppendLine();
markdown.AppendLine("| case | seq | step (s) | tokens/s | time/token ÷ full | model GFLOP/step | FLOP floor ÷ full | GFLOP/s | % of matmul | peak RSS (MB) | RSS before model (MB) | compile-time estimate (MB) |");
markdown.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
foreach (var r in rows)
{
    markdown.AppendLine($"| {r.Case} | {r.Sequence} | {r.MedianSeconds:F3} | {r.TokensPerSecond:F0} | {r.TimeRatioToFull:F2} | {r.Flops / 1e9:F1} | {r.FloorRatio:F2} | " +
        $"{r.FlopsPerSecond / 1e9:F1} | {100 * r.FractionOfMatmul:F1} | {Mb(r.PeakBytes)} | {Mb(r.ResidentBeforeModelBytes)} | {Mb(r.EstimatedBytes)} |");
}
markdown.AppendLine();
markdown.AppendLine("| kernel | measured |");
markdown.AppendLine("|---|---:|");
markdown.AppendLine($"| float32 matmul | {matmulFlops / 1e9:F1} GFLOP/s |");
markdown.AppendLine($"| NF4 dequantize ({Mb(dequant.OutputBytes)} MB out) | {dequant.DequantizeBytesPerSecond / 1e9:F2} GB/s |");
markdown.AppendLine($"| tensor copy, same size | {dequant.CopyBytesPerSecond / 1e9:F2} GB/s |");
markdown.AppendLine($"| tiny model projections: float32 / NF4 bytes | {quantizedBytes.Float32Bytes:N0} / {quantizedBytes.Nf4Bytes:N0} |");
markdown.AppendLine($"| forward, base (batch {TrainingCases.Batch} × {TinyConfig.Context}) | {inference.BaseSeconds * 1000:F1} ms |");
markdown.AppendLine($"| forward, LoRA unmerged | {inference.UnmergedLoraSeconds * 1000:F1} ms ({inference.UnmergedLoraSeconds / inference.BaseSeconds:F3}× base) |");
markdown.AppendLine($"| forward, LoRA merged | {inference.MergedLoraSeconds * 1000:F1} ms ({inference.MergedLoraSeconds / inference.BaseSeconds:F3}× base) |");
markdown.AppendLine();
markdown.AppendLine("| goal | measured | target | met |");
markdown.AppendLine("|---|---:|---:|---|");
foreach (var g in goals)
    markdown.AppendLine($"| {g.Name} | {g.Measured:F3} | {(g.Maximum ? "≤" : "≥")} {g.Target:F2} | {(g.Met ? "met" : $"not met ({g.Measured / g.Target:F2}× target)")} |");
markdown.AppendLine();
markdown.AppendLine($"Total run time: {clock.Elapsed.TotalSeconds:F0} s. Load average (1/5/15 min) at start: {loadAtStart}; at end: {LoadAverage()} " +
    "(other processes on the machine slow every number above; the ratios are less affected than absolute times).");

string table = markdown.ToString();
Console.WriteLine(table);
File.WriteAllText(Path.Combine(output, "results.md"), table);
var json = new
{
    date = DateTime.UtcNow.ToString("o", culture),
    machine = new { processors = Environment.ProcessorCount, cpu = CpuModel() },
    loadAverageAtStart = loadAtStart, loadAverageAtEnd = LoadAverage(), quick, warmup, timed, matmulFlopsPerSecond = matmulFlops,
    training = rows, dequantization = dequant, quantizedBytes, inference, goals,
};
File.WriteAllText(Path.Combine(output, "results.json"), JsonSerializer.Serialize(json, new JsonSerializerOptions { WriteIndented = true }));
Console.WriteLine($"Results written to {Path.GetFullPath(output)}");
return 0;

static string Mb(long bytes) => (bytes / (1024.0 * 1024.0)).ToString("F0", CultureInfo.InvariantCulture);

static string LoadAverage()
{
    const string path = "/proc/loadavg";
    return File.Exists(path) ? string.Join(' ', File.ReadAllText(path).Split(' ').Take(3)) : "unknown";
}

static string CpuModel()
{
    const string path = "/proc/cpuinfo";
    if (!File.Exists(path)) return "unknown";
    var line = File.ReadLines(path).FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
    return line is null ? "unknown" : line[(line.IndexOf(':') + 1)..].Trim();
}

static TrainingMeasurement RunChild(string name, bool quick)
{
    string self = Environment.ProcessPath ?? throw new InvalidOperationException("No process path.");
    var start = new ProcessStartInfo { FileName = self, RedirectStandardOutput = true, UseShellExecute = false };
    // Under `dotnet PeftGen.Benchmarks.dll` the process is the dotnet host: pass the assembly again.
    if (Path.GetFileNameWithoutExtension(self) == "dotnet") start.ArgumentList.Add(typeof(TrainingCases).Assembly.Location);
    start.ArgumentList.Add("child");
    start.ArgumentList.Add(name);
    if (quick) start.ArgumentList.Add("--quick");
    using var child = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {self}.");
    string stdout = child.StandardOutput.ReadToEnd();
    child.WaitForExit();
    var line = stdout.Split('\n').FirstOrDefault(l => l.StartsWith("RESULT ", StringComparison.Ordinal));
    if (child.ExitCode != 0 || line is null)
        throw new InvalidOperationException($"Case {name} failed (exit {child.ExitCode}):\n{stdout}");
    return JsonSerializer.Deserialize<TrainingMeasurement>(line["RESULT ".Length..])!;
}

/// <summary>One training case in the table.</summary>
internal sealed record Row(
    string Case, long Sequence, double MedianSeconds, double TokensPerSecond, double TimeRatioToFull, double Flops,
    double FloorRatio, double FlopsPerSecond, double FractionOfMatmul, long PeakBytes, long ResidentBeforeModelBytes, long EstimatedBytes);

/// <summary>A goal from the issue next to the measured value.</summary>
internal sealed record Goal(string Name, double Measured, double Target, bool Maximum)
{
    public bool Met => Maximum ? Measured <= Target : Measured >= Target;

    public static Goal AtMost(string name, double measured, double target) => new(name, measured, target, true);

    public static Goal AtLeast(string name, double measured, double target) => new(name, measured, target, false);
}
