using System.Diagnostics;
using PeftGen.Architectures;
using PeftGen.Checkpoints;
using PeftGen.Data;
using PeftGen.Precision;
using PeftGen.Training;
using TinyGpt.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen.Benchmarks;

/// <summary>What one training case measured in one precision (in its own process, so its peak memory is its own).</summary>
/// <param name="Precision">The dtype of the step's matrix products: <c>float32</c> or <c>bfloat16</c>.</param>
/// <param name="HeapBeforeModelBytes">The C heap in use before the model was built (libtorch and runtime), where glibc tells.</param>
/// <param name="HeapHeldBetweenStepsBytes">
/// The C heap in use at the end of the last step, less <paramref name="HeapBeforeModelBytes"/>: what training holds
/// from step to step (weights, gradients, optimizer states, the trainer's workspace), which is what the compile-time
/// estimate counts; libtorch allocates CPU tensors there.
/// </param>
public sealed record TrainingMeasurement(
    string Case, string Precision, long Sequence, long TokensPerStep, double[] StepSeconds, double MedianSeconds,
    long PeakResidentBytes, long ResidentBeforeModelBytes, long EstimatedTrainingBytes,
    long? HeapBeforeModelBytes, long? HeapHeldBetweenStepsBytes)
{
    /// <summary>
    /// Two runs of the same case and precision as one: every timed step of both (the median over all of them), the
    /// higher peak and the higher memory held between steps (the worse run speaks for the case), the lower resident
    /// memory before the model.
    /// </summary>
    public static TrainingMeasurement Pool(TrainingMeasurement first, TrainingMeasurement second)
    {
        if (first.Case != second.Case || first.Precision != second.Precision)
            throw new ArgumentException($"Cannot pool {first.Case} ({first.Precision}) with {second.Case} ({second.Precision}).", nameof(second));
        double[] steps = [.. first.StepSeconds, .. second.StepSeconds];
        return first with
        {
            StepSeconds = steps,
            MedianSeconds = Stats.Median(steps),
            PeakResidentBytes = Math.Max(first.PeakResidentBytes, second.PeakResidentBytes),
            ResidentBeforeModelBytes = Math.Min(first.ResidentBeforeModelBytes, second.ResidentBeforeModelBytes),
            HeapHeldBetweenStepsBytes = Higher(first.HeapHeldBetweenStepsBytes, second.HeapHeldBetweenStepsBytes),
        };

        static long? Higher(long? a, long? b) => a is null ? b : b is null ? a : Math.Max(a.Value, b.Value);
    }
}

/// <summary>Two naive-loop cases timed step for step in one process.</summary>
/// <param name="MedianRatio">The median over step pairs of A's step time ÷ B's.</param>
public sealed record PairMeasurement(string CaseA, string CaseB, double[] SecondsA, double[] SecondsB, double MedianRatio);

/// <summary>
/// Random token batches of a fixed shape: timing does not depend on the text. Batch <c>index</c> is the same in every
/// process (HashCode.Combine, which this used before, is seeded at random per process, so every run trained on other
/// tokens and the big-model section's losses did not repeat).
/// </summary>
public sealed class RandomBatches(int batch, int sequence, int vocab, int seed) : IBatchSource
{
    public long BatchesPerEpoch => 1_000_000;

    public TokenBatch GetBatch(long index)
    {
        var random = new Random(unchecked((int)(seed * 1_000_003L + index)));
        var ids = new long[batch * sequence];
        for (int i = 0; i < ids.Length; i++) ids[i] = random.Next(vocab);
        var mask = Enumerable.Repeat(1L, ids.Length).ToArray();
        return new TokenBatch(ids, mask, (long[])ids.Clone(), batch, sequence);
    }
}

/// <summary>A model configuration the suite trains: its dimensions and a factory of its fully trainable variant.</summary>
public sealed record BenchConfig(string Name, int Vocab, int Context, int Width, int Layers, int Heads, Func<Gpt2LMHeadModel> CreateFull)
{
    public static readonly BenchConfig Tiny = new("tiny", TinyConfig.Vocab, TinyConfig.Context, TinyConfig.Width, TinyConfig.Layers, TinyConfig.Heads, () => new TinyGptFull());
    public static readonly BenchConfig Small = new("small", SmallConfig.Vocab, SmallConfig.Context, SmallConfig.Width, SmallConfig.Layers, SmallConfig.Heads, () => new SmallGptFull());
    public static readonly BenchConfig Narrow = new("narrow", NarrowConfig.Vocab, NarrowConfig.Context, NarrowConfig.Width, NarrowConfig.Layers, NarrowConfig.Heads, () => new NarrowGptFull());
    public static readonly BenchConfig Wide = new("wide", WideConfig.Vocab, WideConfig.Context, WideConfig.Width, WideConfig.Layers, WideConfig.Heads, () => new WideGptFull());

    public static readonly BenchConfig[] All = [Tiny, Small, Narrow, Wide];
}

/// <summary>How a case trains: the library's trainer, or the naive loop over the generated or the hand-written model.</summary>
public enum TrainingPath { Trainer, NaiveGenerated, NaiveHandWritten }

/// <summary>
/// One training case: a model variant (its factory and the generator's compile-time training estimate), the batch
/// shape, the path, and the method's analytic FLOPs.
/// </summary>
public sealed record TrainingCase(
    string Name, BenchConfig Config, string Method, int Rank, TrainingPath Path, int Batch, int Sequence,
    Func<nn.Module<Tensor, Tensor>> Create, long EstimatedTrainingBytes)
{
    public const int PromptTokens = 20;

    public GptShape Shape => new(Config.Vocab, Config.Width, Config.Layers, Batch, Sequence);

    /// <summary>
    /// The precisions the suite runs the case in: the trainer's cases in float32 and bfloat16; the naive loops in
    /// float32 only (the hand-written model's <c>nn.Linear</c>s and the naive loss do not read
    /// <see cref="ComputePrecision"/>, so a "bfloat16" naive case would be mostly float32).
    /// </summary>
    public TrainingPrecision[] Precisions => Path == TrainingPath.Trainer
        ? [TrainingPrecision.Float32, TrainingPrecision.BFloat16]
        : [TrainingPrecision.Float32];

    /// <summary>Analytic matmul FLOPs of one step (see <see cref="ModelFlops"/>).</summary>
    public double Flops => Method switch
    {
        "full" => ModelFlops.Full(Shape),
        "prompt" => ModelFlops.Prompt(Shape, PromptTokens),
        _ => ModelFlops.Lora(Shape, Rank),
    };
}

/// <summary>The suite's training cases; each runs in its own process: warm-up steps, then timed ones.</summary>
public static class TrainingCases
{
    public const int Batch = 8;

    /// <summary>Real tokens per sequence: prompt tuning's 20 virtual tokens share the context.</summary>
    private static int Sequence(BenchConfig config, string method, int? tokens = null) =>
        (tokens ?? config.Context) - (method == "prompt" ? TrainingCase.PromptTokens : 0);

    private static TrainingCase Trainer(string name, BenchConfig config, string method, int rank, Func<nn.Module<Tensor, Tensor>> create, long estimate, int batch = Batch, int? tokens = null) =>
        new(name, config, method, rank, TrainingPath.Trainer, batch, Sequence(config, method, tokens), create, estimate);

    private static readonly BenchConfig Tiny = BenchConfig.Tiny, Small = BenchConfig.Small;

    /// <summary>Every case, by name. Sections of the report select from these.</summary>
    public static readonly TrainingCase[] All =
    [
        // Tiny: the four methods on the library's path, and the naive baselines.
        Trainer("tiny-full", Tiny, "full", 0, () => new TinyGptFull(), TinyGptFull.Accounting.TrainingBytes),
        Trainer("tiny-lora", Tiny, "lora", 16, () => new TinyGptLora(), TinyGptLora.Accounting.TrainingBytes),
        Trainer("tiny-qlora", Tiny, "qlora", 16, () => new TinyGptQLora(), TinyGptQLora.Accounting.TrainingBytes),
        Trainer("tiny-prompt", Tiny, "prompt", 0, () => new TinyGptPrompt(), TinyGptPrompt.Accounting.TrainingBytes),
        new("tiny-naive-generated-lora", Tiny, "lora", 16, TrainingPath.NaiveGenerated, Batch, Tiny.Context, () => new TinyGptLora(), TinyGptLora.Accounting.TrainingBytes),
        new("tiny-naive-handwritten-lora", Tiny, "lora", 16, TrainingPath.NaiveHandWritten, Batch, Tiny.Context,
            () => new HandWrittenGpt(Tiny.Vocab, Tiny.Context, Tiny.Width, Tiny.Layers, Tiny.Heads, rank: 16, alpha: 32, dropout: 0.05), TinyGptLora.Accounting.TrainingBytes),
        // Small (d 512, 8 layers, seq 256): the configuration the FLOP/s and FLOP-floor goals are about.
        Trainer("small-full", Small, "full", 0, () => new SmallGptFull(), SmallGptFull.Accounting.TrainingBytes),
        Trainer("small-lora", Small, "lora", 16, () => new SmallGptLora(), SmallGptLora.Accounting.TrainingBytes),
        Trainer("small-qlora", Small, "qlora", 16, () => new SmallGptQLora(), SmallGptQLora.Accounting.TrainingBytes),
        Trainer("small-prompt", Small, "prompt", 0, () => new SmallGptPrompt(), SmallGptPrompt.Accounting.TrainingBytes),
        // Weights dominate: the small model on one sequence of 64 tokens (activations and logits are small).
        Trainer("weights-full", Small, "full", 0, () => new SmallGptFull(), SmallGptFull.Accounting.TrainingBytes, batch: 1, tokens: 64),
        Trainer("weights-lora", Small, "lora", 16, () => new SmallGptLora(), SmallGptLora.Accounting.TrainingBytes, batch: 1, tokens: 64),
        Trainer("weights-qlora", Small, "qlora", 16, () => new SmallGptQLora(), SmallGptQLora.Accounting.TrainingBytes, batch: 1, tokens: 64),
        // Rank scaling on tiny (rank 16 is tiny-lora).
        Trainer("tiny-lora-r1", Tiny, "lora", 1, () => new TinyGptLoraRank1(), TinyGptLoraRank1.Accounting.TrainingBytes),
        Trainer("tiny-lora-r4", Tiny, "lora", 4, () => new TinyGptLoraRank4(), TinyGptLoraRank4.Accounting.TrainingBytes),
        Trainer("tiny-lora-r64", Tiny, "lora", 64, () => new TinyGptLoraRank64(), TinyGptLoraRank64.Accounting.TrainingBytes),
        // Width scaling: d 128 / 256 (tiny) / 512 at 4 layers, full and LoRA.
        Trainer("narrow-full", BenchConfig.Narrow, "full", 0, () => new NarrowGptFull(), NarrowGptFull.Accounting.TrainingBytes),
        Trainer("narrow-lora", BenchConfig.Narrow, "lora", 16, () => new NarrowGptLora(), NarrowGptLora.Accounting.TrainingBytes),
        Trainer("wide-full", BenchConfig.Wide, "full", 0, () => new WideGptFull(), WideGptFull.Accounting.TrainingBytes),
        Trainer("wide-lora", BenchConfig.Wide, "lora", 16, () => new WideGptLora(), WideGptLora.Accounting.TrainingBytes),
    ];

    public static TrainingCase Named(string name) =>
        All.FirstOrDefault(c => c.Name == name) ?? throw new ArgumentException($"Unknown case '{name}'. Cases: {string.Join(", ", All.Select(c => c.Name))}.");

    /// <summary>
    /// Builds the case's model with the weights of <paramref name="baseFolder"/> (a GPT-2-layout checkpoint of the
    /// case's configuration, written by <see cref="SaveBase"/>): every case of a configuration starts from the same
    /// weights, as fine-tuning does, and QLoRA quantizes them on load.
    /// </summary>
    public static nn.Module<Tensor, Tensor> Build(TrainingCase c, string baseFolder)
    {
        var model = c.Create();
        switch (model)
        {
            case IPeftModel peft:
                PretrainedLoader.Load(peft, baseFolder, PretrainedLoadOptions.Gpt2);
                break;
            case HandWrittenGpt hand:
                hand.LoadBase(baseFolder);
                break;
        }
        return model;
    }

    /// <summary>Writes a freshly initialised (GPT-2 init) base of <paramref name="config"/> to <paramref name="folder"/>.</summary>
    public static void SaveBase(BenchConfig config, string folder)
    {
        using var model = config.CreateFull();
        PretrainedSaver.Save((IPeftModel)model, folder, new PretrainedSaveOptions { TiedWeights = [TiedWeight.Gpt2Head] });
    }

    /// <summary>
    /// The compute dtype of an explicit precision (float32 or bfloat16). <see cref="TrainingPrecision.Auto"/> is
    /// refused: a row labelled float32 must not turn into bfloat16 on a machine that has it.
    /// </summary>
    public static ScalarType DTypeOf(TrainingPrecision precision) => precision switch
    {
        TrainingPrecision.Float32 => ScalarType.Float32,
        TrainingPrecision.BFloat16 => ScalarType.BFloat16,
        _ => throw new ArgumentException($"The benchmark runs every case in an explicit precision, not {precision}.", nameof(precision)),
    };

    public static TrainingMeasurement Run(TrainingCase c, string baseFolder, int warmup, int timed, TrainingPrecision precision)
    {
        if (!c.Precisions.Contains(precision)) throw new ArgumentException($"Case '{c.Name}' runs in {string.Join(" and ", c.Precisions)} only.", nameof(precision));
        var dtype = DTypeOf(precision);
        long before = ProcessMemory.CurrentResidentBytes();
        long? heapBefore = ProcessMemory.NativeHeapInUseBytes();
        var batches = new RandomBatches(c.Batch, c.Sequence, c.Config.Vocab, seed: 7);
        using var model = Build(c, baseFolder);
        // Mixed precision as issue #14 sets it up: the frozen float bases of LoRA and prompt tuning are stored in
        // bfloat16 (no per-step cast of them); what trains keeps float32 masters. 4-bit and trainable bases are untouched.
        if (c.Path == TrainingPath.Trainer && precision == TrainingPrecision.BFloat16 && model is IPeftModel peft) peft.ConvertFrozenBases(BaseDType.BFloat16);
        var (seconds, heapAtLastStep) = c.Path switch
        {
            TrainingPath.Trainer => Train((Gpt2LMHeadModel)model, batches, warmup, timed, precision),
            _ => Naive(model, batches, warmup, timed),
        };
        return new TrainingMeasurement(c.Name, PrecisionSupport.Name(dtype), c.Sequence, (long)c.Batch * c.Sequence, seconds, Stats.Median(seconds),
            ProcessMemory.PeakResidentBytes(), before, c.EstimatedTrainingBytes, heapBefore, heapAtLastStep - heapBefore);
    }

    /// <summary>The library's path: PeftTrainer (chunked loss, its AdamW, clipping) over the generated trainable list.</summary>
    /// <returns>The timed steps' seconds, and the C heap in use at the end of the last step.</returns>
    private static (double[] Seconds, long? HeapAtLastStep) Train(Gpt2LMHeadModel model, IBatchSource batches, int warmup, int timed, TrainingPrecision precision)
    {
        var options = new TrainerOptions { MaxSteps = warmup + timed, LearningRate = 1e-4, WeightDecay = 0.0, Precision = precision };
        using var trainer = new PeftTrainer(model, ((IPeftModel)model).NamedTrainableParameters(), options);
        if (trainer.ComputeDType != DTypeOf(precision)) throw new InvalidOperationException($"The trainer computes in {trainer.ComputeDType}, not {precision}.");
        long? heap = null;
        trainer.StepCompleted += (_, _) => heap = ProcessMemory.NativeHeapInUseBytes();
        var result = trainer.Train(batches);
        return (result.Steps.Skip(warmup).Select(s => s.Seconds).ToArray(), heap);
    }

    /// <summary>
    /// The naive path, for any module that returns logits: full <c>batch × seq × vocab</c> logits, torch's
    /// cross_entropy, torch's AdamW, the C library's default allocator behaviour. Applied to the generated model and
    /// to the hand-written one alike.
    /// </summary>
    private static (double[] Seconds, long? HeapAtLastStep) Naive(nn.Module<Tensor, Tensor> model, IBatchSource batches, int warmup, int timed)
    {
        using var loop = new TimedLoop(model, batches, chunked: false);
        var seconds = new List<double>();
        for (int step = 0; step < warmup + timed; step++)
        {
            double s = loop.Step(step);
            if (step >= warmup) seconds.Add(s);
        }
        return (seconds.ToArray(), ProcessMemory.NativeHeapInUseBytes());
    }

    /// <summary>
    /// Two models of one configuration in one process, step for step, the order alternating (A then B, then B then
    /// A), both through the same loop: the trainer's chunked head and loss (no vocabulary-sized allocation per step)
    /// and torch's AdamW. Both see the same machine at the same moment, so each pair's ratio is free of the drift
    /// between separate runs, and without the naive loop's gigabyte of page faults per step what differs is the
    /// models' own code.
    /// </summary>
    public static PairMeasurement RunPair(TrainingCase a, TrainingCase b, string baseFolder, int warmup, int timed)
    {
        if (a.Config != b.Config) throw new ArgumentException($"Cases {a.Name} and {b.Name} have different configurations.");
        using var modelA = Build(a, baseFolder);
        using var modelB = Build(b, baseFolder);
        using var loopA = new TimedLoop(modelA, new RandomBatches(a.Batch, a.Sequence, a.Config.Vocab, seed: 7), chunked: true);
        using var loopB = new TimedLoop(modelB, new RandomBatches(b.Batch, b.Sequence, b.Config.Vocab, seed: 7), chunked: true);
        var secondsA = new List<double>();
        var secondsB = new List<double>();
        for (int step = 0; step < warmup + timed; step++)
        {
            double sa, sb;
            if (step % 2 == 0)
            {
                sa = loopA.Step(step);
                sb = loopB.Step(step);
            }
            else
            {
                sb = loopB.Step(step);
                sa = loopA.Step(step);
            }
            if (step < warmup) continue;
            secondsA.Add(sa);
            secondsB.Add(sb);
        }
        var ratios = secondsA.Zip(secondsB, (x, y) => x / y).ToList();
        return new PairMeasurement(a.Name, b.Name, secondsA.ToArray(), secondsB.ToArray(), Stats.Median(ratios));
    }

    /// <summary>
    /// One model in a plain loop with torch's AdamW; <see cref="Step"/> runs and times one training step. The loss is
    /// either naive (full <c>batch × seq × vocab</c> logits and torch's cross_entropy) or the trainer's chunked head
    /// and loss in a reused workspace (for an <see cref="ICausalLanguageModel"/>).
    /// </summary>
    private sealed class TimedLoop : IDisposable
    {
        private readonly nn.Module<Tensor, Tensor> module;
        private readonly IBatchSource batches;
        private readonly optim.Optimizer optimizer;
        private readonly ChunkedCrossEntropy.Workspace? workspace;

        public TimedLoop(nn.Module<Tensor, Tensor> module, IBatchSource batches, bool chunked)
        {
            this.module = module;
            this.batches = batches;
            if (chunked && module is not ICausalLanguageModel) throw new ArgumentException($"{module.GetType().Name} has no hidden states and head for the chunked loss.");
            workspace = chunked ? new ChunkedCrossEntropy.Workspace() : null;
            module.train();
            optimizer = optim.AdamW(module.parameters().Where(p => p.requires_grad).ToList(), lr: 1e-4, weight_decay: 0.0);
        }

        public double Step(int step)
        {
            var batch = batches.GetBatch(step);
            var clock = Stopwatch.StartNew();
            using (var scope = NewDisposeScope())
            {
                optimizer.zero_grad();
                Loss(batch).backward();
                optimizer.step();
            }
            return clock.Elapsed.TotalSeconds;
        }

        private Tensor Loss(TokenBatch batch)
        {
            var ids = batch.InputIdsTensor();
            if (workspace is not null)
            {
                var model = (ICausalLanguageModel)module;
                var (sum, _) = CausalLmLoss.Sum(model.ForwardHidden(ids), model.HeadWeight, batch.LabelsTensor(), workspace: workspace);
                return sum.div(batch.LabelledTokens);
            }
            var logits = module.forward(ids);
            long seq = ids.shape[1];
            var predictions = logits.narrow(1, 0, seq - 1).reshape(-1, logits.shape[2]);
            var targets = ids.narrow(1, 1, seq - 1).reshape(-1);
            return nn.functional.cross_entropy(predictions, targets);
        }

        public void Dispose()
        {
            optimizer.Dispose();
            workspace?.Dispose();
        }
    }
}

/// <summary>Small statistics helpers.</summary>
public static class Stats
{
    public static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0) return double.NaN;
        var sorted = values.Order().ToArray();
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    /// <summary>Median seconds of <paramref name="timed"/> calls after <paramref name="warmup"/> untimed ones.</summary>
    public static double Time(Action action, int warmup, int timed)
    {
        for (int i = 0; i < warmup; i++) action();
        var seconds = new double[timed];
        for (int i = 0; i < timed; i++)
        {
            var clock = Stopwatch.StartNew();
            action();
            seconds[i] = clock.Elapsed.TotalSeconds;
        }
        return Median(seconds);
    }
}
