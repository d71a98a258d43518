using System;
using System.IO;
using System.Linq;
using System.Text.Json.Nodes;
using PeftGen.Checkpoints;
using PeftGen.Formats;
using PeftGen.Formats.HuggingFace;
using PeftGen.Tests.Checkpoints;
using Xunit;

namespace PeftGen.Tests.Formats.HuggingFace;

public sealed class HfCheckpointCollectingTests
{
    private static readonly LlamaConfig Config = new();

    [Fact]
    public void ACorruptShardAndAnInconsistentIndex_AreReportedWithTheOtherMismatches_AndNothingLoads()
    {
        using var temp = new TempFolder();
        var raw = HfCheckpoints.Llama(Config, seed: 31);
        HfCheckpoints.WriteSharded(temp.Path, raw, shards: 3);
        var corrupt = Path.Combine(temp.Path, HfCheckpointWriter.ShardName(2, 3));
        var bytes = File.ReadAllBytes(corrupt);
        File.WriteAllBytes(corrupt, bytes[..^5]);
        var indexPath = Path.Combine(temp.Path, HfCheckpoint.IndexFileName);
        var index = JsonNode.Parse(File.ReadAllText(indexPath))!;
        index["weight_map"]!["model.layers.0.self_attn.q_proj.weight"] = HfCheckpointWriter.ShardName(3, 3);
        File.WriteAllText(indexPath, index.ToJsonString());
        using var model = new TinyLlama(Config);
        var before = ModelHash.Of(model);

        var error = Assert.Throws<CheckpointMismatchException>(() => PretrainedLoader.Load(model, temp.Path));

        Assert.Equal(before, ModelHash.Of(model));
        var files = error.Mismatches.Where(m => m.Kind == CheckpointMismatchKind.File).Select(m => m.Detail).ToList();
        Assert.Contains(files, d => d.Contains(HfCheckpointWriter.ShardName(2, 3), StringComparison.Ordinal) && d.Contains("cannot be read", StringComparison.Ordinal));
        Assert.Contains(files, d => d.Contains("'model.layers.0.self_attn.q_proj.weight' is listed in shard", StringComparison.Ordinal));
        Assert.Contains(files, d => d.Contains("'model.layers.0.self_attn.q_proj.weight' is in shard", StringComparison.Ordinal) && d.Contains("but the index puts it in", StringComparison.Ordinal));
        Assert.Contains(error.Mismatches, m => m is { Kind: CheckpointMismatchKind.Missing, Key: "model.layers.0.self_attn.q_proj.weight" });
    }

    [Theory]
    [InlineData("../model-00001-of-00002.safetensors")]
    [InlineData("/etc/passwd")]
    [InlineData("..")]
    public void AnIndexThatPointsOutsideTheFolder_IsRejected(string shard)
    {
        using var temp = new TempFolder();
        HfCheckpoints.WriteSharded(temp.Path, HfCheckpoints.Llama(Config, seed: 32), shards: 2);
        var indexPath = Path.Combine(temp.Path, HfCheckpoint.IndexFileName);
        var index = JsonNode.Parse(File.ReadAllText(indexPath))!;
        index["weight_map"]!["lm_head.weight"] = shard;
        File.WriteAllText(indexPath, index.ToJsonString());

        var error = Assert.Throws<PeftFormatException>(() => HfCheckpoint.Open(temp.Path, ReadMode.Collecting));

        Assert.Equal(indexPath, error.FilePath);
        Assert.Equal("lm_head.weight", error.TensorName);
    }

    [Fact]
    public void AFolderWithoutWeights_SaysWhatItLookedFor()
    {
        using var temp = new TempFolder();

        var error = Assert.Throws<PeftFormatException>(() => HfCheckpoint.Open(temp.Path, ReadMode.Collecting));

        Assert.Contains(HfCheckpoint.SingleFileName, error.Message);
        Assert.Contains(HfCheckpoint.IndexFileName, error.Message);
    }

    [Fact]
    public void TheConfigurationAndLayout_AreExposed()
    {
        using var temp = new TempFolder();
        HfCheckpoints.WriteSharded(temp.Path, HfCheckpoints.Llama(Config, seed: 33), shards: 2);

        using var source = HfCheckpoint.Open(temp.Path, ReadMode.Collecting);

        Assert.True(source.IsSharded);
        Assert.Equal("tiny", (string?)source.Config!["model_type"]);
        Assert.Empty(source.Problems);
        Assert.Equal("F32", source.Info("lm_head.weight").DType);
        Assert.Equal(new long[] { Config.Vocab, Config.Width }, source.Info("lm_head.weight").Shape);
    }

    [Fact]
    public void AStrictlyOpenedCheckpoint_IsASourceTheLoaderReads()
    {
        using var temp = new TempFolder();
        var raw = HfCheckpoints.Llama(Config, seed: 34);
        HfCheckpoints.WriteSharded(temp.Path, raw, shards: 2);
        using var model = new TinyLlama(Config);

        using var checkpoint = HfCheckpoint.Open(temp.Path);
        var result = PretrainedLoader.Load(model, checkpoint);

        Assert.Equal(raw.Count, result.LoadedTensors);
        var ids = Ids.Random(Config.Vocab, 2, 8, seed: 35);
        Assert.True(PeftGen.Tests.Support.Reference.RelativeError(model.forward(ids), HfCheckpoints.LlamaReference(raw, ids, Config)) < 1e-5);
    }
}
