using System;
using System.IO;
using System.Linq;
using System.Text.Json.Nodes;
using PeftGen.Checkpoints;
using PeftGen.Tests.Support;
using PeftGen.Formats.HuggingFace;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Checkpoints;

public sealed class PretrainedSaverTests
{
    private static readonly Gpt2Config Gpt2Config = new();
    private static readonly LlamaConfig LlamaConfig = new();

    [Fact]
    public void Gpt2_SavedInTheLoadedLayout_ReproducesTheOriginalTensorsBitForBit()
    {
        using var temp = new TempFolder();
        var raw = HfCheckpoints.Gpt2(Gpt2Config, seed: 21);
        HfCheckpoints.WriteSingle(temp.Sub("original"), raw);
        using var model = new TinyGpt2(Gpt2Config);
        var loaded = PretrainedLoader.Load(model, temp.Sub("original"), PretrainedLoadOptions.Gpt2);

        JsonObject? config;
        using (var original = HfCheckpoint.Open(temp.Sub("original"))) config = original.Config;

        var files = PretrainedSaver.Save(model, temp.Sub("saved"), new PretrainedSaveOptions
        {
            CheckpointKeys = loaded.CheckpointKeys,
            TiedWeights = PretrainedLoadOptions.Gpt2.TiedWeights,
            Config = config,
        });

        Assert.Equal(new[] { HfCheckpoint.SingleFileName, HfCheckpoint.ConfigFileName }, files.Select(Path.GetFileName));
        var saved = TestSafeTensors.ReadAll(Path.Combine(temp.Sub("saved"), HfCheckpoint.SingleFileName));
        var weights = raw.Where(e => !e.Key.EndsWith(".attn.bias", StringComparison.Ordinal)).ToList();
        Assert.Equal(weights.Select(e => e.Key).Order(StringComparer.Ordinal), saved.Keys.Order(StringComparer.Ordinal));
        Assert.All(weights, e => Assert.Equal(TensorHash.Of(e.Value), TensorHash.Of(saved[e.Key])));
        using var reopened = HfCheckpoint.Open(temp.Sub("saved"));
        Assert.Equal("tiny", (string?)reopened.Config!["model_type"]);
    }

    [Fact]
    public void Llama_MergedAndSharded_LoadsIntoAFreshModelWithTheAdaptedLogits()
    {
        using var temp = new TempFolder();
        HfCheckpoints.WriteSingle(temp.Sub("original"), HfCheckpoints.Llama(LlamaConfig, seed: 22));
        using var model = new TinyLlama(LlamaConfig);
        PretrainedLoader.Load(model, temp.Sub("original"));
        using var g = new Generator(23);
        foreach (var (_, projection) in model.ProjectionLayers.Where(p => p.Path.EndsWith("q_proj", StringComparison.Ordinal) || p.Path.EndsWith("v_proj", StringComparison.Ordinal)))
        {
            projection.AddAdapter("default", new LoraConfig(2, 4, 0, false));
            using (no_grad()) projection.LoraB("default").normal_(0, 0.5, g);
        }
        var before = ModelHash.Of(model);
        var ids = Ids.Random(LlamaConfig.Vocab, 2, 8, seed: 24);
        using var adapted = model.forward(ids);

        PretrainedSaver.Save(model, temp.Sub("merged"), new PretrainedSaveOptions { MergeAdapters = true, MaxShardBytes = 4096 });

        Assert.Equal(before, ModelHash.Of(model));
        var shardFiles = Directory.GetFiles(temp.Sub("merged"), "model-*-of-*.safetensors").Select(Path.GetFileName).Order().ToList();
        Assert.True(shardFiles.Count > 1);
        Assert.Equal(Enumerable.Range(1, shardFiles.Count).Select(i => HfCheckpointWriter.ShardName(i, shardFiles.Count)), shardFiles);
        var index = JsonNode.Parse(File.ReadAllText(Path.Combine(temp.Sub("merged"), HfCheckpoint.IndexFileName)))!;
        var shardTensors = shardFiles.SelectMany(f => TestSafeTensors.ReadAll(Path.Combine(temp.Sub("merged"), f!)).Select(e => (File: f, e.Key, e.Value))).ToList();
        Assert.Equal(shardTensors.Sum(t => t.Value.NumberOfElements * t.Value.ElementSize), index["metadata"]!["total_size"]!.GetValue<long>());
        Assert.Equal(
            shardTensors.Select(t => $"{t.Key}={t.File}").Order(StringComparer.Ordinal),
            index["weight_map"]!.AsObject().Select(e => $"{e.Key}={e.Value}").Order(StringComparer.Ordinal));
        Assert.All(shardTensors, t => Assert.True(t.Value.NumberOfElements * t.Value.ElementSize <= 4096));

        using var reloaded = new TinyLlama(LlamaConfig);
        PretrainedLoader.Load(reloaded, temp.Sub("merged"));
        Assert.True(Reference.RelativeError(reloaded.forward(ids), adapted) < 1e-5);
    }

    [Fact]
    public void AnAlreadyMergedModel_IsSavedWithoutCountingTheAdapterTwice()
    {
        using var temp = new TempFolder();
        using var model = new TinyLlama(LlamaConfig);
        using var g = new Generator(26);
        var up = model.Layer<LoraLinear>("model.layers.0.mlp.up_proj");
        up.AddAdapter("default", new LoraConfig(2, 4, 0, false));
        using (no_grad()) up.LoraB("default").normal_(0, 0.5, g);
        var ids = Ids.Random(LlamaConfig.Vocab, 2, 8, seed: 27);
        using var adapted = model.forward(ids);
        model.MergeAdapters();

        PretrainedSaver.Save(model, temp.Path, new PretrainedSaveOptions { MergeAdapters = true });

        using var reloaded = new TinyLlama(LlamaConfig);
        PretrainedLoader.Load(reloaded, temp.Path);
        Assert.True(Reference.RelativeError(reloaded.forward(ids), adapted) < 1e-5);
    }

    [Theory]
    [InlineData(ScalarType.Float16)]
    [InlineData(ScalarType.BFloat16)]
    public void SavingInHalfPrecision_StoresThatDType(ScalarType dtype)
    {
        using var temp = new TempFolder();
        using var model = new TinyLlama(LlamaConfig);

        PretrainedSaver.Save(model, temp.Path, new PretrainedSaveOptions { DType = dtype });

        var header = TestSafeTensors.ReadHeader(Path.Combine(temp.Path, HfCheckpoint.SingleFileName), out _);
        Assert.All(header.Values, e => Assert.Equal(TestSafeTensors.DTypeName(dtype), e.DType));
        using var reloaded = new TinyLlama(LlamaConfig);
        PretrainedLoader.Load(reloaded, temp.Path);
        var weight = model.Layer<LoraLinear>("lm_head").Weight;
        Assert.Equal(TensorHash.Of(weight.to(dtype).to(ScalarType.Float32)), TensorHash.Of(reloaded.Layer<LoraLinear>("lm_head").Weight));
    }

    [Fact]
    public void SavingOverAnotherLayout_RemovesItsStaleWeightFiles()
    {
        using var temp = new TempFolder();
        using var model = new TinyLlama(LlamaConfig);
        PretrainedSaver.Save(model, temp.Path, new PretrainedSaveOptions { MaxShardBytes = 2048 });
        Assert.True(File.Exists(Path.Combine(temp.Path, HfCheckpoint.IndexFileName)));
        File.WriteAllText(Path.Combine(temp.Path, "README.md"), "kept");

        PretrainedSaver.Save(model, temp.Path);

        Assert.Equal(
            new[] { "README.md", HfCheckpoint.SingleFileName },
            Directory.GetFiles(temp.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        using var reloaded = new TinyLlama(LlamaConfig);
        PretrainedLoader.Load(reloaded, temp.Path);
        Assert.Equal(ModelHash.Of(model), ModelHash.Of(reloaded));
    }

    [Fact]
    public void ATiedHeadThatDiverged_IsNotSilentlyDropped()
    {
        using var temp = new TempFolder();
        using var model = new TinyGpt2(Gpt2Config, separateHead: true);

        var error = Assert.Throws<InvalidOperationException>(() => PretrainedSaver.Save(
            model, temp.Path, new PretrainedSaveOptions { TiedWeights = [TiedWeight.Gpt2Head] }));

        Assert.Contains("lm_head.weight", error.Message);
        Assert.Empty(Directory.GetFiles(temp.Path));
    }
}
