using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using PeftGen.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Lora;

public sealed class LoraLinearTests
{
    private static LoraLinear NewLayer(long inF = 16, long outF = 12, LoraConfig? config = null, bool randomB = true)
    {
        var layer = new LoraLinear(inF, outF);
        layer.AddAdapter("default", config ?? new LoraConfig(Rank: 4, Alpha: 8));
        if (randomB)
        {
            using var _ = no_grad();
            layer.LoraB("default").copy_(randn(outF, layer.AdapterConfig("default").Rank) * 0.1);
        }
        return layer;
    }

    [Fact]
    public void Forward_matches_a_float64_reference()
    {
        manual_seed(1);
        using var scope = NewDisposeScope();
        using var layer = NewLayer();
        layer.eval();
        var x = randn(3, 5, 16);

        var expected = x.to(float64).matmul(layer.Weight.to(float64).t()) + layer.Bias!.to(float64)
            + x.to(float64).matmul(layer.LoraA("default").to(float64).t()).matmul(layer.LoraB("default").to(float64).t()) * (8.0 / 4);
        Assert.True(Reference.RelativeError(layer.forward(x), expected) < 1e-6);
    }

    [Fact]
    public void A_new_adapter_starts_as_the_identity_update_with_kaiming_A_and_zero_B()
    {
        manual_seed(2);
        using var scope = NewDisposeScope();
        using var layer = NewLayer(inF: 64, outF: 32, randomB: false);
        var x = randn(4, 64);
        var baseOnly = nn.functional.linear(x, layer.Weight, layer.Bias);
        Assert.Equal(0.0, Reference.RelativeError(layer.forward(x), baseOnly));

        var a = Reference.ToDoubles(layer.LoraA("default"));
        var bound = 1.0 / Math.Sqrt(64); // Kaiming-uniform with a = √5 on fan_in 64
        Assert.All(a, v => Assert.InRange(Math.Abs(v), 0, bound));
        Assert.True(a.Max() > bound * 0.8 && a.Min() < -bound * 0.8, "A should fill its uniform range");
        Assert.All(Reference.ToDoubles(layer.LoraB("default")), v => Assert.Equal(0.0, v));
        Assert.False(layer.Weight.requires_grad);
        Assert.True(layer.LoraA("default").requires_grad);
    }

    [Fact]
    public void RsLora_scales_by_alpha_over_root_rank()
    {
        Assert.Equal(16.0 / 2.0, new LoraConfig(4, 16, UseRsLora: true).Scale);
        Assert.Equal(16.0 / 4.0, new LoraConfig(4, 16).Scale);
    }

    [Fact]
    public void Merged_forward_equals_unmerged_and_unmerge_restores_the_base()
    {
        manual_seed(3);
        using var scope = NewDisposeScope();
        using var layer = NewLayer(inF: 48, outF: 40);
        layer.eval();
        var x = randn(6, 48);
        var before = layer.Weight.detach().clone();
        var unmerged = layer.forward(x);

        layer.Merge();
        Assert.Equal("default", layer.MergedAdapter);
        Assert.True(Reference.RelativeError(layer.forward(x), unmerged) < 1e-5);

        layer.Unmerge();
        Assert.True(Reference.RelativeError(layer.Weight, before) < 1e-6);
        Assert.True(Reference.RelativeError(layer.forward(x), unmerged) < 1e-5);
    }

    [Fact]
    public void Dropout_acts_on_the_lora_path_in_training_mode_only()
    {
        manual_seed(4);
        using var scope = NewDisposeScope();
        using var layer = NewLayer(config: new LoraConfig(4, 8, Dropout: 0.5));
        var x = randn(8, 16);
        layer.eval();
        var first = layer.forward(x);
        Assert.Equal(0.0, Reference.RelativeError(layer.forward(x), first));

        layer.train();
        Assert.NotEqual(0.0, Reference.RelativeError(layer.forward(x), first));
        // The base path never sees dropout: with adapters off, training mode changes nothing.
        layer.AdaptersDisabled = true;
        Assert.Equal(0.0, Reference.RelativeError(layer.forward(x), nn.functional.linear(x, layer.Weight, layer.Bias)));
    }

    [Fact]
    public void Training_lowers_the_loss_and_leaves_the_base_bit_identical()
    {
        manual_seed(5);
        using var scope = NewDisposeScope();
        using var layer = NewLayer(inF: 32, outF: 16, randomB: false);
        var weightHash = TensorHash.Of(layer.Weight);
        var biasHash = TensorHash.Of(layer.Bias!);
        var x = randn(64, 32);
        var target = randn(64, 16);
        var trainable = layer.parameters().Where(p => p.requires_grad).ToList();
        Assert.Equal(2, trainable.Count);
        using var optimizer = optim.AdamW(trainable, lr: 1e-2);

        double first = 0, last = 0;
        for (int step = 0; step < 30; step++)
        {
            using var stepScope = NewDisposeScope();
            optimizer.zero_grad();
            var loss = nn.functional.mse_loss(layer.forward(x), target);
            loss.backward();
            optimizer.step();
            if (step == 0) first = loss.item<float>();
            last = loss.item<float>();
        }

        Assert.True(last < first * 0.95, $"loss {first} -> {last}");
        Assert.Equal(weightHash, TensorHash.Of(layer.Weight));
        Assert.Equal(biasHash, TensorHash.Of(layer.Bias!));
        Assert.Null(layer.Weight.grad);
    }

    [Fact]
    public void Misuse_gets_clear_errors()
    {
        using var layer = NewLayer();
        Assert.Throws<InvalidOperationException>(() => layer.Unmerge());
        layer.Merge();
        var twice = Assert.Throws<InvalidOperationException>(() => layer.Merge());
        Assert.Contains("already merged", twice.Message);
        Assert.Throws<KeyNotFoundException>(() => layer.SetActiveAdapter("missing"));
        Assert.Throws<InvalidOperationException>(() => layer.AddAdapter("default", new LoraConfig(2, 2)));
        Assert.Throws<ArgumentOutOfRangeException>(() => layer.AddAdapter("big", new LoraConfig(13, 2)));
        Assert.Throws<ArgumentOutOfRangeException>(() => layer.AddAdapter("zero", new LoraConfig(0, 2)));
        Assert.Throws<ArgumentOutOfRangeException>(() => layer.AddAdapter("alpha", new LoraConfig(2, 0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => layer.AddAdapter("drop", new LoraConfig(2, 2, Dropout: 1)));
        using var wrong = ones(2, 7);
        var shape = Assert.Throws<ArgumentException>(() => layer.forward(wrong));
        Assert.Contains("last dimension 16", shape.Message);
    }

    [Fact]
    public void Named_adapters_are_chosen_per_call_and_concurrent_calls_match_serial_ones()
    {
        manual_seed(6);
        using var scope = NewDisposeScope();
        using var layer = NewLayer();
        layer.AddAdapter("sql", new LoraConfig(2, 4));
        using (no_grad()) layer.LoraB("sql").copy_(randn(12, 2));
        layer.eval();
        var x = randn(5, 16);

        var serial = new Dictionary<string, double[]>();
        foreach (var name in new[] { "default", "sql" })
        {
            using (AdapterContext.Use(adapter: name)) serial[name] = Reference.ToDoubles(layer.forward(x));
        }
        using (AdapterContext.BaseOnly()) serial["base"] = Reference.ToDoubles(layer.forward(x));
        Assert.NotEqual(serial["default"], serial["sql"]);

        var results = new (string Name, double[] Output)[48];
        Parallel.For(0, results.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            var name = (i % 3) switch { 0 => "default", 1 => "sql", _ => "base" };
            using var threadScope = NewDisposeScope();
            using var _ = no_grad();
            using (name == "base" ? AdapterContext.BaseOnly() : AdapterContext.Use(adapter: name))
                results[i] = (name, Reference.ToDoubles(layer.forward(x)));
        });
        Assert.All(results, r => Assert.Equal(serial[r.Name], r.Output));
    }
}
