using PeftGen;
using PeftGen.Architectures;
using PeftGen.Precision;
using PeftGen.Training;
using TorchSharp;
using TinyGpt.Models;
using static TorchSharp.torch;

namespace PeftGen.Benchmarks;

/// <summary>The machine's matmul rate in each compute dtype, measured in the same run as the training cases.</summary>
public sealed record MatmulCeiling(double Float32FlopsPerSecond, double BFloat16FlopsPerSecond)
{
    /// <summary>The ceiling of the dtype a row computed in (<c>float32</c> or <c>bfloat16</c>).</summary>
    public double Of(string precision) => precision switch
    {
        "float32" => Float32FlopsPerSecond,
        "bfloat16" => BFloat16FlopsPerSecond,
        _ => throw new ArgumentException($"No matmul ceiling measured for {precision}.", nameof(precision)),
    };
}

/// <summary>Kernel-level measurements that run in the main process.</summary>
public static class MicroBenchmarks
{
    /// <summary>
    /// FLOP/s of a large matmul in <paramref name="dtype"/> (n × n by n × n: 2n³ FLOPs): the machine's compute ceiling
    /// for that dtype.
    /// </summary>
    public static double MatmulFlopsPerSecond(int n, int warmup, int timed, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var a = randn(n, n, dtype: dtype);
        var b = randn(n, n, dtype: dtype);
        double seconds = Stats.Time(() => matmul(a, b).Dispose(), warmup, timed);
        return 2.0 * n * n * n / seconds;
    }

    /// <summary>
    /// Output bytes per second of NF4 dequantization and of a float32 copy of the same size. <c>DequantizeBytesPerSecond</c>
    /// and <c>CopyBytesPerSecond</c> write into preallocated outputs (the kernels alone); the <c>Fresh</c> pair allocates
    /// each output, as a forward pass does (<c>Dequantize()</c> against <c>clone()</c>).
    /// </summary>
    public sealed record DequantResult(long OutputBytes, double DequantizeBytesPerSecond, double CopyBytesPerSecond,
        double FreshDequantizeBytesPerSecond, double FreshCopyBytesPerSecond);

    /// <summary>NF4 (double-quantized, blocks of 64) dequantization against copying a float32 tensor of the same size.</summary>
    public static DequantResult Dequantize(int rows, int columns, int warmup, int timed)
    {
        using var scope = NewDisposeScope();
        var weight = randn(rows, columns);
        using var quantized = Nf4Tensor.Quantize(weight, new Quant4BitOptions());
        var output = empty(rows, columns);
        long bytes = (long)rows * columns * sizeof(float);
        double dequantInto = Stats.Time(() => quantized.DequantizeInto(output), warmup, timed);
        double copyInto = Stats.Time(() => output.copy_(weight), warmup, timed);
        double dequantFresh = Stats.Time(() => quantized.Dequantize().Dispose(), warmup, timed);
        double copyFresh = Stats.Time(() => weight.clone().Dispose(), warmup, timed);
        return new DequantResult(bytes, bytes / dequantInto, bytes / copyInto, bytes / dequantFresh, bytes / copyFresh);
    }

    /// <summary>Seconds per call of LoRA's CPU dropout and of libtorch's, on the same input.</summary>
    public sealed record DropoutResult(long Elements, double Probability, double LoraDropoutSeconds, double TorchDropoutSeconds);

    /// <summary>
    /// <see cref="LoraDropout.Apply"/> (counter-based mask on the CPU) against <c>nn.functional.dropout</c> in training
    /// mode, both on one float32 input of <paramref name="elements"/> values, both producing a fresh output.
    /// </summary>
    public static DropoutResult Dropout(long elements, double p, int warmup, int timed)
    {
        using var scope = NewDisposeScope();
        var input = randn(elements);
        double ours = Stats.Time(() => LoraDropout.Apply(input, p).Dispose(), warmup, timed);
        double torchs = Stats.Time(() => nn.functional.dropout(input, p, training: true).Dispose(), warmup, timed);
        return new DropoutResult(elements, p, ours, torchs);
    }

    public sealed record QuantizedBytes(long Float32Bytes, long Nf4Bytes);

    /// <summary>Storage that Nf4Tensor really uses for every projection weight of the tiny model, against float32.</summary>
    public static QuantizedBytes TinyModelBase()
    {
        long d = TinyConfig.Width;
        long[][] shapes = [[3 * d, d], [d, d], [4 * d, d], [d, 4 * d]];
        long floatBytes = 0, nf4Bytes = 0;
        for (int layer = 0; layer < TinyConfig.Layers; layer++)
        {
            foreach (var shape in shapes)
            {
                using var weight = randn(shape);
                using var quantized = Nf4Tensor.Quantize(weight, new Quant4BitOptions());
                floatBytes += weight.NumberOfElements * sizeof(float);
                nf4Bytes += quantized.StorageBytes;
            }
        }
        return new QuantizedBytes(floatBytes, nf4Bytes);
    }

    /// <param name="UnmergedOverBase">Median over rounds of that round's unmerged ÷ base time.</param>
    /// <param name="MergedOverBase">Median over rounds of that round's merged ÷ base time.</param>
    public sealed record InferenceResult(double BaseSeconds, double UnmergedLoraSeconds, double MergedLoraSeconds,
        double UnmergedOverBase, double MergedOverBase);

    /// <summary>
    /// Forward (logits of one batch, eval mode, no grad) of the base model, LoRA unmerged and LoRA merged. The three
    /// are timed in turn, round after round (the order rotating), so drift in the machine's load falls on all of them;
    /// the ratios are taken within each round (paired) before their median, so a slow round moves no ratio.
    /// </summary>
    public static InferenceResult Inference(int batch, int sequence, int warmup, int timed)
    {
        using var noGrad = no_grad();
        using var ids = randint(TinyConfig.Vocab, [batch, sequence], dtype: ScalarType.Int64);
        using var baseModel = new TinyGptFull();
        using var unmerged = new TinyGptLora();
        using var merged = new TinyGptLora();
        // B starts at zero; random adapters make sure merging really changes the weights it folds into.
        foreach (var (name, parameter) in unmerged.named_parameters())
        {
            if (name.Contains("lora_B")) parameter.normal_(0, 0.02);
        }
        var source = unmerged.state_dict();
        foreach (var (name, parameter) in merged.named_parameters()) parameter.copy_(source[name]);
        ((IPeftModel)merged).MergeAdapters();
        Gpt2LMHeadModel[] models = [baseModel, unmerged, merged];
        foreach (var model in models) model.eval();

        var seconds = models.Select(_ => new List<double>()).ToArray();
        for (int round = 0; round < warmup + timed; round++)
        {
            for (int k = 0; k < models.Length; k++)
            {
                int m = (round + k) % models.Length;
                var clock = System.Diagnostics.Stopwatch.StartNew();
                models[m].forward(ids).Dispose();
                if (round >= warmup) seconds[m].Add(clock.Elapsed.TotalSeconds);
            }
        }
        double PairedRatio(int m) => Stats.Median(seconds[m].Zip(seconds[0], (x, b) => x / b).ToList());
        return new InferenceResult(Stats.Median(seconds[0]), Stats.Median(seconds[1]), Stats.Median(seconds[2]), PairedRatio(1), PairedRatio(2));
    }

    /// <summary>
    /// The inference row's forward: the trunk, then the tied head, with the products in <paramref name="dtype"/> through
    /// a <see cref="ComputePrecision"/> scope (float32 is the plain model; bfloat16 returns bfloat16 logits, as autocast does).
    /// </summary>
    public static Tensor BaseLogits(Gpt2LMHeadModel model, Tensor ids, ScalarType dtype)
    {
        using var precision = ComputePrecision.Use(dtype);
        return ComputePrecision.Cast(model.ForwardHidden(ids)).matmul(ComputePrecision.Cast(model.HeadWeight).t());
    }

    /// <param name="Float32Seconds">Median seconds of a float32 forward.</param>
    /// <param name="BFloat16Seconds">Median seconds of a bfloat16 forward.</param>
    /// <param name="BFloat16OverFloat32">Median over rounds of that round's bfloat16 ÷ float32 time.</param>
    /// <param name="BFloat16WeightsSeconds">Median seconds of the forward of the same model stored in bfloat16 (<c>Module.to</c>).</param>
    /// <param name="BFloat16WeightsOverFloat32">Median over rounds of that round's bfloat16-weights ÷ float32 time.</param>
    /// <param name="BFloat16WeightsRelativeError">‖logits − float64 logits‖ ÷ ‖float64 logits‖ of the bfloat16-weights model.</param>
    /// <param name="BFloat16RelativeError">The same for the bfloat16 compute scope over float32 weights.</param>
    /// <param name="Float32MinorFaults">Minor page faults of the process per timed float32 forward: a fresh process faults the 33.5 MB logits in at every call.</param>
    /// <param name="BFloat16MinorFaults">The same per timed bfloat16 forward.</param>
    public sealed record InferencePrecisionResult(double Float32Seconds, double BFloat16Seconds, double BFloat16OverFloat32,
        double BFloat16WeightsSeconds, double BFloat16WeightsOverFloat32, double BFloat16RelativeError, double BFloat16WeightsRelativeError,
        double Float32MinorFaults, double BFloat16MinorFaults);

    /// <summary>
    /// Forward (logits of one batch, eval mode, no grad) of the tiny base model in float32 and in bfloat16, timed in
    /// turn round after round (the order alternating), the ratio taken within each round before the median. Both
    /// compute the logits as <see cref="TextGenerator"/> does: trunk, then the tied head, with the products in the
    /// compute dtype of the scope (<see cref="ComputePrecision"/>); float32 is the plain model, bfloat16 returns
    /// bfloat16 logits, as autocast does.
    /// </summary>
    public static InferencePrecisionResult InferencePrecision(int batch, int sequence, int warmup, int timed)
    {
        using var noGrad = no_grad();
        using var ids = randint(TinyConfig.Vocab, [batch, sequence], dtype: ScalarType.Int64);
        using var model = new TinyGptFull();
        model.eval();
        // The same weights stored in bfloat16, as an inference user may keep them (HF's torch_dtype=bfloat16).
        using var stored = new TinyGptFull();
        stored.eval();
        stored.load_state_dict(model.state_dict());
        stored.to(ScalarType.BFloat16);

        Tensor Logits(TinyGptFull m, ScalarType dtype) => BaseLogits(m, ids, dtype);
        (TinyGptFull Model, ScalarType DType)[] variants = [(model, ScalarType.Float32), (model, ScalarType.BFloat16), (stored, ScalarType.BFloat16)];
        var seconds = variants.Select(_ => new List<double>()).ToArray();
        var faults = new long[variants.Length];
        for (int round = 0; round < warmup + timed; round++)
        {
            for (int k = 0; k < variants.Length; k++)
            {
                int v = (round + k) % variants.Length;
                long faultsBefore = ProcStat.Read().MinorFaults;
                var clock = System.Diagnostics.Stopwatch.StartNew();
                using (var scope = NewDisposeScope()) Logits(variants[v].Model, variants[v].DType);
                if (round >= warmup)
                {
                    seconds[v].Add(clock.Elapsed.TotalSeconds);
                    faults[v] += ProcStat.Read().MinorFaults - faultsBefore;
                }
            }
        }
        double PairedRatio(int v) => Stats.Median(seconds[v].Zip(seconds[0], (x, f) => x / f).ToList());

        // Errors against the float64 model, for the price of each speed-up.
        using var exact = new TinyGptFull();
        exact.load_state_dict(model.state_dict());
        exact.eval();
        exact.to(ScalarType.Float64);
        using var reference = Logits(exact, ScalarType.Float64);
        double RelativeError(int v)
        {
            using var scope = NewDisposeScope();
            var logits = Logits(variants[v].Model, variants[v].DType).to(ScalarType.Float64);
            return (logits - reference).norm().item<double>() / reference.norm().item<double>();
        }
        return new InferencePrecisionResult(Stats.Median(seconds[0]), Stats.Median(seconds[1]), PairedRatio(1),
            Stats.Median(seconds[2]), PairedRatio(2), RelativeError(1), RelativeError(2), (double)faults[0] / timed, (double)faults[1] / timed);
    }
}
