using System;
using System.Collections.Generic;
using System.Text.Json.Nodes;
using PeftGen.Checkpoints;
using PeftGen.Tests.IO;
using System.Linq;
using PeftGen.Tests.Support;
using PeftGen.Training;
using PeftGen.Formats;
using PeftGen.Formats.HuggingFace;
using PeftGen.Formats.SafeTensors;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PeftGen.Tests.Quantization;

/// <summary>Llama-2-7B's widths (hidden 4096, MLP 11008, vocabulary 32 000, untied head) with one decoder layer.</summary>
public static class SevenBWidthConfig
{
    public const int Vocab = 32000, Width = 4096, Mlp = 11008, Heads = 32, Layers = 1;
}

/// <summary>
/// QLoRA as the paper sets it up for Llama-2-7B: every decoder projection in NF4, LoRA r = 16 on q and v; the output
/// head lm_head stays float32, as transformers keeps it.
/// </summary>
[PeftModel(typeof(SevenBWidthConfig))]
[Lora(Rank = 16, Alpha = 32, Targets = new[] { "q_proj", "v_proj" })]
[Quantize4Bit]
public partial class SevenBWidthQLora : nn.Module<Tensor, Tensor>
{
    [Block] public partial SevenBWidthTrunk model { get; }
    [Linear("Width", "Vocab", Bias = false)] public partial LoraLinear lm_head { get; }

    public override Tensor forward(Tensor ids) => lm_head.forward(model.forward(ids));
}

[PeftModule]
public partial class SevenBWidthTrunk : nn.Module<Tensor, Tensor>
{
    [Embedding("Vocab", "Width")] public partial TokenEmbedding embed_tokens { get; }
    [Stack("Layers")] public partial ModuleList<SevenBWidthLayer> layers { get; }
    [RmsNorm("Width")] public partial RmsNorm norm { get; }

    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var x = embed_tokens.forward(ids);
        foreach (var layer in layers) x = layer.forward(x);
        return norm.forward(x).MoveToOuterDisposeScope();
    }
}

[PeftModule]
public partial class SevenBWidthLayer : nn.Module<Tensor, Tensor>
{
    [RmsNorm("Width")] public partial RmsNorm input_layernorm { get; }
    [Block] public partial SevenBWidthAttention self_attn { get; }
    [RmsNorm("Width")] public partial RmsNorm post_attention_layernorm { get; }
    [Block] public partial SevenBWidthMlp mlp { get; }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        x = x + self_attn.forward(input_layernorm.forward(x));
        return (x + mlp.forward(post_attention_layernorm.forward(x))).MoveToOuterDisposeScope();
    }
}

[PeftModule]
public partial class SevenBWidthAttention : nn.Module<Tensor, Tensor>
{
    [Linear("Width", "Width", Bias = false)] public partial LoraLinear q_proj { get; }
    [Linear("Width", "Width", Bias = false)] public partial LoraLinear k_proj { get; }
    [Linear("Width", "Width", Bias = false)] public partial LoraLinear v_proj { get; }
    [Linear("Width", "Width", Bias = false)] public partial LoraLinear o_proj { get; }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long batch = x.shape[0], seq = x.shape[1], heads = Dims.Heads, headDim = Dims.Width / heads;
        Tensor Heads(Tensor t) => t.view(batch, seq, heads, headDim).transpose(1, 2);
        var y = nn.functional.scaled_dot_product_attention(Heads(q_proj.forward(x)), Heads(k_proj.forward(x)), Heads(v_proj.forward(x)), is_casual: true);
        return o_proj.forward(y.transpose(1, 2).reshape(batch, seq, heads * headDim)).MoveToOuterDisposeScope();
    }
}

[PeftModule]
public partial class SevenBWidthMlp : nn.Module<Tensor, Tensor>
{
    [Linear("Width", "Mlp", Bias = false)] public partial LoraLinear gate_proj { get; }
    [Linear("Width", "Mlp", Bias = false)] public partial LoraLinear up_proj { get; }
    [Linear("Mlp", "Width", Bias = false)] public partial LoraLinear down_proj { get; }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return down_proj.forward(nn.functional.silu(gate_proj.forward(x)) * up_proj.forward(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// A model of 7B widths in 4 bits is built, and loaded from a sharded bfloat16 checkpoint, without a float32 copy of
/// any 4-bit weight: the smallest one (q_proj, 4096²) is 64 MiB in float32, above every slack allowed here.
/// </summary>
[Collection(ProcessMemoryCollection.Name)]
public sealed class SevenBWidthMemoryTests(ITestOutputHelper output)
{
    private const long MiB = 1024 * 1024;

    /// <summary>
    /// Room for what is not a weight (the runtime's own allocations, allocator rounding, quantization slices): half
    /// the float32 bytes of the smallest 4-bit weight.
    /// </summary>
    private const long Slack = 32 * MiB;

    /// <summary>
    /// Room per value of a tensor loaded, beside <see cref="Slack"/>, as <c>Quantizing_a_7B_MLP_weight…</c> allows:
    /// resident memory grows by up to 1.1 bytes per value more than the stored tensor and its 4-bit form while one is
    /// quantized (measured here; the C heap's in-use bytes do not, so it is allocator and thread memory, not tensors).
    /// A float32 copy is 4 bytes per value: for the smallest 4-bit weight (16.8 M values) 64 MiB, against 24 + 32 MiB.
    /// </summary>
    private const double LoadSlackPerValue = 1.5;

    [Fact]
    public void A_7B_width_QLoRA_model_builds_within_its_4_bit_size()
    {
        WarmUp();
        NativeHeap.Settle();
        Assert.True(ProcessMemory.TryResetPeak(), "this test needs /proc/self/clear_refs to measure a peak");
        var before = ProcessMemory.CurrentResidentBytes();
        var started = DateTime.UtcNow;
        using var model = new SevenBWidthQLora();
        var seconds = (DateTime.UtcNow - started).TotalSeconds;
        var peak = ProcessMemory.PeakResidentBytes() - before;
        output.WriteLine($"build: {seconds:F1} s, peak {peak / (double)MiB:F0} MiB above the process; " +
            $"compile-time WeightBytes {SevenBWidthQLora.Accounting.WeightBytes / (double)MiB:F0} MiB");
        Assert.True(peak <= SevenBWidthQLora.Accounting.WeightBytes + Slack,
            $"building peaked {peak / (double)MiB:F0} MiB above the process, more than the model's {SevenBWidthQLora.Accounting.WeightBytes / (double)MiB:F0} MiB + {Slack / MiB} MiB");

        var projections = ((IPeftModel)model).Projections().ToList();
        Assert.Equal(7 * SevenBWidthConfig.Layers + 1, projections.Count);
        Assert.All(projections, p => Assert.Equal(p.Path != "lm_head", p.Layer.IsQuantized));
        Assert.Equal(SevenBWidthQLora.Accounting.TrainableParameters, ((IPeftModel)model).TrainableParameters().Sum(p => p.numel()));
    }

    [Fact]
    public void A_7B_width_QLoRA_model_loads_a_sharded_bf16_checkpoint_one_tensor_at_a_time_without_a_float_copy()
    {
        WarmUp();
        using var folder = new TempFolder();
        var stored = WriteCheckpoint(folder.Path);
        var largest = stored.Values.Max();
        using var model = new SevenBWidthQLora();
        var projections = ((IPeftModel)model).Projections().Where(p => p.Layer.IsQuantized).ToDictionary(p => p.Path, p => p.Layer);
        var zeroState = projections.ToDictionary(p => p.Key, p => QuantTestData.Hash(p.Value.QuantizedWeight!));

        using var source = new PeakPerRead(HfCheckpoint.Open(folder.Path, ReadMode.Collecting));
        NativeHeap.Settle();
        Assert.True(ProcessMemory.TryResetPeak(), "this test needs /proc/self/clear_refs to measure a peak");
        var before = ProcessMemory.CurrentResidentBytes();
        var started = DateTime.UtcNow;
        var result = PretrainedLoader.Load(model, source);
        var seconds = (DateTime.UtcNow - started).TotalSeconds;
        var peak = source.Finish() - before;
        output.WriteLine($"load: {seconds:F1} s, {result.LoadedTensors} tensors from {System.IO.Directory.GetFiles(folder.Path, "*.safetensors").Length} shards in {string.Join(", ", result.StoredDTypes)}, " +
            $"peak {peak / (double)MiB:F0} MiB above the built model; largest stored tensor {largest / (double)MiB:F0} MiB");

        var tooLarge = new List<string>();
        foreach (var (key, growth) in source.GrowthPerTensor)
        {
            var fourBit = projections.TryGetValue(key[..^".weight".Length], out var projection) ? projection.QuantizedWeight!.StorageBytes : 0;
            output.WriteLine($"  {key}: {growth / (double)MiB:F1} MiB (stored {stored[key] / (double)MiB:F1} MiB, 4-bit {fourBit / (double)MiB:F1} MiB)");
            // A float tensor (the embedding, the float32 head, norms) is read into its parameter a block at a time: its
            // whole stored form (250 MiB for the embedding and the head) never exists. A 4-bit weight is read whole.
            var values = stored[key] / 2;
            var allowed = fourBit == 0
                ? SafeTensorsFile.ReadIntoBlockBytes + Slack
                : stored[key] + fourBit + Slack + LoadSlackPerValue * values;
            if (growth > allowed) tooLarge.Add($"{key} {growth / (double)MiB:F0} MiB (at most {allowed / MiB:F0})");
        }
        Assert.True(tooLarge.Count == 0,
            $"loading grew resident memory by more than a block of {SafeTensorsFile.ReadIntoBlockBytes / MiB} MiB (float tensors) or the tensor as stored, "
            + $"its new 4-bit form and {LoadSlackPerValue} byte per value (4-bit weights), beside {Slack / MiB} MiB: {string.Join(", ", tooLarge)}");
        Assert.True(peak <= 2 * largest, $"loading peaked {peak / (double)MiB:F0} MiB above the built model: more than twice the largest tensor");
        Assert.Equal(stored.Count, source.GrowthPerTensor.Count);

        // Every 4-bit projection was filled once, from the stored bfloat16 values, which it records as its original dtype.
        Assert.All(projections, p =>
        {
            Assert.Equal(ScalarType.BFloat16, p.Value.QuantizedWeight!.OriginalDType);
            Assert.NotEqual(zeroState[p.Key], QuantTestData.Hash(p.Value.QuantizedWeight));
        });
        using var checkpoint = HfCheckpoint.Open(folder.Path, ReadMode.Collecting);
        using var qProj = checkpoint.Read("model.layers.0.self_attn.q_proj.weight");
        using var expected = Nf4Tensor.Quantize(qProj, new Quant4BitOptions());
        Assert.Equal(QuantTestData.Hash(expected), QuantTestData.Hash(projections["model.layers.0.self_attn.q_proj"].QuantizedWeight!));
    }

    [Theory]
    [InlineData(ScalarType.Float32, true)]
    [InlineData(ScalarType.BFloat16, true)]
    [InlineData(ScalarType.Float32, false)]
    public void Quantizing_a_7B_MLP_weight_needs_little_beyond_the_weight_and_its_4_bit_form(ScalarType dtype, bool doubleQuant)
    {
        WarmUp();
        using var weight = randn(SevenBWidthConfig.Mlp, SevenBWidthConfig.Width).to(dtype);
        var options = new Quant4BitOptions(QuantType.Nf4, 64, doubleQuant);
        NativeHeap.Settle();
        Assert.True(ProcessMemory.TryResetPeak(), "this test needs /proc/self/clear_refs to measure a peak");
        var before = ProcessMemory.CurrentResidentBytes();
        var started = DateTime.UtcNow;
        using var quantized = Nf4Tensor.Quantize(weight, options);
        var seconds = (DateTime.UtcNow - started).TotalSeconds;
        var growth = ProcessMemory.PeakResidentBytes() - before;
        var extra = growth - quantized.StorageBytes;
        output.WriteLine($"{weight.NumberOfElements:N0} {dtype} values in {seconds:F2} s: peak {growth / (double)MiB:F1} MiB above the weight, " +
            $"of which the 4-bit result {quantized.StorageBytes / (double)MiB:F1} MiB; {extra / (double)weight.NumberOfElements:F3} bytes per value beside it");
        // Main's torch-op version held about 29 bytes per value (1.2 GiB here) until it returned; a float32 copy of the
        // weight would be 4 bytes per value. Measured: 0.01-1.0 bytes per value, most of it free C-heap memory that the
        // allocator keeps resident (the heap's in-use bytes grow by the result only).
        Assert.True(extra <= 1.5 * weight.NumberOfElements,
            $"quantizing grew resident memory by {growth / (double)MiB:F0} MiB: {extra / (double)weight.NumberOfElements:F2} bytes per value beside the {quantized.StorageBytes / (double)MiB:F0} MiB result");
    }

    /// <summary>A sharded bfloat16 checkpoint in transformers' Llama layout; returns each tensor's stored bytes.</summary>
    private static Dictionary<string, long> WriteCheckpoint(string folder)
    {
        const long v = SevenBWidthConfig.Vocab, w = SevenBWidthConfig.Width, m = SevenBWidthConfig.Mlp;
        var shapes = new List<(string Key, long[] Shape)> { ("model.embed_tokens.weight", [v, w]) };
        for (var i = 0; i < SevenBWidthConfig.Layers; i++)
        {
            var layer = $"model.layers.{i}.";
            shapes.Add((layer + "input_layernorm.weight", [w]));
            foreach (var name in new[] { "q_proj", "k_proj", "v_proj", "o_proj" }) shapes.Add((layer + "self_attn." + name + ".weight", [w, w]));
            shapes.Add((layer + "post_attention_layernorm.weight", [w]));
            shapes.Add((layer + "mlp.gate_proj.weight", [m, w]));
            shapes.Add((layer + "mlp.up_proj.weight", [m, w]));
            shapes.Add((layer + "mlp.down_proj.weight", [w, m]));
        }
        shapes.Add(("model.norm.weight", [w]));
        shapes.Add(("lm_head.weight", [v, w]));

        using var scope = NewDisposeScope();
        manual_seed(16);
        var tensors = shapes.ToDictionary(s => s.Key, s => empty(s.Shape, ScalarType.BFloat16).normal_(0, 0.02));
        HfCheckpointWriter.Save(folder, tensors, new JsonObject { ["model_type"] = "llama" }, maxShardBytes: 300 * MiB);
        return tensors.ToDictionary(t => t.Key, t => t.Value.NumberOfElements * t.Value.ElementSize);
    }

    /// <summary>
    /// A checkpoint source that measures, for each tensor read, the peak resident memory from that read until the next
    /// one, above the resident memory at its start: what reading and storing that tensor cost. The C heap's free memory
    /// is given back and the peak reset at every read, so the load's overall peak is the largest of the intervals' peaks.
    /// </summary>
    private sealed class PeakPerRead(ICheckpointSource inner) : ICheckpointSource
    {
        private string? current;
        private long start;
        private long peak;

        public List<(string Key, long Growth)> GrowthPerTensor { get; } = new();

        public string Description => inner.Description;

        public IReadOnlyCollection<string> Names => inner.Names;

        public IReadOnlyList<CheckpointMismatch> Problems => inner.Problems;

        public JsonObject? Config => inner.Config;

        public CheckpointTensorInfo Info(string name) => inner.Info(name);

        public Tensor Read(string name)
        {
            Open(name);
            return inner.Read(name);
        }

        public void ReadInto(string name, Tensor target)
        {
            Open(name);
            inner.ReadInto(name, target);
        }

        /// <summary>Closes the last tensor's interval; returns the peak resident memory of the whole load.</summary>
        public long Finish()
        {
            Close();
            return peak;
        }

        private void Open(string name)
        {
            Close();
            // What the C heap keeps resident of the tensors already done is not this tensor's cost: give it back first.
            NativeHeap.Trim();
            ProcessMemory.TryResetPeak();
            start = ProcessMemory.CurrentResidentBytes();
            current = name;
        }

        private void Close()
        {
            var peak = ProcessMemory.PeakResidentBytes();
            this.peak = Math.Max(this.peak, peak);
            if (current is not null) GrowthPerTensor.Add((current, peak - start));
            current = null;
        }

        public void Dispose() => inner.Dispose();
    }

    /// <summary>
    /// Runs every kind of layer once at a small size, and quantizes a bfloat16 weight large enough for the kernel's
    /// workers, so the measurement does not count first uses in the process: libtorch's code pages and thread pool
    /// (about 120 MiB here when this test runs alone), and the worker threads' stacks and C-heap arenas.
    /// </summary>
    private static void WarmUp()
    {
        using var scope = NewDisposeScope();
        using var projection = new LoraLinear(64, 64, hasBias: false, new Quant4BitOptions());
        projection.AddAdapter("default", new LoraConfig(4, 8, 0, false));
        using var embedding = new TokenEmbedding(64, 64);
        using var norm = new RmsNorm(64, 1e-5);
        projection.forward(norm.forward(embedding.forward(arange(8).view(1, 8)))).sum().item<float>();
        projection.LoadBase(randn(64, 64).to(ScalarType.BFloat16));
        using (Nf4Tensor.Quantize(randn(1024, 1024, dtype: ScalarType.BFloat16), new Quant4BitOptions())) { }
    }
}
