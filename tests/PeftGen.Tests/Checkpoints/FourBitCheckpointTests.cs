using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json.Nodes;
using PeftGen.Checkpoints;
using PeftGen.Tests.Quantization;
using PeftGen.Tests.Support;
using PeftGen.Formats;
using PeftGen.Formats.HuggingFace;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Checkpoints;

/// <summary>
/// Whole models with 4-bit projections saved and loaded in transformers + bitsandbytes' layout: the keys, dtypes,
/// shapes and <c>quantization_config</c> transformers writes, and a load that takes the codes as stored.
/// </summary>
public sealed class FourBitCheckpointTests
{
    private static readonly LlamaConfig Llama = new();
    private static readonly Gpt2Config Gpt2 = new();

    [Fact]
    public void Llama_4bit_model_saves_as_transformers_does_and_loads_back_bit_identical()
    {
        using var temp = new TempFolder();
        HfCheckpoints.WriteSingle(temp.Sub("original"), HfCheckpoints.Llama(Llama, seed: 61));
        using var model = new TinyLlama(Llama);
        PretrainedLoader.Load(model, temp.Sub("original"));
        // lm_head stays float, as transformers keeps it; so does one projection, to show in llm_int8_skip_modules.
        var floatPaths = new[] { "lm_head", "model.layers.1.mlp.down_proj" };
        foreach (var (path, projection) in model.ProjectionLayers.Where(p => !floatPaths.Contains(p.Path)))
            projection.QuantizeBase(new Quant4BitOptions(QuantType.Nf4, BlockSize: 64, DoubleQuant: true));
        var ids = Ids.Random(Llama.Vocab, 2, 8, seed: 62);
        using var logits = model.forward(ids);
        JsonObject config;
        using (var original = HfCheckpoint.Open(temp.Sub("original"))) config = original.Config!;

        PretrainedSaver.Save(model, temp.Sub("saved"), new PretrainedSaveOptions { Config = config });

        var header = TestSafeTensors.ReadHeader(Path.Combine(temp.Sub("saved"), HfCheckpoint.SingleFileName), out _);
        var expectedKeys = new List<string> { "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight", "model.layers.1.mlp.down_proj.weight" };
        foreach (var (path, projection) in model.ProjectionLayers.Where(p => !floatPaths.Contains(p.Path)))
        {
            var key = path + ".weight";
            long n = projection.OutFeatures * projection.InFeatures, blocks = (n + 63) / 64;
            AssertEntry(header, key, "U8", (n + 1) / 2, 1);
            AssertEntry(header, key + ".absmax", "U8", blocks);
            AssertEntry(header, key + ".quant_map", "F32", 16);
            AssertEntry(header, key + ".nested_absmax", "F32", (blocks + 255) / 256);
            AssertEntry(header, key + ".nested_quant_map", "F32", 256);
            AssertEntry(header, key + ".quant_state.bitsandbytes__nf4", "U8", header[key + ".quant_state.bitsandbytes__nf4"].Shape[0]);
            expectedKeys.AddRange(new[] { "", ".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map", ".quant_state.bitsandbytes__nf4" }.Select(s => key + s));
        }
        for (var i = 0; i < Llama.Blocks; i++)
            expectedKeys.AddRange(new[] { "input_layernorm", "post_attention_layernorm" }.Select(n => $"model.layers.{i}.{n}.weight"));
        Assert.Equal(expectedKeys.Order(StringComparer.Ordinal), header.Keys.Order(StringComparer.Ordinal));
        AssertEntry(header, "lm_head.weight", "F32", Llama.Vocab, Llama.Width);

        // config.json as transformers writes BitsAndBytesConfig.to_dict() (json.dumps, indent 2, sorted keys).
        var configText = File.ReadAllText(Path.Combine(temp.Sub("saved"), HfCheckpoint.ConfigFileName));
        Assert.Contains(
            """
              "quantization_config": {
                "_load_in_4bit": true,
                "_load_in_8bit": false,
                "bnb_4bit_compute_dtype": "float32",
                "bnb_4bit_quant_storage": "uint8",
                "bnb_4bit_quant_type": "nf4",
                "bnb_4bit_use_double_quant": true,
                "llm_int8_enable_fp32_cpu_offload": false,
                "llm_int8_has_fp16_weight": false,
                "llm_int8_skip_modules": [
                  "lm_head",
                  "model.layers.1.mlp.down_proj"
                ],
                "llm_int8_threshold": 6.0,
                "load_in_4bit": true,
                "load_in_8bit": false,
                "quant_method": "bitsandbytes"
              }
            """.ReplaceLineEndings("\n"), configText);
        Assert.Contains("\"model_type\": \"tiny\"", configText);
        Assert.False(config.ContainsKey("quantization_config"), "the caller's config object is not changed");

        using var reloaded = new TinyLlama(Llama);
        var result = PretrainedLoader.Load(reloaded, temp.Sub("saved"));

        Assert.Equal(new[] { "F32", "U8" }, result.StoredDTypes);
        foreach (var (path, projection) in model.ProjectionLayers)
        {
            var back = reloaded.Layer<LoraLinear>(path);
            Assert.Equal(projection.IsQuantized, back.IsQuantized);
            if (!projection.IsQuantized)
            {
                Assert.Equal(TensorHash.Of(projection.Weight), TensorHash.Of(back.Weight));
                continue;
            }
            Assert.Equal(QuantTestData.Hash(projection.QuantizedWeight!), QuantTestData.Hash(back.QuantizedWeight!));
            Assert.Equal(projection.QuantizedWeight!.Options with { ComputeDType = ComputeDType.Float32 }, back.QuantizedWeight!.Options);
        }
        using var reloadedLogits = reloaded.forward(ids);
        Assert.Equal(QuantTestData.Floats(logits), QuantTestData.Floats(reloadedLogits));
    }

    [Fact]
    public void Gpt2_conv1d_projections_are_quantized_out_by_in_and_load_back_bit_identical()
    {
        using var temp = new TempFolder();
        var raw = HfCheckpoints.Gpt2(Gpt2, seed: 63);
        HfCheckpoints.WriteSingle(temp.Sub("original"), raw);
        using var model = new TinyGpt2(Gpt2);
        var loaded = PretrainedLoader.Load(model, temp.Sub("original"), PretrainedLoadOptions.Gpt2);
        var fp4 = new Quant4BitOptions(QuantType.Fp4, BlockSize: 32, DoubleQuant: false, ComputeDType: ComputeDType.Float32);
        foreach (var (_, projection) in model.ProjectionLayers) projection.QuantizeBase(fp4);
        var ids = Ids.Random(Gpt2.Vocab, 2, 8, seed: 64);
        using var logits = model.forward(ids);

        PretrainedSaver.Save(model, temp.Sub("saved"), new PretrainedSaveOptions
        {
            CheckpointKeys = loaded.CheckpointKeys,
            TiedWeights = PretrainedLoadOptions.Gpt2.TiedWeights,
            Config = new JsonObject { ["model_type"] = "gpt2" },
        });

        var saved = TestSafeTensors.ReadAll(Path.Combine(temp.Sub("saved"), HfCheckpoint.SingleFileName));
        Assert.DoesNotContain("lm_head.weight", saved.Keys);
        long d = Gpt2.Width;
        // transformers quantizes a Conv1D weight transposed, Out × In: the reference quantizes the stored In × Out weight's transpose.
        var stored = raw["h.0.attn.c_attn.weight"];
        var outByIn = QuantTestData.Floats(stored.t().contiguous());
        var reference = BitsAndBytesReference.Quantize(outByIn, 32, fp4: true, doubleQuant: false, _ => 0f, CodeBooks.DynamicMap);
        Assert.Equal(new long[] { 3 * d * d / 2, 1 }, saved["h.0.attn.c_attn.weight"].shape);
        Assert.Equal(reference.Packed, QuantTestData.Bytes(saved["h.0.attn.c_attn.weight"]));
        QuantTestData.AssertBitEqual(reference.Absmax, QuantTestData.Floats(saved["h.0.attn.c_attn.weight.absmax"]));
        Assert.Equal(
            $"{{\"quant_type\": \"fp4\", \"blocksize\": 32, \"dtype\": \"float32\", \"shape\": [{3 * d}, {d}]}}",
            Encoding.UTF8.GetString(QuantTestData.Bytes(saved["h.0.attn.c_attn.weight.quant_state.bitsandbytes__fp4"])));
        Assert.Equal(TensorHash.Of(raw["h.0.attn.c_attn.bias"]), TensorHash.Of(saved["h.0.attn.c_attn.bias"]));
        Assert.False(saved.ContainsKey("h.0.attn.c_attn.weight.nested_absmax"));
        var configText = File.ReadAllText(Path.Combine(temp.Sub("saved"), HfCheckpoint.ConfigFileName));
        // The head is the tied embedding, so transformers must keep lm_head unquantized: an explicit list replaces its default.
        Assert.Contains("\"llm_int8_skip_modules\": [\n      \"lm_head\"\n    ]", configText);
        Assert.Contains("\"bnb_4bit_quant_type\": \"fp4\"", configText);
        Assert.Contains("\"bnb_4bit_use_double_quant\": false", configText);

        using var reloaded = new TinyGpt2(Gpt2);
        PretrainedLoader.Load(reloaded, temp.Sub("saved"), PretrainedLoadOptions.Gpt2);
        foreach (var (path, projection) in model.ProjectionLayers)
            Assert.Equal(QuantTestData.Hash(projection.QuantizedWeight!), QuantTestData.Hash(reloaded.Layer<LoraLinear>(path).QuantizedWeight!));
        using var reloadedLogits = reloaded.forward(ids);
        Assert.Equal(QuantTestData.Floats(logits), QuantTestData.Floats(reloadedLogits));
    }

    [Fact]
    public void A_4bit_folder_that_does_not_fit_is_refused_whole_and_the_model_is_unchanged()
    {
        using var temp = new TempFolder();
        using (var model = new TinyLlama(Llama))
        {
            foreach (var (_, projection) in model.ProjectionLayers) projection.QuantizeBase(new Quant4BitOptions());
            PretrainedSaver.Save(model, temp.Path, new PretrainedSaveOptions { Config = new JsonObject { ["model_type"] = "llama" } });
        }
        var file = Path.Combine(temp.Path, HfCheckpoint.SingleFileName);
        var tensors = TestSafeTensors.ReadAll(file);
        tensors.Remove("model.layers.0.mlp.up_proj.weight.nested_absmax");
        tensors["model.layers.1.self_attn.k_proj.weight.absmax"] = zeros(3, dtype: ScalarType.Byte);
        TestSafeTensors.WriteFile(file, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var configFile = Path.Combine(temp.Path, HfCheckpoint.ConfigFileName);
        var config = JsonNode.Parse(File.ReadAllText(configFile))!.AsObject();
        config["quantization_config"]!["bnb_4bit_quant_type"] = "fp4";
        File.WriteAllText(configFile, config.ToJsonString());

        using var target = new TinyLlama(Llama);
        var before = ModelHash.Of(target);
        var error = Assert.Throws<CheckpointMismatchException>(() => PretrainedLoader.Load(target, temp.Path));

        Assert.Contains(error.Mismatches, m => m.Kind == CheckpointMismatchKind.QuantState && m.Key == "model.layers.0.mlp.up_proj.weight" && m.Detail.Contains("nested_absmax"));
        Assert.Contains(error.Mismatches, m => m.Kind == CheckpointMismatchKind.QuantState && m.Key == "model.layers.1.self_attn.k_proj.weight" && m.Detail.Contains(".absmax"));
        Assert.Contains(error.Mismatches, m => m.Kind == CheckpointMismatchKind.Config && m.Key == "lm_head.weight" && m.Detail.Contains("bnb_4bit_quant_type"));
        Assert.DoesNotContain(error.Mismatches, m => m.Kind == CheckpointMismatchKind.Unexpected);
        Assert.Equal(before, ModelHash.Of(target));
        Assert.All(target.ProjectionLayers, p => Assert.False(p.Projection.IsQuantized));
    }

    [Fact]
    public void Saving_4bit_weights_needs_one_describable_setting_and_a_config_and_writes_nothing_otherwise()
    {
        using var temp = new TempFolder();
        using var model = new TinyLlama(Llama);
        model.Layer<LoraLinear>("model.layers.0.mlp.up_proj").QuantizeBase(new Quant4BitOptions());

        var noConfig = Assert.Throws<ArgumentException>(() => PretrainedSaver.Save(model, temp.Path));
        Assert.Contains("quantization_config", noConfig.Message);

        model.Layer<LoraLinear>("model.layers.1.mlp.up_proj").QuantizeBase(new Quant4BitOptions(QuantType.Fp4));
        var mixed = Assert.Throws<ArgumentException>(() => PretrainedSaver.Save(model, temp.Path, new PretrainedSaveOptions { Config = new JsonObject() }));
        Assert.Contains("2 different settings", mixed.Message);

        using var other = new TinyLlama(Llama);
        var up = other.Layer<LoraLinear>("model.layers.0.mlp.up_proj");
        up.QuantizeBase(new Quant4BitOptions());
        up.AddAdapter("default", new LoraConfig(2, 4, 0, false));
        var unmerged = Assert.Throws<NotSupportedException>(() => PretrainedSaver.Save(other, temp.Path,
            new PretrainedSaveOptions { Config = new JsonObject(), MergeAdapters = true }));
        Assert.Contains("model.layers.0.mlp.up_proj", unmerged.Message);
        Assert.Empty(Directory.GetFiles(temp.Path));
    }

    [Fact]
    public void A_float_save_drops_a_quantization_config_it_was_given()
    {
        using var temp = new TempFolder();
        using var model = new TinyLlama(Llama);
        var config = new JsonObject { ["model_type"] = "llama", ["quantization_config"] = new JsonObject { ["quant_method"] = "bitsandbytes" } };

        PretrainedSaver.Save(model, temp.Path, new PretrainedSaveOptions { Config = config });

        var written = JsonNode.Parse(File.ReadAllText(Path.Combine(temp.Path, HfCheckpoint.ConfigFileName)))!.AsObject();
        Assert.False(written.ContainsKey("quantization_config"));
        Assert.Equal("llama", (string?)written["model_type"]);
        Assert.True(config.ContainsKey("quantization_config"));
    }

    private static void AssertEntry(Dictionary<string, TestSafeTensors.Entry> header, string key, string dtype, params long[] shape)
    {
        Assert.True(header.TryGetValue(key, out var entry), $"missing {key}");
        Assert.Equal(dtype, entry!.DType);
        Assert.Equal(shape, entry.Shape);
    }
}
