using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using PeftGen.Checkpoints;
using PeftGen.Tests.Support;
using PeftGen.Formats;
using PeftGen.Formats.HuggingFace;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PeftGen.Tests.Checkpoints;

public sealed class PretrainedLoaderTests(ITestOutputHelper output)
{
    private static readonly Gpt2Config Gpt2Config = new();
    private static readonly LlamaConfig LlamaConfig = new();

    [Fact]
    public void Gpt2_HfLayout_LoadsWithConv1DTransposedAndLogitsMatchTheRawTensors()
    {
        using var temp = new TempFolder();
        var raw = HfCheckpoints.Gpt2(Gpt2Config, seed: 1);
        HfCheckpoints.WriteSingle(temp.Path, raw);
        using var model = new TinyGpt2(Gpt2Config);

        using var source = new CountingSource(HfCheckpoint.Open(temp.Path, ReadMode.Collecting));
        var result = PretrainedLoader.Load(model, source, PretrainedLoadOptions.Gpt2);

        Assert.Equal(new KeyPrefixMapping("transformer.", ""), result.KeyPrefix);
        Assert.Equal(Enumerable.Range(0, Gpt2Config.Blocks).Select(i => $"h.{i}.attn.bias"), result.SkippedKeys);
        Assert.Equal(new[] { "F32" }, result.StoredDTypes);
        Assert.Equal(raw.Count - Gpt2Config.Blocks, result.LoadedTensors);
        // Conv1D weights too are read into their (transposed) parameters, never whole.
        Assert.Equal(0, source.Reads);
        var ids = Ids.Random(Gpt2Config.Vocab, 2, 12, seed: 2);
        Assert.True(Reference.RelativeError(model.forward(ids), HfCheckpoints.Gpt2Reference(raw, ids, Gpt2Config)) < 1e-5);
    }

    [Theory]
    [InlineData(ScalarType.Float16)]
    [InlineData(ScalarType.BFloat16)]
    public void HalfPrecisionCheckpoints_AreConvertedToTheModelDType(ScalarType stored)
    {
        using var temp = new TempFolder();
        var raw = HfCheckpoints.Converted(HfCheckpoints.Llama(LlamaConfig, seed: 3), stored);
        HfCheckpoints.WriteSingle(temp.Path, raw);
        using var model = new TinyLlama(LlamaConfig);

        using var source = new CountingSource(HfCheckpoint.Open(temp.Path, ReadMode.Collecting));
        var result = PretrainedLoader.Load(model, source);

        Assert.Equal(new[] { TestSafeTensors.DTypeName(stored) }, result.StoredDTypes);
        Assert.All(model.Layers.SelectMany(l => l.Module.parameters()), p => Assert.Equal(ScalarType.Float32, p.dtype));
        // The stored half-precision values are exactly representable in float32, so only float32 arithmetic differs.
        var ids = Ids.Random(LlamaConfig.Vocab, 2, 10, seed: 4);
        Assert.True(Reference.RelativeError(model.forward(ids), HfCheckpoints.LlamaReference(raw, ids, LlamaConfig)) < 1e-5);
    }

    [Fact]
    public void Llama_ShardedCheckpoint_LoadsEveryShardAndLogitsMatch()
    {
        using var temp = new TempFolder();
        var raw = HfCheckpoints.Llama(LlamaConfig, seed: 5);
        HfCheckpoints.WriteSharded(temp.Path, raw, shards: 3);
        using var model = new TinyLlama(LlamaConfig);

        using var source = new CountingSource(HfCheckpoint.Open(temp.Path, ReadMode.Collecting));
        var result = PretrainedLoader.Load(model, source);

        Assert.True(result.KeyPrefix.IsIdentity);
        Assert.Equal(raw.Count, result.LoadedTensors);
        // A float model reads every tensor into its parameter: none is handed out whole.
        Assert.Equal(raw.Count, source.ReadsInto);
        Assert.Equal(0, source.Reads);
        var ids = Ids.Random(LlamaConfig.Vocab, 3, 9, seed: 6);
        Assert.True(Reference.RelativeError(model.forward(ids), HfCheckpoints.LlamaReference(raw, ids, LlamaConfig)) < 1e-5);
    }

    [Fact]
    public void Llama_BaseModelCheckpointWithoutModelPrefix_IsDetected()
    {
        using var temp = new TempFolder();
        var raw = HfCheckpoints.Llama(LlamaConfig, seed: 7);
        var renamed = raw.ToDictionary(e => e.Key.StartsWith("model.", StringComparison.Ordinal) ? e.Key["model.".Length..] : e.Key, e => e.Value);
        HfCheckpoints.WriteSingle(temp.Path, renamed);
        using var model = new TinyLlama(LlamaConfig);

        using var source = new CountingSource(HfCheckpoint.Open(temp.Path, ReadMode.Collecting));
        var result = PretrainedLoader.Load(model, source);

        Assert.Equal(new KeyPrefixMapping("model.", ""), result.KeyPrefix);
        var ids = Ids.Random(LlamaConfig.Vocab, 1, 8, seed: 8);
        Assert.True(Reference.RelativeError(model.forward(ids), HfCheckpoints.LlamaReference(raw, ids, LlamaConfig)) < 1e-5);
    }

    [Fact]
    public void Gpt2_CheckpointWithTransformerPrefixAndStoredTiedHead_LoadsAsIs()
    {
        using var temp = new TempFolder();
        var raw = HfCheckpoints.Gpt2(Gpt2Config, seed: 9);
        var full = raw.ToDictionary(e => "transformer." + e.Key, e => e.Value);
        full["lm_head.weight"] = raw["wte.weight"].clone();
        HfCheckpoints.WriteSingle(temp.Path, full);
        using var model = new TinyGpt2(Gpt2Config);

        using var source = new CountingSource(HfCheckpoint.Open(temp.Path, ReadMode.Collecting));
        var result = PretrainedLoader.Load(model, source, PretrainedLoadOptions.Gpt2);

        Assert.True(result.KeyPrefix.IsIdentity);
        var ids = Ids.Random(Gpt2Config.Vocab, 2, 8, seed: 10);
        Assert.True(Reference.RelativeError(model.forward(ids), HfCheckpoints.Gpt2Reference(raw, ids, Gpt2Config)) < 1e-5);
    }

    [Fact]
    public void Gpt2_ModelWithItsOwnHead_IsFilledFromTheTiedEmbedding()
    {
        using var temp = new TempFolder();
        var raw = HfCheckpoints.Gpt2(Gpt2Config, seed: 11);
        HfCheckpoints.WriteSingle(temp.Path, raw);
        using var model = new TinyGpt2(Gpt2Config, separateHead: true);

        using var source = new CountingSource(HfCheckpoint.Open(temp.Path, ReadMode.Collecting));
        var result = PretrainedLoader.Load(model, source, PretrainedLoadOptions.Gpt2);

        Assert.Equal(new[] { "lm_head.weight" }, result.FilledFromTies);
        Assert.Equal(TensorHash.Of(raw["wte.weight"]), TensorHash.Of(model.Layer<LoraLinear>("lm_head").Weight));
        var ids = Ids.Random(Gpt2Config.Vocab, 2, 8, seed: 12);
        Assert.True(Reference.RelativeError(model.forward(ids), HfCheckpoints.Gpt2Reference(raw, ids, Gpt2Config)) < 1e-5);
    }

    [Fact]
    public void Gpt2_WithoutTheTie_AnAbsentHeadIsMissing()
    {
        using var temp = new TempFolder();
        HfCheckpoints.WriteSingle(temp.Path, HfCheckpoints.Gpt2(Gpt2Config, seed: 13));
        using var model = new TinyGpt2(Gpt2Config, separateHead: true);

        using var source = new CountingSource(HfCheckpoint.Open(temp.Path, ReadMode.Collecting));
        var error = Assert.Throws<CheckpointMismatchException>(() => PretrainedLoader.Load(model, source));

        var only = Assert.Single(error.Mismatches);
        Assert.Equal((CheckpointMismatchKind.Missing, "lm_head.weight"), (only.Kind, only.Key));
    }

    [Fact]
    public void EveryMismatchKind_IsReportedTogether_AndTheModelIsLeftBitIdentical()
    {
        using var temp = new TempFolder();
        var raw = HfCheckpoints.Llama(LlamaConfig, seed: 14);
        raw.Remove("model.layers.0.mlp.up_proj.weight");
        raw["model.layers.0.self_attn.rotary_emb.inv_freq"] = ones(2);
        raw["model.layers.0.self_attn.q_proj.bias"] = zeros(LlamaConfig.Width);
        raw["model.layers.0.self_attn.k_proj.weight"] = zeros(LlamaConfig.Width, LlamaConfig.Width);
        raw["model.layers.0.mlp.gate_proj.weight"] = zeros(new long[] { LlamaConfig.Intermediate, LlamaConfig.Width }, dtype: ScalarType.Int64);
        HfCheckpoints.WriteSharded(temp.Path, raw, shards: 4);
        var lostShard = HfCheckpointWriter.ShardName(3, 4);
        var lostKeys = TestSafeTensors.ReadHeader(Path.Combine(temp.Path, lostShard), out _).Keys.ToList();
        File.Delete(Path.Combine(temp.Path, lostShard));

        using var model = new TinyLlama(LlamaConfig);
        model.Layer<LoraLinear>("model.layers.0.self_attn.q_proj").AddAdapter("default", new LoraConfig(2, 4, 0, false));
        var before = ModelHash.Of(model);

        using var source = new CountingSource(HfCheckpoint.Open(temp.Path, ReadMode.Collecting));
        var error = Assert.Throws<CheckpointMismatchException>(() => PretrainedLoader.Load(model, source));

        output.WriteLine(error.Message);
        Assert.Equal(before, ModelHash.Of(model));
        Assert.Equal(0, source.Reads);
        var found = error.Mismatches.Select(m => (m.Kind, m.Key)).ToHashSet();
        Assert.Contains((CheckpointMismatchKind.File, ""), found);
        Assert.Contains((CheckpointMismatchKind.Missing, "model.layers.0.mlp.up_proj.weight"), found);
        Assert.Contains((CheckpointMismatchKind.Unexpected, "model.layers.0.self_attn.q_proj.bias"), found);
        Assert.Contains((CheckpointMismatchKind.WrongShape, "model.layers.0.self_attn.k_proj.weight"), found);
        Assert.Contains((CheckpointMismatchKind.WrongDType, "model.layers.0.mlp.gate_proj.weight"), found);
        Assert.NotEmpty(lostKeys);
        Assert.All(lostKeys, k => Assert.Contains((CheckpointMismatchKind.Missing, k), found));
        Assert.DoesNotContain(error.Mismatches, m => m.Key.EndsWith("inv_freq", StringComparison.Ordinal));
        Assert.Contains(lostShard, error.Message);
        Assert.All(error.Mismatches.Where(m => m.Key.Length > 0), m => Assert.Contains(m.Key, error.Message));
    }

    [Fact]
    public void Gpt2_Conv1DWeightStoredUntransposed_IsAWrongShapeThatNamesTheLayout()
    {
        using var temp = new TempFolder();
        var raw = HfCheckpoints.Gpt2(Gpt2Config, seed: 15);
        raw["h.1.mlp.c_fc.weight"] = raw["h.1.mlp.c_fc.weight"].t().contiguous();
        HfCheckpoints.WriteSingle(temp.Path, raw);
        using var model = new TinyGpt2(Gpt2Config);
        var before = ModelHash.Of(model);

        using var source = new CountingSource(HfCheckpoint.Open(temp.Path, ReadMode.Collecting));
        var error = Assert.Throws<CheckpointMismatchException>(() => PretrainedLoader.Load(model, source, PretrainedLoadOptions.Gpt2));

        var only = Assert.Single(error.Mismatches);
        Assert.Equal((CheckpointMismatchKind.WrongShape, "h.1.mlp.c_fc.weight"), (only.Kind, only.Key));
        Assert.Contains("[64, 16]", only.Detail);
        Assert.Contains("[16, 64] (Conv1D layout", only.Detail);
        Assert.Equal(before, ModelHash.Of(model));
    }

    [Fact]
    public void Gpt2_StoredHeadThatDiffersFromTheTiedEmbedding_IsReported()
    {
        using var temp = new TempFolder();
        var raw = HfCheckpoints.Gpt2(Gpt2Config, seed: 16);
        raw["lm_head.weight"] = raw["wte.weight"].add(1e-3);
        HfCheckpoints.WriteSingle(temp.Path, raw);
        using var model = new TinyGpt2(Gpt2Config);
        var before = ModelHash.Of(model);

        using var source = new CountingSource(HfCheckpoint.Open(temp.Path, ReadMode.Collecting));
        var error = Assert.Throws<CheckpointMismatchException>(() => PretrainedLoader.Load(model, source, PretrainedLoadOptions.Gpt2));

        var only = Assert.Single(error.Mismatches);
        Assert.Equal((CheckpointMismatchKind.TiedDiffers, "lm_head.weight"), (only.Kind, only.Key));
        Assert.Equal(before, ModelHash.Of(model));
    }

    [Fact]
    public void Loading_LeavesLoraAdaptersUntouched()
    {
        using var temp = new TempFolder();
        var raw = HfCheckpoints.Llama(LlamaConfig, seed: 17);
        HfCheckpoints.WriteSingle(temp.Path, raw);
        using var model = new TinyLlama(LlamaConfig);
        foreach (var (_, projection) in model.ProjectionLayers) projection.AddAdapter("default", new LoraConfig(2, 4, 0, false));
        var adapters = ModelHash.Of(model).Where(e => e.Key.Contains(".lora_", StringComparison.Ordinal)).ToList();

        using var source = new CountingSource(HfCheckpoint.Open(temp.Path, ReadMode.Collecting));
        PretrainedLoader.Load(model, source);

        var after = ModelHash.Of(model);
        Assert.NotEmpty(adapters);
        Assert.All(adapters, a => Assert.Equal(a.Value, after[a.Key]));
        Assert.Equal(TensorHash.Of(raw["model.layers.1.mlp.down_proj.weight"]), TensorHash.Of(model.Layer<LoraLinear>("model.layers.1.mlp.down_proj").Weight));
    }

    [Fact]
    public void AMergedAdapter_IsRefusedBeforeAnythingIsRead()
    {
        using var temp = new TempFolder();
        HfCheckpoints.WriteSingle(temp.Path, HfCheckpoints.Llama(LlamaConfig, seed: 18));
        using var model = new TinyLlama(LlamaConfig);
        var q = model.Layer<LoraLinear>("model.layers.1.self_attn.q_proj");
        q.AddAdapter("default", new LoraConfig(2, 4, 0, false));
        q.Merge();

        using var source = new CountingSource(HfCheckpoint.Open(temp.Path, ReadMode.Collecting));
        var error = Assert.Throws<InvalidOperationException>(() => PretrainedLoader.Load(model, source));

        Assert.Contains("model.layers.1.self_attn.q_proj", error.Message);
        Assert.Equal(0, source.Reads);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Gpt2_ModelNamedFromTheTransformer_LoadsALMHeadModelStateDict(bool separateHead)
    {
        using var temp = new TempFolder();
        var raw = HfCheckpoints.Gpt2(Gpt2Config, seed: 19);
        var full = raw.ToDictionary(e => "transformer." + e.Key, e => e.Value);
        full["lm_head.weight"] = raw["wte.weight"].clone();
        HfCheckpoints.WriteSingle(temp.Path, full);
        using var model = new TinyGpt2(Gpt2Config, separateHead, root: "");

        using var source = new CountingSource(HfCheckpoint.Open(temp.Path, ReadMode.Collecting));
        var result = PretrainedLoader.Load(model, source, PretrainedLoadOptions.Gpt2);

        Assert.Equal(new KeyPrefixMapping("", "transformer."), result.KeyPrefix);
        Assert.Empty(result.FilledFromTies);
        if (separateHead) Assert.Equal("lm_head.weight", result.CheckpointKeys["lm_head.weight"]);
        var ids = Ids.Random(Gpt2Config.Vocab, 2, 8, seed: 20);
        Assert.True(Reference.RelativeError(model.forward(ids), HfCheckpoints.Gpt2Reference(raw, ids, Gpt2Config)) < 1e-5);
    }

    [Fact]
    public void AFloat32Checkpoint_LoadsIntoABFloat16Model()
    {
        using var temp = new TempFolder();
        var raw = HfCheckpoints.Llama(LlamaConfig, seed: 25);
        HfCheckpoints.WriteSingle(temp.Path, raw);
        using var model = new TinyLlama(LlamaConfig, ScalarType.BFloat16);

        using var source = new CountingSource(HfCheckpoint.Open(temp.Path, ReadMode.Collecting));
        PretrainedLoader.Load(model, source);

        Assert.Equal(TensorHash.Of(raw["model.layers.0.self_attn.o_proj.weight"].to(ScalarType.BFloat16)),
            TensorHash.Of(model.Layer<LoraLinear>("model.layers.0.self_attn.o_proj").Weight));
        Assert.Equal(TensorHash.Of(raw["model.norm.weight"].to(ScalarType.BFloat16)), TensorHash.Of(model.Layer<RmsNorm>("model.norm").Weight));
    }

    [Fact]
    public void DetectKeyPrefix_PrefersUnchangedKeys_FindsStrippedAndAddedPrefixes()
    {
        var gpt2 = new[] { "transformer.wte.weight", "transformer.h.0.attn.c_attn.weight", "lm_head.weight" };
        Assert.True(PretrainedLoader.DetectKeyPrefix(gpt2, gpt2).IsIdentity);
        Assert.Equal(new KeyPrefixMapping("transformer.", ""),
            PretrainedLoader.DetectKeyPrefix(gpt2, new[] { "wte.weight", "h.0.attn.c_attn.weight", "h.0.attn.bias" }));
        var baseModel = new[] { "layers.0.self_attn.q_proj.weight", "norm.weight" };
        Assert.Equal(new KeyPrefixMapping("", "model."),
            PretrainedLoader.DetectKeyPrefix(baseModel, new[] { "model.layers.0.self_attn.q_proj.weight", "model.norm.weight", "lm_head.weight" }));
    }
}
