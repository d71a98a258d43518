using System.Diagnostics;
using System.Globalization;
using System.Text;
using PeftGen.Architectures;
using PeftGen.Inference;
using PeftGen.Precision;
using TinyGpt.Models;
using static TorchSharp.torch;

namespace PeftGen.Benchmarks;

/// <summary>
/// The report's inference row (the tiny base model's forward over 8 × 128 tokens, float32 against bfloat16) taken
/// apart: the same forward run op by op, each kind of op timed on its own, beside the whole forward and the matmul
/// ceiling, all in one measurement. Several measurements in one process show whether a period in which bfloat16's
/// forward is slow is one in which its products are slow (the host) or one in which what surrounds them is.
/// </summary>
public static class ForwardProfile
{
    /// <summary>The kinds of op, in the order the forward meets them.</summary>
    public static readonly string[] PartNames =
        ["embeddings", "layer norms", "projections (cast + product)", "attention (scores, softmax, values)", "GELU", "residual additions", "head: weight cast", "head: product"];

    /// <param name="Name">A kind of op, or one of the rows measured apart.</param>
    /// <param name="Float32Ms">Median over rounds of its milliseconds per forward in float32.</param>
    /// <param name="BFloat16Ms">The same in bfloat16.</param>
    public sealed record Part(string Name, double Float32Ms, double BFloat16Ms)
    {
        /// <summary>bfloat16 ÷ float32.</summary>
        public double Ratio => BFloat16Ms / Float32Ms;
    }

    /// <param name="Index">Which measurement of the run (from 1).</param>
    /// <param name="StartedSeconds">Seconds since the run began.</param>
    /// <param name="Parts">The forward's kinds of op (<see cref="PartNames"/>).</param>
    /// <param name="PartsTotal">Their sum.</param>
    /// <param name="Whole">The forward timed whole, as the report's row times it (medians, and the paired ratio's median in <see cref="WholeRatio"/>).</param>
    /// <param name="WholeRatio">Median over rounds of that round's bfloat16 ÷ float32 whole forward.</param>
    /// <param name="ProductsAlone">The forward's 25 products (four projections with their biases, at their shapes, in each of six layers, and the head) on random operands already in the dtype: no casts, no allocations but the outputs, each freed at once.</param>
    /// <param name="Ceiling">A 2048 × 2048 matmul: GFLOP/s in each dtype (not ms).</param>
    public sealed record Measurement(int Index, double StartedSeconds, IReadOnlyList<Part> Parts, Part PartsTotal, Part Whole, double WholeRatio,
        Part ProductsAlone, Part Ceiling);

    /// <summary><paramref name="measurements"/> measurements of <paramref name="rounds"/> rounds each (after two warm-up rounds), float32 and bfloat16 in turn within each round.</summary>
    public static IReadOnlyList<Measurement> Run(int measurements, int rounds)
    {
        if (measurements < 1) throw new ArgumentOutOfRangeException(nameof(measurements), measurements, "At least one measurement.");
        if (rounds < 1) throw new ArgumentOutOfRangeException(nameof(rounds), rounds, "At least one round.");
        using var noGrad = no_grad();
        manual_seed(11);
        using var ids = randint(TinyConfig.Vocab, [TrainingCases.Batch, TinyConfig.Context], dtype: ScalarType.Int64);
        using var model = new TinyGptFull();
        model.eval();
        var products = ProductShapes(model);
        try
        {
            return Measure(model, ids, products, measurements, rounds);
        }
        finally
        {
            foreach (var product in products) product.Dispose();
        }
    }

    private static List<Measurement> Measure(Gpt2LMHeadModel model, Tensor ids, Product[] products, int measurements, int rounds)
    {
        var clock = Stopwatch.StartNew();
        var results = new List<Measurement>();
        ScalarType[] dtypes = [ScalarType.Float32, ScalarType.BFloat16];
        for (int m = 1; m <= measurements; m++)
        {
            double started = clock.Elapsed.TotalSeconds;
            var ceiling = dtypes.Select(d => MicroBenchmarks.MatmulFlopsPerSecond(2048, 1, 5, d) / 1e9).ToArray();
            var parts = dtypes.Select(_ => PartNames.Select(_ => new List<double>()).ToArray()).ToArray();
            var whole = dtypes.Select(_ => new List<double>()).ToArray();
            var alone = dtypes.Select(_ => new List<double>()).ToArray();
            for (int round = 0; round < 2 + rounds; round++)
            {
                for (int k = 0; k < dtypes.Length; k++)
                {
                    int d = (round + k) % dtypes.Length; // the order alternates between rounds
                    var times = new double[PartNames.Length];
                    double wholeSeconds = Time(() => Logits(model, ids, dtypes[d]));
                    OpByOp(model, ids, dtypes[d], times);
                    double aloneSeconds = products.Sum(p => p.Time(dtypes[d]));
                    if (round < 2) continue;
                    whole[d].Add(wholeSeconds);
                    alone[d].Add(aloneSeconds);
                    for (int p = 0; p < times.Length; p++) parts[d][p].Add(times[p]);
                }
            }
            Part Row(string name, List<double> f32, List<double> bf16) => new(name, Stats.Median(f32) * 1000, Stats.Median(bf16) * 1000);
            var rows = PartNames.Select((name, p) => Row(name, parts[0][p], parts[1][p])).ToList();
            results.Add(new Measurement(m, started, rows,
                new Part("sum of the parts", rows.Sum(r => r.Float32Ms), rows.Sum(r => r.BFloat16Ms)),
                Row("whole forward", whole[0], whole[1]),
                Stats.Median(whole[1].Zip(whole[0], (b, f) => b / f).ToList()),
                Row("products alone", alone[0], alone[1]),
                new Part("matmul ceiling (GFLOP/s)", ceiling[0], ceiling[1])));
        }
        return results;
    }

    /// <summary>The measurements as one markdown table per measurement.</summary>
    public static string Markdown(IReadOnlyList<Measurement> measurements)
    {
        var c = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        foreach (var m in measurements)
        {
            text.AppendLine(c, $"### Measurement {m.Index} (at {m.StartedSeconds:F0} s)").AppendLine();
            text.AppendLine("| part | float32 (ms) | bfloat16 (ms) | bfloat16 ÷ float32 |").AppendLine("|---|---:|---:|---:|");
            foreach (var p in m.Parts.Append(m.PartsTotal).Append(m.Whole).Append(m.ProductsAlone))
                text.AppendLine(c, $"| {p.Name} | {p.Float32Ms:F1} | {p.BFloat16Ms:F1} | {(p.Float32Ms >= 0.05 ? p.Ratio.ToString("F3", c) : "–")} |"); // float32 casts nothing
            text.AppendLine(c, $"| whole forward, paired ratio's median | | | {m.WholeRatio:F3} |");
            text.AppendLine(c, $"| {m.Ceiling.Name} | {m.Ceiling.Float32Ms:F1} | {m.Ceiling.BFloat16Ms:F1} | {1 / m.Ceiling.Ratio:F3} (time) |");
            text.AppendLine();
        }
        return text.ToString();
    }

    // The report's row (MicroBenchmarks.BaseLogits), its logits freed at once.
    private static void Logits(Gpt2LMHeadModel model, Tensor ids, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        MicroBenchmarks.BaseLogits(model, ids, dtype);
    }

    // Gpt2Model.forward and Gpt2Block.forward op by op (no soft prompt, no KV cache), each op's seconds added to its kind.
    private static void OpByOp(Gpt2LMHeadModel model, Tensor ids, ScalarType dtype, double[] times)
    {
        using var precision = ComputePrecision.Use(dtype);
        using var scope = NewDisposeScope();
        var trunk = model.transformer;
        Tensor x = null!;
        times[0] += Time(() => x = trunk.wte.forward(ids) + trunk.wpe.forward(KeyValueCache.PositionIds(ids.shape[1], ids.device)));
        foreach (var block in trunk.h)
        {
            using var blockScope = NewDisposeScope();
            Tensor a = null!, qkv = null!, y = null!, o = null!, h = null!, g = null!;
            times[1] += Time(() => a = block.ln_1.forward(x));
            times[2] += Time(() => qkv = block.attn.c_attn.forward(a));
            times[3] += Time(() =>
            {
                long batch = a.shape[0], seq = a.shape[1], width = a.shape[2], heads = TinyConfig.Heads;
                var split = qkv.split(width, dim: 2);
                var q = split[0].view(batch, seq, heads, width / heads).transpose(1, 2);
                var k = split[1].view(batch, seq, heads, width / heads).transpose(1, 2);
                var v = split[2].view(batch, seq, heads, width / heads).transpose(1, 2);
                y = CausalAttention.Attend(q, k, v).transpose(1, 2).contiguous().view(batch, seq, width);
            });
            times[2] += Time(() => o = block.attn.c_proj.forward(y));
            times[5] += Time(() => x = x + o);
            times[1] += Time(() => a = block.ln_2.forward(x));
            times[2] += Time(() => h = block.mlp.c_fc.forward(a));
            times[4] += Time(() => g = GeluTanh.Apply(h));
            times[2] += Time(() => o = block.mlp.c_proj.forward(g));
            times[5] += Time(() => x = (x + o).MoveToOuterDisposeScope());
        }
        Tensor hidden = null!, head = null!;
        times[1] += Time(() => hidden = ComputePrecision.Cast(trunk.ln_f.forward(x)));
        times[6] += Time(() => head = ComputePrecision.Cast(model.HeadWeight));
        times[7] += Time(() => hidden.matmul(head.t()));
    }

    private static double Time(Action action)
    {
        var clock = Stopwatch.StartNew();
        action();
        return clock.Elapsed.TotalSeconds;
    }

    // One product of the forward at its shape, repeated as often as the forward makes it.
    private sealed class Product(long rows, long inFeatures, long outFeatures, int count, bool bias) : IDisposable
    {
        private readonly Dictionary<ScalarType, (Tensor Input, Tensor Weight, Tensor? Bias)> operands = [];

        public double Time(ScalarType dtype)
        {
            if (!operands.TryGetValue(dtype, out var o))
            {
                o = (randn([rows, inFeatures], dtype: dtype).DetachFromDisposeScope(), randn([outFeatures, inFeatures], dtype: dtype).DetachFromDisposeScope(),
                    bias ? randn([outFeatures], dtype: dtype).DetachFromDisposeScope() : null);
                operands[dtype] = o;
            }
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < count; i++) nn.functional.linear(o.Input, o.Weight, o.Bias).Dispose();
            return clock.Elapsed.TotalSeconds;
        }

        public void Dispose()
        {
            foreach (var (input, weight, bias) in operands.Values)
            {
                input.Dispose();
                weight.Dispose();
                bias?.Dispose();
            }
            operands.Clear();
        }
    }

    private static Product[] ProductShapes(Gpt2LMHeadModel model)
    {
        long rows = (long)TrainingCases.Batch * TinyConfig.Context, width = TinyConfig.Width;
        int layers = model.transformer.h.Count;
        // GPT-2's projections have biases; its tied head has none.
        return [new(rows, width, 3 * width, layers, true), new(rows, width, width, layers, true), new(rows, width, 4 * width, layers, true),
            new(rows, 4 * width, width, layers, true), new(rows, width, TinyConfig.Vocab, 1, false)];
    }
}
