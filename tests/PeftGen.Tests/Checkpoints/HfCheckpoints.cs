using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json.Nodes;
using PeftGen.Checkpoints;
using PeftGen.Formats.HuggingFace;
using static TorchSharp.torch;

namespace PeftGen.Tests.Checkpoints;

/// <summary>
/// Random checkpoints in exactly Hugging Face's layout, and float64 forward passes computed straight from their
/// raw tensors (the oracle the loaded models are checked against).
/// </summary>
public static class HfCheckpoints
{
    /// <summary>
    /// GPT-2 as <c>model.safetensors</c> stores it: no <c>transformer.</c> prefix, Conv1D weights <c>In × Out</c>,
    /// the causal-mask buffers <c>h.N.attn.bias</c>, and no <c>lm_head.weight</c> (tied to <c>wte.weight</c>).
    /// </summary>
    public static Dictionary<string, Tensor> Gpt2(Gpt2Config c, long seed)
    {
        using var g = new Generator((ulong)seed);
        long d = c.Width;
        var t = new Dictionary<string, Tensor>(StringComparer.Ordinal)
        {
            ["wte.weight"] = randn(c.Vocab, d, generator: g).mul(0.5),
            ["wpe.weight"] = randn(c.Positions, d, generator: g).mul(0.2),
        };
        for (var i = 0; i < c.Blocks; i++)
        {
            var h = $"h.{i}";
            Norm(t, $"{h}.ln_1", d, withBias: true, g);
            t[$"{h}.attn.bias"] = ones(c.Positions, c.Positions).tril().reshape(1, 1, c.Positions, c.Positions);
            Conv1D(t, $"{h}.attn.c_attn", d, 3 * d, g);
            Conv1D(t, $"{h}.attn.c_proj", d, d, g);
            Norm(t, $"{h}.ln_2", d, withBias: true, g);
            Conv1D(t, $"{h}.mlp.c_fc", d, 4 * d, g);
            Conv1D(t, $"{h}.mlp.c_proj", 4 * d, d, g);
        }
        Norm(t, "ln_f", d, withBias: true, g);
        return t;
    }

    /// <summary>Llama as <c>LlamaForCausalLM</c> saves it: <c>model.</c> prefix, <c>Out × In</c> weights without bias, an untied <c>lm_head.weight</c>.</summary>
    public static Dictionary<string, Tensor> Llama(LlamaConfig c, long seed)
    {
        using var g = new Generator((ulong)seed);
        long d = c.Width, headDim = c.Width / c.Heads;
        var t = new Dictionary<string, Tensor>(StringComparer.Ordinal) { ["model.embed_tokens.weight"] = randn(c.Vocab, d, generator: g).mul(0.5) };
        for (var i = 0; i < c.Blocks; i++)
        {
            var l = $"model.layers.{i}";
            Norm(t, $"{l}.input_layernorm", d, withBias: false, g);
            t[$"{l}.self_attn.q_proj.weight"] = Weight(c.Heads * headDim, d, g);
            t[$"{l}.self_attn.k_proj.weight"] = Weight(c.KvHeads * headDim, d, g);
            t[$"{l}.self_attn.v_proj.weight"] = Weight(c.KvHeads * headDim, d, g);
            t[$"{l}.self_attn.o_proj.weight"] = Weight(d, c.Heads * headDim, g);
            Norm(t, $"{l}.post_attention_layernorm", d, withBias: false, g);
            t[$"{l}.mlp.gate_proj.weight"] = Weight(c.Intermediate, d, g);
            t[$"{l}.mlp.up_proj.weight"] = Weight(c.Intermediate, d, g);
            t[$"{l}.mlp.down_proj.weight"] = Weight(d, c.Intermediate, g);
        }
        Norm(t, "model.norm", d, withBias: false, g);
        t["lm_head.weight"] = Weight(c.Vocab, d, g);
        return t;
    }

    public static Dictionary<string, Tensor> Converted(Dictionary<string, Tensor> tensors, ScalarType dtype)
        => tensors.ToDictionary(e => e.Key, e => e.Value.is_floating_point() ? e.Value.to(dtype) : e.Value, StringComparer.Ordinal);

    public static void WriteSingle(string folder, IReadOnlyDictionary<string, Tensor> tensors)
    {
        Directory.CreateDirectory(folder);
        TestSafeTensors.WriteFile(Path.Combine(folder, HfCheckpoint.SingleFileName), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        File.WriteAllText(Path.Combine(folder, HfCheckpoint.ConfigFileName), """{"model_type": "tiny"}""");
    }

    /// <summary>Writes <paramref name="shards"/> shard files in key order and <c>model.safetensors.index.json</c>.</summary>
    public static void WriteSharded(string folder, IReadOnlyDictionary<string, Tensor> tensors, int shards)
    {
        Directory.CreateDirectory(folder);
        var names = tensors.Keys.ToList();
        var perShard = (names.Count + shards - 1) / shards;
        var weightMap = new JsonObject();
        long total = 0;
        for (var s = 0; s < shards; s++)
        {
            var file = HfCheckpointWriter.ShardName(s + 1, shards);
            var part = names.Skip(s * perShard).Take(perShard).ToDictionary(n => n, n => tensors[n], StringComparer.Ordinal);
            TestSafeTensors.WriteFile(Path.Combine(folder, file), part, new Dictionary<string, string> { ["format"] = "pt" });
            foreach (var (name, tensor) in part)
            {
                weightMap[name] = file;
                total += tensor.NumberOfElements * tensor.ElementSize;
            }
        }
        var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = total }, ["weight_map"] = weightMap };
        File.WriteAllText(Path.Combine(folder, HfCheckpoint.IndexFileName), index.ToJsonString());
        File.WriteAllText(Path.Combine(folder, HfCheckpoint.ConfigFileName), """{"model_type": "tiny"}""");
    }

    /// <summary>GPT-2's forward in float64 from the stored tensors: Conv1D is <c>x·W + b</c>, the head is <c>x·wteᵀ</c>.</summary>
    public static Tensor Gpt2Reference(IReadOnlyDictionary<string, Tensor> raw, Tensor ids, Gpt2Config c)
    {
        using var scope = NewDisposeScope();
        Tensor W(string key) => raw[key].to(ScalarType.Float64);
        Tensor Conv1DForward(Tensor x, string p) => x.matmul(W(p + ".weight")).add(W(p + ".bias"));
        Tensor LayerNormForward(Tensor x, string p)
        {
            var centred = x.sub(x.mean(new long[] { -1 }, keepdim: true));
            var variance = centred.pow(2).mean(new long[] { -1 }, keepdim: true);
            return centred.div(variance.add(1e-5).sqrt()).mul(W(p + ".weight")).add(W(p + ".bias"));
        }

        var length = ids.shape[1];
        var x = W("wte.weight").index_select(0, ids.flatten()).reshape(ids.shape[0], length, c.Width).add(W("wpe.weight").narrow(0, 0, length));
        for (var i = 0; i < c.Blocks; i++)
        {
            var h = $"h.{i}";
            var qkv = Conv1DForward(LayerNormForward(x, $"{h}.ln_1"), $"{h}.attn.c_attn").chunk(3, -1);
            var attended = TinyMath.CausalAttention(TinyMath.Heads(qkv[0], c.Heads), TinyMath.Heads(qkv[1], c.Heads), TinyMath.Heads(qkv[2], c.Heads));
            x = x.add(Conv1DForward(TinyMath.MergeHeads(attended), $"{h}.attn.c_proj"));
            var hidden = Conv1DForward(LayerNormForward(x, $"{h}.ln_2"), $"{h}.mlp.c_fc");
            x = x.add(Conv1DForward(nn.functional.gelu(hidden), $"{h}.mlp.c_proj"));
        }
        return LayerNormForward(x, "ln_f").matmul(W("wte.weight").t()).MoveToOuterDisposeScope();
    }

    /// <summary>Llama's forward in float64 from the stored tensors (<c>Out × In</c> weights: <c>x·Wᵀ</c>).</summary>
    public static Tensor LlamaReference(IReadOnlyDictionary<string, Tensor> raw, Tensor ids, LlamaConfig c)
    {
        using var scope = NewDisposeScope();
        Tensor W(string key) => raw[key].to(ScalarType.Float64);
        Tensor Linear(Tensor x, string key) => x.matmul(W(key).t());
        Tensor RmsNormForward(Tensor x, string p) => x.mul(x.pow(2).mean(new long[] { -1 }, keepdim: true).add(1e-6).rsqrt()).mul(W(p + ".weight"));

        var repeat = c.Heads / c.KvHeads;
        var x = W("model.embed_tokens.weight").index_select(0, ids.flatten()).reshape(ids.shape[0], ids.shape[1], c.Width);
        for (var i = 0; i < c.Blocks; i++)
        {
            var l = $"model.layers.{i}";
            var h = RmsNormForward(x, $"{l}.input_layernorm");
            var q = TinyMath.Rope(TinyMath.Heads(Linear(h, $"{l}.self_attn.q_proj.weight"), c.Heads));
            var k = TinyMath.Rope(TinyMath.Heads(Linear(h, $"{l}.self_attn.k_proj.weight"), c.KvHeads)).repeat_interleave(repeat, dim: 1);
            var v = TinyMath.Heads(Linear(h, $"{l}.self_attn.v_proj.weight"), c.KvHeads).repeat_interleave(repeat, dim: 1);
            x = x.add(Linear(TinyMath.MergeHeads(TinyMath.CausalAttention(q, k, v)), $"{l}.self_attn.o_proj.weight"));
            h = RmsNormForward(x, $"{l}.post_attention_layernorm");
            var gated = nn.functional.silu(Linear(h, $"{l}.mlp.gate_proj.weight")).mul(Linear(h, $"{l}.mlp.up_proj.weight"));
            x = x.add(Linear(gated, $"{l}.mlp.down_proj.weight"));
        }
        return Linear(RmsNormForward(x, "model.norm"), "lm_head.weight").MoveToOuterDisposeScope();
    }

    private static Tensor Weight(long rows, long columns, Generator g) => randn(rows, columns, generator: g).mul(1.0 / Math.Sqrt(columns));

    private static void Conv1D(Dictionary<string, Tensor> t, string prefix, long inFeatures, long outFeatures, Generator g)
    {
        t[prefix + ".weight"] = Weight(outFeatures, inFeatures, g).t().contiguous();
        t[prefix + ".bias"] = randn(outFeatures, generator: g).mul(0.1);
    }

    private static void Norm(Dictionary<string, Tensor> t, string prefix, long dim, bool withBias, Generator g)
    {
        t[prefix + ".weight"] = randn(dim, generator: g).mul(0.1).add(1.0);
        if (withBias) t[prefix + ".bias"] = randn(dim, generator: g).mul(0.1);
    }
}
