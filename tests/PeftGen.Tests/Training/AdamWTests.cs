using System;
using PeftGen.Tests.Support;
using PeftGen.Training;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Training;

public sealed class AdamWTests
{
    [Fact]
    public void Matrices_decay_and_one_dimensional_parameters_do_not()
    {
        using var scope = NewDisposeScope();
        var matrix = new Parameter(ones(2, 3));
        var bias = new Parameter(ones(3));
        matrix.grad = zeros(2, 3);
        bias.grad = zeros(3);
        var optimizer = new AdamWOptimizer(new[] { ("w", matrix), ("b", bias) }, 0.9, 0.999, 1e-8, weightDecay: 0.5);
        optimizer.Step(learningRate: 0.1);
        // Zero gradients leave only the decoupled decay: w ← w·(1 − lr·wd) = 0.95; biases are not decayed.
        Assert.All(matrix.data<float>().ToArray(), v => Assert.Equal(0.95f, v));
        Assert.All(bias.data<float>().ToArray(), v => Assert.Equal(1f, v));
        Assert.True(AdamWOptimizer.Decays(matrix));
        Assert.False(AdamWOptimizer.Decays(bias));
    }

    [Fact]
    public void A_group_that_does_not_decay_keeps_its_matrices()
    {
        using var scope = NewDisposeScope();
        var weight = new Parameter(ones(2, 3));
        var prompt = new Parameter(ones(4, 3));
        weight.grad = zeros(2, 3);
        prompt.grad = zeros(4, 3);
        var optimizer = new AdamWOptimizer(
            new[] { new ParameterGroup(ParameterGroup.DecayName, new[] { ("w", weight) }, true), new ParameterGroup(ParameterGroup.NoDecayName, new[] { ("prompt", prompt) }, false) },
            0.9, 0.999, 1e-8, weightDecay: 0.5);
        optimizer.Step(learningRate: 0.1);
        // A soft prompt is a matrix, but its group says it does not decay.
        Assert.All(weight.data<float>().ToArray(), v => Assert.Equal(0.95f, v));
        Assert.All(prompt.data<float>().ToArray(), v => Assert.Equal(1f, v));
    }

    // A small matrix (one whole update), one of more elements than a slice (sliced, the last slice partial), and a
    // transposed one of that size (not contiguous: updated whole).
    [Theory]
    [InlineData(4, 5, false)]
    [InlineData(3, (int)(AdamWOptimizer.SliceElements / 2) + 7, false)]
    [InlineData(3, (int)(AdamWOptimizer.SliceElements / 2) + 7, true)]
    public void Updates_follow_pytorchs_adamw_rule_against_a_float64_reference(int rows, int columns, bool transposed)
    {
        using var scope = NewDisposeScope();
        manual_seed(4);
        var start = randn(rows, columns, dtype: ScalarType.Float64);
        var grads = new[] { randn(rows, columns, dtype: ScalarType.Float64), randn(rows, columns, dtype: ScalarType.Float64), randn(rows, columns, dtype: ScalarType.Float64) };
        var p = new Parameter(transposed ? start.t().contiguous().to(ScalarType.Float32).t() : start.to(ScalarType.Float32));
        Assert.Equal(!transposed, p.is_contiguous());
        var optimizer = new AdamWOptimizer(new[] { ("p", p) }, 0.9, 0.99, 1e-8, 0.1);

        var expected = start.clone();
        var m = zeros_like(start);
        var v = zeros_like(start);
        double lr = 0.01;
        for (int t = 1; t <= grads.Length; t++)
        {
            p.grad = transposed ? grads[t - 1].t().contiguous().to(ScalarType.Float32).t() : grads[t - 1].to(ScalarType.Float32);
            optimizer.Step(lr);
            expected = expected * (1 - lr * 0.1);
            m = m * 0.9 + grads[t - 1] * 0.1;
            v = v * 0.99 + grads[t - 1].square() * 0.01;
            var mHat = m / (1 - Math.Pow(0.9, t));
            var denominator = (v / (1 - Math.Pow(0.99, t))).sqrt() + 1e-8;
            expected = expected - lr * mHat / denominator;
        }
        Assert.True(Reference.RelativeError(p, expected) < 1e-6);
        Assert.Equal(3, optimizer.StepCount);
    }

    [Fact]
    public void The_schedule_warms_up_linearly_then_follows_a_cosine()
    {
        Assert.Equal(0.25, LearningRateSchedule.At(0, 10, 3, 1.0, 0.1), 12);
        Assert.Equal(0.75, LearningRateSchedule.At(2, 10, 3, 1.0, 0.1), 12);
        Assert.Equal(1.0, LearningRateSchedule.At(3, 10, 3, 1.0, 0.1), 12);
        // Halfway through the decay (step 6 of 3..9) the cosine term is 0.5: 0.1 + 0.9·0.5.
        Assert.Equal(0.55, LearningRateSchedule.At(6, 10, 3, 1.0, 0.1), 12);
        Assert.Equal(0.1, LearningRateSchedule.At(9, 10, 3, 1.0, 0.1), 12);
    }
}
