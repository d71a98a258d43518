using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using PeftGen.Checkpoints;
using PeftGen.Formats;
using PeftGen.Formats.HuggingFace;
using PeftGen.Precision;
using PeftGen.Training;
using static TorchSharp.torch;

namespace PeftGen.Benchmarks.BigModels;

/// <summary>
/// One big-model case: a model type, the checkpoint shape it loads, and the dtype its frozen float bases are stored in.
/// </summary>
/// <param name="BaseDType">bfloat16 to store the frozen float projections in bfloat16 after building (<see cref="PeftModelExtensions.ConvertFrozenBases"/>), else null.</param>
/// <param name="Members">The generated <c>Accounting.Members</c>.</param>
public sealed record BigModelCase(
    string Name, string Method, LlamaCheckpointShape Shape, Func<nn.Module<Tensor, Tensor>> Create,
    long CompileTimeWeightBytes, long CompileTimeTrainingBytes, IReadOnlyList<MemberParameters> Members, BaseDType? BaseDType)
{
    /// <summary>
    /// The weights' estimate from the compile-time accounting: <see cref="CompileTimeWeightBytes"/>, less what storing
    /// the frozen float projections in <see cref="BaseDType"/> saves (the generator counts float bases as float32).
    /// </summary>
    public long EstimatedWeightBytes => CompileTimeWeightBytes - FrozenProjectionSaving;

    /// <summary>Weights, gradients and AdamW states, with <see cref="EstimatedWeightBytes"/> for the weights.</summary>
    public long EstimatedTrainingBytes => CompileTimeTrainingBytes - FrozenProjectionSaving;

    private long FrozenProjectionSaving => BaseDType is { } dtype
        ? Members.Where(m => m.Kind == PeftLayerKind.Projection && m.TrainableParameters == m.AdapterParameters)
            .Sum(m => m.BaseParameters) * (4 - dtype.BytesPerValue())
        : 0;
}

/// <summary>What one big-model case measured, in its own process.</summary>
/// <param name="BuildCpuSeconds">CPU time (user + system, all threads) of the build: on a shared machine the steadier figure.</param>
/// <param name="ResidentBeforeModelBytes">Resident memory once the runtime and libtorch are warm, before the model: the process's own share.</param>
/// <param name="BuildPeakBytes">Peak resident memory of the process while building (and converting), total.</param>
/// <param name="LoadPeakBytes">Peak resident memory of the process while loading, total.</param>
/// <param name="ReadsPerTensorMax">The most times any stored tensor was read (1: each weight read, and quantized, once).</param>
/// <param name="ActivationBytes">The C heap's growth over one training-mode forward of the trunk under the step's precision, its output alive: the tensors autograd keeps for backward.</param>
/// <param name="TrainPeakBytes">Peak resident memory of the process over the training steps, total.</param>
/// <param name="HeapHeldBetweenStepsBytes">The C heap in use after the last step, less before the model.</param>
public sealed record BigModelMeasurement(
    string Case, string Method, string Shape, int Layers, string? BaseDType,
    long CompileTimeWeightBytes, long EstimatedWeightBytes, long EstimatedTrainingBytes, long TrainableParameters,
    long ResidentBeforeModelBytes, double BuildSeconds, double BuildCpuSeconds, long BuildPeakBytes, long ResidentAfterBuildBytes,
    double LoadSeconds, double LoadCpuSeconds, long LoadPeakBytes, long ResidentAfterLoadBytes, long MeasuredWeightBytes,
    int TensorsRead, int ReadsPerTensorMax, int QuantizedProjections, long LargestTensorBytes, string[] StoredDTypes,
    string Precision, int Batch, int Sequence, long ActivationBytes, double[] StepSeconds, double TrainCpuSeconds, double[] Losses,
    long TrainPeakBytes, long? HeapHeldBetweenStepsBytes)
{
    public long BuildLoadPeakBytes => Math.Max(BuildPeakBytes, LoadPeakBytes);
}

/// <summary>The big-model section's cases; each runs in its own process (<see cref="Run"/>).</summary>
public static class BigModelCases
{
    public const int Batch = 1, Sequence = 128, Steps = 3;

    public static readonly BigModelCase[] All =
    [
        new("7b-qlora", "QLoRA r 16 (q, v), NF4", LlamaCheckpointShape.Llama2_7B, () => new Llama2_7BQLora(),
            Llama2_7BQLora.Accounting.WeightBytes, Llama2_7BQLora.Accounting.TrainingBytes, Llama2_7BQLora.Accounting.Members, null),
        new("7b-2-layers-qlora", "QLoRA r 16 (q, v), NF4", LlamaCheckpointShape.Llama2_7B2Layers, () => new Llama2_7B2LayerQLora(),
            Llama2_7B2LayerQLora.Accounting.WeightBytes, Llama2_7B2LayerQLora.Accounting.TrainingBytes, Llama2_7B2LayerQLora.Accounting.Members, null),
        new("7b-4-layers-qlora", "QLoRA r 16 (q, v), NF4", LlamaCheckpointShape.Llama2_7B4Layers, () => new Llama2_7B4LayerQLora(),
            Llama2_7B4LayerQLora.Accounting.WeightBytes, Llama2_7B4LayerQLora.Accounting.TrainingBytes, Llama2_7B4LayerQLora.Accounting.Members, null),
        new("1b-qlora", "QLoRA r 16 (q, v), NF4", LlamaCheckpointShape.Llama32_1B, () => new Llama32_1BQLora(),
            Llama32_1BQLora.Accounting.WeightBytes, Llama32_1BQLora.Accounting.TrainingBytes, Llama32_1BQLora.Accounting.Members, null),
        new("1b-lora-bf16", "LoRA r 16 (q, v), bf16 base", LlamaCheckpointShape.Llama32_1B, () => new Llama32_1BLora(),
            Llama32_1BLora.Accounting.WeightBytes, Llama32_1BLora.Accounting.TrainingBytes, Llama32_1BLora.Accounting.Members, null),
    ];

    public static BigModelCase Named(string name) =>
        All.FirstOrDefault(c => c.Name == name) ?? throw new ArgumentException($"Unknown case '{name}'. Cases: {string.Join(", ", All.Select(c => c.Name))}.");

    /// <summary>
    /// Builds the case's model, loads <paramref name="checkpoint"/> into it and trains <paramref name="steps"/> steps
    /// of <see cref="Batch"/> × <see cref="Sequence"/> random tokens in bfloat16 mixed precision, measuring each phase.
    /// </summary>
    public static BigModelMeasurement Run(BigModelCase c, string checkpoint, int steps)
    {
        WarmUp();
        Settle();
        long before = ProcessMemory.CurrentResidentBytes();
        long? heapBefore = ProcessMemory.NativeHeapInUseBytes();

        ProcessMemory.TryResetPeak();
        var clock = Stopwatch.StartNew();
        var cpu = CpuSeconds();
        using var module = c.Create();
        var model = (IPeftModel)module;
        if (c.BaseDType is { } dtype) model.ConvertFrozenBases(dtype);
        double buildSeconds = clock.Elapsed.TotalSeconds, buildCpu = CpuSeconds() - cpu;
        long buildPeak = ProcessMemory.PeakResidentBytes();
        Settle();
        long afterBuild = ProcessMemory.CurrentResidentBytes();
        Progress($"built in {buildSeconds:F1} s ({buildCpu:F1} CPU s), peak {buildPeak / 1e9:F2} GB, before the model {before / 1e9:F2} GB");

        ProcessMemory.TryResetPeak();
        clock.Restart();
        cpu = CpuSeconds();
        PretrainedLoadResult load;
        CountingSource source;
        using (source = new CountingSource(HfCheckpoint.Open(checkpoint, ReadMode.Strict)))
            load = PretrainedLoader.Load(model, source);
        double loadSeconds = clock.Elapsed.TotalSeconds, loadCpu = CpuSeconds() - cpu;
        long loadPeak = ProcessMemory.PeakResidentBytes();
        Settle();
        long afterLoad = ProcessMemory.CurrentResidentBytes();
        long measuredWeights = model.BaseWeightBytes() + model.NamedTrainableParameters().Sum(p => p.Parameter.numel() * p.Parameter.element_size());
        int quantized = model.Projections().Count(p => p.Layer.IsQuantized);
        Progress($"loaded {load.LoadedTensors} tensors in {loadSeconds:F1} s ({loadCpu:F1} CPU s), peak {loadPeak / 1e9:F2} GB, most reads of a tensor {source.ReadsPerTensorMax}");

        var batches = new RandomBatches(Batch, Sequence, c.Shape.Vocab, seed: 7);
        long activations = Activations((ICausalLanguageModel)module, batches.GetBatch(-1));
        Settle();
        Progress($"activations of one forward: {activations / 1e9:F3} GB");

        ProcessMemory.TryResetPeak();
        var options = new TrainerOptions { MaxSteps = steps, LearningRate = 1e-4, WeightDecay = 0.0, Precision = TrainingPrecision.BFloat16 };
        using var trainer = new PeftTrainer(module, model.NamedTrainableParameters(), options);
        long? heapAtLastStep = null;
        trainer.StepCompleted += (_, step) =>
        {
            heapAtLastStep = ProcessMemory.NativeHeapInUseBytes();
            Progress($"step {step.Step}: {step.Seconds:F1} s, loss {step.Loss:F3}, peak so far {ProcessMemory.PeakResidentBytes() / 1e9:F2} GB");
        };
        cpu = CpuSeconds();
        var result = trainer.Train(batches);
        double trainCpu = CpuSeconds() - cpu;
        long trainPeak = ProcessMemory.PeakResidentBytes();

        return new BigModelMeasurement(c.Name, c.Method, c.Shape.Name, c.Shape.Layers, c.BaseDType?.ToString(),
            c.CompileTimeWeightBytes, c.EstimatedWeightBytes, c.EstimatedTrainingBytes, model.NamedTrainableParameters().Sum(p => p.Parameter.numel()),
            before, buildSeconds, buildCpu, buildPeak, afterBuild,
            loadSeconds, loadCpu, loadPeak, afterLoad, measuredWeights,
            load.LoadedTensors, source.ReadsPerTensorMax, quantized, c.Shape.Tensors().Max(t => t.Shape.Aggregate(2L, (a, b) => a * b)), load.StoredDTypes.ToArray(),
            PrecisionSupport.Name(trainer.ComputeDType), Batch, Sequence, activations,
            result.Steps.Select(s => s.Seconds).ToArray(), trainCpu, result.Steps.Select(s => s.Loss).ToArray(),
            trainPeak, heapAtLastStep - heapBefore);
    }

    /// <summary>
    /// The C heap's growth over one training-mode forward of the trunk in the step's precision, measured while its
    /// output (and so the graph autograd keeps for backward) is alive.
    /// </summary>
    private static long Activations(ICausalLanguageModel model, Data.TokenBatch batch)
    {
        ((nn.Module)model).train();
        long start = ProcessMemory.NativeHeapInUseBytes() ?? 0;
        using var scope = NewDisposeScope();
        using var precision = ComputePrecision.Use(ScalarType.BFloat16);
        var hidden = model.ForwardHidden(batch.InputIdsTensor());
        return (ProcessMemory.NativeHeapInUseBytes() ?? 0) - start;
    }

    /// <summary>
    /// Runs each kind of layer once at a small size and quantizes a bfloat16 weight, so what the model's phases
    /// measure does not include libtorch's first use (code pages, thread pool, the kernel workers' arenas).
    /// </summary>
    private static void WarmUp()
    {
        using var scope = NewDisposeScope();
        using var projection = new LoraLinear(256, 256, hasBias: false, new Quant4BitOptions());
        projection.AddAdapter("default", new LoraConfig(4, 8, 0, false));
        using var embedding = new TokenEmbedding(64, 256);
        using var norm = new RmsNorm(256, 1e-5);
        using (ComputePrecision.Use(ScalarType.BFloat16))
            projection.forward(norm.forward(embedding.forward(arange(8).view(1, 8)))).sum().backward();
        projection.LoadBase(randn(256, 256).to(ScalarType.BFloat16));
        using (Nf4Tensor.Quantize(randn(1024, 1024, dtype: ScalarType.BFloat16), new Quant4BitOptions())) { }
    }

    /// <summary>Each phase's figures as they come (stderr), so a slow run on a busy machine shows where it is.</summary>
    private static void Progress(string message) => Console.Error.WriteLine($"    {DateTime.UtcNow:HH:mm:ss} {message}");

    private static double CpuSeconds()
    {
        using var self = Process.GetCurrentProcess();
        return self.TotalProcessorTime.TotalSeconds;
    }

    /// <summary>Collects the managed garbage and gives the C heap's free memory back, so resident memory is what is alive.</summary>
    private static void Settle()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        if (OperatingSystem.IsLinux()) malloc_trim(0);
    }

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int malloc_trim(nuint pad);

    /// <summary>A checkpoint source that counts how often each tensor is read, whole or in place.</summary>
    private sealed class CountingSource(ICheckpointSource inner) : ICheckpointSource
    {
        private readonly Dictionary<string, int> reads = new(StringComparer.Ordinal);

        public int ReadsPerTensorMax => reads.Count == 0 ? 0 : reads.Values.Max();

        public string Description => inner.Description;

        public IReadOnlyCollection<string> Names => inner.Names;

        public IReadOnlyList<CheckpointMismatch> Problems => inner.Problems;

        public JsonObject? Config => inner.Config;

        public CheckpointTensorInfo Info(string name) => inner.Info(name);

        public Tensor Read(string name)
        {
            reads[name] = reads.GetValueOrDefault(name) + 1;
            return inner.Read(name);
        }

        public void ReadInto(string name, Tensor target)
        {
            reads[name] = reads.GetValueOrDefault(name) + 1;
            inner.ReadInto(name, target);
        }

        public void Dispose() => inner.Dispose();
    }
}
