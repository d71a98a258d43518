using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json.Nodes;
using PeftGen.Formats;
using PeftGen.Formats.HuggingFace;
using PeftGen.Formats.SafeTensors;
using TorchSharp;
using PeftGen.Tests.IO;
using PeftGen.Tests.Formats.SafeTensors;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Formats.HuggingFace;

public sealed class HfCheckpointTests : IDisposable
{
    private readonly TempFolder folder = new();
    private readonly DisposeScope scope = NewDisposeScope();

    public void Dispose()
    {
        scope.Dispose();
        folder.Dispose();
    }

    // A GPT-2-shaped toy: 4-byte floats, so byte sizes are easy to reason about.
    private static Dictionary<string, Tensor> Gpt2Like() => new()
    {
        ["transformer.wte.weight"] = SafeTensorsRoundTripTests.Sample("F32", new long[] { 10, 4 }, 1),  // 160 bytes
        ["transformer.wpe.weight"] = SafeTensorsRoundTripTests.Sample("F32", new long[] { 6, 4 }, 2),   // 96
        ["transformer.h.0.attn.c_attn.weight"] = SafeTensorsRoundTripTests.Sample("F32", new long[] { 4, 12 }, 3), // 192
        ["transformer.h.0.attn.c_attn.bias"] = SafeTensorsRoundTripTests.Sample("F32", new long[] { 12 }, 4),      // 48
        ["transformer.h.0.ln_1.weight"] = SafeTensorsRoundTripTests.Sample("BF16", new long[] { 4 }, 5),          // 8
        ["transformer.ln_f.weight"] = SafeTensorsRoundTripTests.Sample("F16", new long[] { 4 }, 6),              // 8
    };

    private static readonly JsonObject Config = new() { ["model_type"] = "gpt2", ["n_embd"] = 4, ["n_layer"] = 1, ["layer_norm_epsilon"] = 1e-05 };

    private void AssertSameTensors(Dictionary<string, Tensor> expected, HfCheckpoint checkpoint)
    {
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), checkpoint.Names);
        foreach (var (name, tensor) in expected)
        {
            var info = checkpoint.TensorInfo(name);
            Assert.Equal(tensor.shape, info.Shape);
            using var read = checkpoint.Read(name);
            Assert.Equal(tensor.dtype, read.dtype);
            Assert.Equal(SafeTensorsRoundTripTests.Bytes(tensor), SafeTensorsRoundTripTests.Bytes(read));
        }
    }

    [Fact]
    public void Sharded_layout_is_written_like_transformers_and_read_back()
    {
        var tensors = Gpt2Like();
        var written = HfCheckpointWriter.Save(folder.Path, tensors, Config, maxShardBytes: 300);

        // Fill order: wte 160 + wpe 96 = 256; c_attn.weight 192 opens shard 2; + bias 48 + ln_1 8 + ln_f 8 = 256.
        Assert.Equal(new[] { "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors" }, written);
        var index = File.ReadAllText(folder.File(HfCheckpoint.IndexFileName));
        Assert.Equal("""
            {
              "metadata": {
                "total_size": 512
              },
              "weight_map": {
                "transformer.h.0.attn.c_attn.bias": "model-00002-of-00002.safetensors",
                "transformer.h.0.attn.c_attn.weight": "model-00002-of-00002.safetensors",
                "transformer.h.0.ln_1.weight": "model-00002-of-00002.safetensors",
                "transformer.ln_f.weight": "model-00002-of-00002.safetensors",
                "transformer.wpe.weight": "model-00001-of-00002.safetensors",
                "transformer.wte.weight": "model-00001-of-00002.safetensors"
              }
            }

            """, index);
        Assert.Equal("{\n  \"layer_norm_epsilon\": 1e-05,\n  \"model_type\": \"gpt2\",\n  \"n_embd\": 4,\n  \"n_layer\": 1\n}\n",
            File.ReadAllText(folder.File(HfCheckpoint.ConfigFileName)));

        using var checkpoint = HfCheckpoint.Open(folder.Path);
        Assert.True(checkpoint.IsSharded);
        Assert.Equal(512, checkpoint.TotalSize);
        Assert.Equal("gpt2", checkpoint.Config!["model_type"]!.GetValue<string>());
        Assert.Equal("model-00002-of-00002.safetensors", checkpoint.ShardOf("transformer.ln_f.weight"));
        Assert.Equal("pt", SafeTensorsFile.Open(folder.File(written[0])).Metadata["format"]);
        AssertSameTensors(tensors, checkpoint);
    }

    [Fact]
    public void Small_models_get_one_file_and_resaving_removes_the_other_layout()
    {
        var tensors = Gpt2Like();
        HfCheckpointWriter.Save(folder.Path, tensors, Config, maxShardBytes: 200);
        Assert.Equal(4, Directory.GetFiles(folder.Path, "model-*-of-00004.safetensors").Length);

        Assert.Equal(new[] { HfCheckpoint.SingleFileName }, HfCheckpointWriter.Save(folder.Path, tensors));
        Assert.Equal(new[] { HfCheckpoint.ConfigFileName, HfCheckpoint.SingleFileName },
            Directory.GetFiles(folder.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        using (var checkpoint = HfCheckpoint.Open(folder.Path))
        {
            Assert.False(checkpoint.IsSharded);
            AssertSameTensors(tensors, checkpoint);
        }

        HfCheckpointWriter.Save(folder.Path, tensors, maxShardBytes: 300);
        Assert.False(File.Exists(folder.File(HfCheckpoint.SingleFileName)));
        using var resharded = HfCheckpoint.Open(folder.Path);
        Assert.Equal(2, resharded.ShardFiles.Count);
    }

    [Fact]
    public void A_tensor_larger_than_the_shard_size_gets_its_own_shard()
    {
        var tensors = Gpt2Like();
        var written = HfCheckpointWriter.Save(folder.Path, tensors, maxShardBytes: 100);

        // wte (160) and c_attn.weight (192) exceed 100 bytes alone; wpe (96) fits but nothing joins it; the rest share one.
        Assert.Equal(4, written.Count);
        using var checkpoint = HfCheckpoint.Open(folder.Path);
        Assert.Equal("model-00001-of-00004.safetensors", checkpoint.ShardOf("transformer.wte.weight"));
        Assert.Equal("model-00003-of-00004.safetensors", checkpoint.ShardOf("transformer.h.0.attn.c_attn.weight"));
        Assert.Equal("model-00004-of-00004.safetensors", checkpoint.ShardOf("transformer.ln_f.weight"));
        AssertSameTensors(tensors, checkpoint);
    }

    [Fact]
    public void Half_precision_weights_convert_to_the_model_dtype()
    {
        var tensors = Gpt2Like();
        tensors["position_ids"] = arange(6L);
        HfCheckpointWriter.Save(folder.Path, tensors);
        using var checkpoint = HfCheckpoint.Open(folder.Path);

        using var ln = checkpoint.Read("transformer.h.0.ln_1.weight", dtype: ScalarType.Float32);
        Assert.Equal(ScalarType.Float32, ln.dtype);
        Assert.Equal(tensors["transformer.h.0.ln_1.weight"].to_type(ScalarType.Float32).data<float>().ToArray(), ln.data<float>().ToArray());
        using var half = checkpoint.Read("transformer.wte.weight", dtype: ScalarType.Float16);
        Assert.Equal(ScalarType.Float16, half.dtype);
        using var ids = checkpoint.Read("position_ids", dtype: ScalarType.Float32);
        Assert.Equal(ScalarType.Int64, ids.dtype);
        Assert.Throws<ArgumentException>(() => HfCheckpoint.ConvertFloating(ids, ScalarType.Int32));
    }

    private string SaveSharded()
    {
        HfCheckpointWriter.Save(folder.Path, Gpt2Like(), Config, maxShardBytes: 300);
        return folder.File(HfCheckpoint.IndexFileName);
    }

    private static void EditIndex(string indexPath, Action<JsonObject> edit)
    {
        var index = JsonNode.Parse(File.ReadAllText(indexPath))!.AsObject();
        edit(index["weight_map"]!.AsObject());
        File.WriteAllText(indexPath, index.ToJsonString());
    }

    private PeftFormatException Rejected(string? tensor, string fragment)
    {
        var error = Assert.Throws<PeftFormatException>(() => HfCheckpoint.Open(folder.Path).Dispose());
        Assert.Equal(tensor, error.TensorName);
        Assert.Contains(fragment, error.Message);
        return error;
    }

    [Fact]
    public void A_missing_shard_is_reported()
    {
        var index = SaveSharded();
        File.Delete(folder.File("model-00002-of-00002.safetensors"));
        var error = Rejected(null, "shard 'model-00002-of-00002.safetensors' is listed but missing");
        Assert.Equal(index, error.FilePath);
    }

    [Fact]
    public void A_tensor_listed_in_the_wrong_shard_is_reported()
    {
        var index = SaveSharded();
        EditIndex(index, map => map["transformer.wte.weight"] = "model-00002-of-00002.safetensors");
        var error = Rejected("transformer.wte.weight", "the index puts it in 'model-00002-of-00002.safetensors'");
        Assert.Contains("is listed in shard 'model-00002-of-00002.safetensors' but that shard does not hold it", error.Message);
    }

    [Fact]
    public void A_tensor_missing_from_the_index_is_reported()
    {
        EditIndex(SaveSharded(), map => map.Remove("transformer.ln_f.weight"));
        Rejected("transformer.ln_f.weight", "is in shard 'model-00002-of-00002.safetensors' but not in the index");
    }

    [Fact]
    public void An_index_entry_without_a_tensor_is_reported()
    {
        EditIndex(SaveSharded(), map => map["lm_head.weight"] = "model-00001-of-00002.safetensors");
        Rejected("lm_head.weight", "that shard does not hold it");
    }

    [Theory]
    [InlineData("../outside.safetensors")]
    [InlineData("/etc/passwd.safetensors")]
    [InlineData("model.bin")]
    public void Shard_names_outside_the_folder_or_of_another_format_are_refused(string shard)
    {
        EditIndex(SaveSharded(), map => map["transformer.wte.weight"] = shard);
        Rejected("transformer.wte.weight", "must be a plain .safetensors file name");
    }

    [Theory]
    [InlineData("{", null, "not valid JSON")]
    [InlineData("[]", null, "must hold a JSON object")]
    [InlineData("{\"weight_map\": []}", null, "'weight_map' must be an object")]
    [InlineData("{\"weight_map\": {}}", null, "lists no tensors")]
    [InlineData("{\"weight_map\": {\"a\": 3}}", "a", "must be a file name string")]
    [InlineData("{\"metadata\": {\"total_size\": -1}, \"weight_map\": {\"a\": \"x.safetensors\"}}", null, "'metadata.total_size' must be a non-negative integer")]
    [InlineData("{\"weight_map\": {\"a\": \"x.safetensors\", \"a\": \"y.safetensors\"}}", null, "not valid JSON")]
    public void Malformed_indexes_are_refused(string json, string? tensor, string fragment)
    {
        File.WriteAllText(folder.File(HfCheckpoint.IndexFileName), json);
        Rejected(tensor, fragment);
    }

    [Fact]
    public void A_malformed_shard_is_reported_with_its_own_path()
    {
        SaveSharded();
        var shard = folder.File("model-00001-of-00002.safetensors");
        File.WriteAllBytes(shard, File.ReadAllBytes(shard)[..^3]);
        var error = Assert.Throws<PeftFormatException>(() => HfCheckpoint.Open(folder.Path));
        Assert.Equal(shard, error.FilePath);
    }

    [Fact]
    public void Folders_without_safetensors_weights_are_refused_and_pickles_never_read()
    {
        Rejected(null, "neither model.safetensors nor model.safetensors.index.json");
        File.WriteAllBytes(folder.File("pytorch_model.bin"), new byte[] { 0x80, 0x02 });
        Rejected(null, "pickle file, which PeftGen never reads");
        File.WriteAllText(folder.File(HfCheckpoint.ConfigFileName), "{\"a\": 1,}");
        Rejected(null, "not valid JSON");
    }
}
