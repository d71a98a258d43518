using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using PeftGen.Formats.HuggingFace;
using PeftGen.Formats.SafeTensors;
using static TorchSharp.torch;
using Llama2 = PeftGen.Architectures.Llama2_7B;

namespace PeftGen.Benchmarks.BigModels;

/// <summary>A Llama checkpoint's shape: what transformers' <c>LlamaConfig</c> says about the tensors it stores.</summary>
public sealed record LlamaCheckpointShape(
    string Name, int Vocab, int Width, int Mlp, int Layers, int Heads, int KvHeads, bool TiedHead, double RopeTheta, int Context)
{
    public static readonly LlamaCheckpointShape Llama2_7B = new("llama-2-7b", Llama2.Vocab, Llama2.Width, Llama2.Mlp,
        Llama2.Layers, Llama2.Heads, Llama2.KvHeads, TiedHead: false, Llama2.RopeTheta, Llama2.Context);

    public static readonly LlamaCheckpointShape Llama2_7B2Layers = Llama2_7B with { Name = "llama-2-7b-2-layers", Layers = Llama2_7B2LayerShape.Layers };

    public static readonly LlamaCheckpointShape Llama2_7B4Layers = Llama2_7B with { Name = "llama-2-7b-4-layers", Layers = Llama2_7B4LayerShape.Layers };

    public static readonly LlamaCheckpointShape Llama32_1B = new("llama-3.2-1b", Llama32_1BShape.Vocab, Llama32_1BShape.Width, Llama32_1BShape.Mlp,
        Llama32_1BShape.Layers, Llama32_1BShape.Heads, Llama32_1BShape.KvHeads, TiedHead: true, Llama32_1BShape.RopeTheta, Llama32_1BShape.Context);

    /// <summary>Every stored tensor in transformers' module order; a tied head is not stored.</summary>
    public IEnumerable<(string Key, long[] Shape)> Tensors()
    {
        long kv = (long)KvHeads * Width / Heads;
        yield return ("model.embed_tokens.weight", [Vocab, Width]);
        for (int i = 0; i < Layers; i++)
        {
            string layer = $"model.layers.{i}.";
            yield return (layer + "self_attn.q_proj.weight", [Width, Width]);
            yield return (layer + "self_attn.k_proj.weight", [kv, Width]);
            yield return (layer + "self_attn.v_proj.weight", [kv, Width]);
            yield return (layer + "self_attn.o_proj.weight", [Width, Width]);
            yield return (layer + "mlp.gate_proj.weight", [Mlp, Width]);
            yield return (layer + "mlp.up_proj.weight", [Mlp, Width]);
            yield return (layer + "mlp.down_proj.weight", [Width, Mlp]);
            yield return (layer + "input_layernorm.weight", [Width]);
            yield return (layer + "post_attention_layernorm.weight", [Width]);
        }
        yield return ("model.norm.weight", [Width]);
        if (!TiedHead) yield return ("lm_head.weight", [Vocab, Width]);
    }

    /// <summary>transformers' config.json for the shape (no rope_scaling: the benchmark's models do not scale rotary positions).</summary>
    public JsonObject Config() => new()
    {
        ["architectures"] = new JsonArray("LlamaForCausalLM"),
        ["model_type"] = "llama",
        ["hidden_act"] = "silu",
        ["hidden_size"] = Width,
        ["intermediate_size"] = Mlp,
        ["max_position_embeddings"] = Context,
        ["num_attention_heads"] = Heads,
        ["num_hidden_layers"] = Layers,
        ["num_key_value_heads"] = KvHeads,
        ["rms_norm_eps"] = 1e-5,
        ["rope_theta"] = RopeTheta,
        ["tie_word_embeddings"] = TiedHead,
        ["torch_dtype"] = "bfloat16",
        ["vocab_size"] = Vocab,
    };
}

/// <summary>What writing (or finding) a synthetic checkpoint took.</summary>
public sealed record CheckpointWrite(string Shape, string Folder, int Shards, long Bytes, long LargestTensorBytes, double Seconds, bool Reused);

/// <summary>
/// Writes a synthetic bfloat16 checkpoint in Hugging Face's sharded Llama layout (<c>model-0000k-of-0000n.safetensors</c>,
/// <c>model.safetensors.index.json</c>, <c>config.json</c>): weights N(0, 0.02), norms 1. Shard by shard, so memory
/// holds one shard's tensors at a time, never the model.
/// </summary>
public static class SyntheticCheckpoint
{
    /// <summary>Shards of at most 2 GB (transformers' default is 5 GB; smaller shards keep this writer's memory down).</summary>
    public const long MaxShardBytes = 2_000_000_000;

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>
    /// Writes the checkpoint of <paramref name="shape"/> into <paramref name="folder"/>, or reuses one written there
    /// before (its index is written last, so a folder with an index holds a whole checkpoint).
    /// </summary>
    public static CheckpointWrite Ensure(LlamaCheckpointShape shape, string folder)
    {
        var tensors = shape.Tensors().ToList();
        long Bytes((string Key, long[] Shape) t) => t.Shape.Aggregate(2L, (a, b) => a * b);
        var shards = Plan(tensors, Bytes);
        long total = tensors.Sum(Bytes), largest = tensors.Max(Bytes);
        string index = Path.Combine(folder, HfCheckpoint.IndexFileName);
        if (File.Exists(index)) return new CheckpointWrite(shape.Name, folder, shards.Count, total, largest, 0, Reused: true);

        var clock = Stopwatch.StartNew();
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, HfCheckpoint.ConfigFileName), shape.Config().ToJsonString(Indented) + "\n");
        manual_seed(16);
        var weightMap = new JsonObject();
        for (int s = 0; s < shards.Count; s++)
        {
            string name = HfCheckpointWriter.ShardName(s + 1, shards.Count);
            using (var scope = NewDisposeScope())
            {
                var shard = shards[s].ToDictionary(t => t.Key, t => t.Shape.Length == 1
                    ? ones(t.Shape, ScalarType.BFloat16)
                    : empty(t.Shape, ScalarType.BFloat16).normal_(0, 0.02));
                SafeTensorsFile.Save(Path.Combine(folder, name), shard, new Dictionary<string, string> { ["format"] = "pt" });
            }
            foreach (var (key, _) in shards[s]) weightMap[key] = name;
        }
        var indexJson = new JsonObject
        {
            ["metadata"] = new JsonObject { ["total_size"] = total },
            ["weight_map"] = weightMap,
        };
        File.WriteAllText(index, indexJson.ToJsonString(Indented) + "\n");
        return new CheckpointWrite(shape.Name, folder, shards.Count, total, largest, clock.Elapsed.TotalSeconds, Reused: false);
    }

    /// <summary>Consecutive tensors into shards of at most <see cref="MaxShardBytes"/>, as transformers fills them.</summary>
    private static List<List<(string Key, long[] Shape)>> Plan(List<(string Key, long[] Shape)> tensors, Func<(string Key, long[] Shape), long> bytes)
    {
        var shards = new List<List<(string Key, long[] Shape)>>();
        long size = 0;
        foreach (var tensor in tensors)
        {
            if (shards.Count == 0 || (shards[^1].Count > 0 && size + bytes(tensor) > MaxShardBytes))
            {
                shards.Add([]);
                size = 0;
            }
            shards[^1].Add(tensor);
            size += bytes(tensor);
        }
        return shards;
    }
}
