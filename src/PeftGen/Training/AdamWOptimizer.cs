using System;
using System.Collections.Generic;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftGen.Training;

/// <summary>
/// AdamW (decoupled weight decay, PyTorch's update rule) over named parameters, with its state exposed by name so
/// that checkpoints can save and restore it exactly.
/// </summary>
public sealed class AdamWOptimizer : IDisposable
{
    private readonly List<(string Name, Parameter Parameter, bool Decays)> parameters = new();
    private readonly Dictionary<string, (Tensor ExpAvg, Tensor ExpAvgSq)> moments = new(StringComparer.Ordinal);
    private readonly double beta1;
    private readonly double beta2;
    private readonly double epsilon;
    private readonly double weightDecay;

    /// <summary>
    /// Creates the optimizer; moments are allocated lazily at the first step, as in PyTorch. Matrices decay, 1-D
    /// tensors do not (<see cref="Decays"/>).
    /// </summary>
    public AdamWOptimizer(IReadOnlyList<(string Name, Parameter Parameter)> parameters, double beta1, double beta2, double epsilon, double weightDecay)
        : this(ParameterGroup.ByShape(parameters), beta1, beta2, epsilon, weightDecay)
    {
    }

    /// <summary>
    /// Creates the optimizer over parameter groups: <paramref name="weightDecay"/> applies to the parameters of groups
    /// that <see cref="ParameterGroup.Decays"/>, and to no other.
    /// </summary>
    public AdamWOptimizer(IReadOnlyList<ParameterGroup> groups, double beta1, double beta2, double epsilon, double weightDecay)
    {
        ArgumentNullException.ThrowIfNull(groups);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var group in groups)
        {
            foreach (var (name, parameter) in group.Parameters)
            {
                if (!names.Add(name)) throw new ArgumentException($"Parameter '{name}' appears twice.", nameof(groups));
                parameters.Add((name, parameter, group.Decays));
            }
        }
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.epsilon = epsilon;
        this.weightDecay = weightDecay;
    }

    /// <summary>Optimizer steps taken (the bias-correction step count).</summary>
    public long StepCount { get; private set; }

    /// <summary>
    /// Whether a parameter decays: matrices and higher do; 1-D tensors (biases, norm weights, scalars) do not.
    /// </summary>
    public static bool Decays(Parameter parameter) => parameter.dim() >= 2;

    /// <summary>One update with learning rate <paramref name="learningRate"/>; parameters without a gradient are skipped.</summary>
    public void Step(double learningRate)
    {
        StepCount++;
        double biasCorrection1 = 1 - Math.Pow(beta1, StepCount);
        double biasCorrection2Sqrt = Math.Sqrt(1 - Math.Pow(beta2, StepCount));
        using var noGrad = no_grad();
        foreach (var (name, parameter, decays) in parameters)
        {
            var grad = parameter.grad;
            if (grad is null) continue;
            using var scope = NewDisposeScope();
            if (!moments.TryGetValue(name, out var state))
            {
                state = (zeros_like(parameter).DetachFromDisposeScope(), zeros_like(parameter).DetachFromDisposeScope());
                moments[name] = state;
            }
            if (weightDecay > 0 && decays) parameter.mul_(1 - learningRate * weightDecay);
            state.ExpAvg.mul_(beta1).add_(grad, alpha: 1 - beta1);
            state.ExpAvgSq.mul_(beta2).addcmul_(grad, grad, value: 1 - beta2);
            var denominator = state.ExpAvgSq.sqrt().div_(biasCorrection2Sqrt).add_(epsilon);
            parameter.addcdiv_(state.ExpAvg, denominator, value: -learningRate / biasCorrection1);
        }
    }

    /// <summary>Moments by parameter name (only parameters that have been updated).</summary>
    public IReadOnlyDictionary<string, (Tensor ExpAvg, Tensor ExpAvgSq)> Moments => moments;

    /// <summary>Replaces the state with saved moments and step count (copied; shapes must match the parameters).</summary>
    public void Restore(long stepCount, IReadOnlyDictionary<string, (Tensor ExpAvg, Tensor ExpAvgSq)> saved)
    {
        ArgumentNullException.ThrowIfNull(saved);
        var byName = new Dictionary<string, Parameter>(StringComparer.Ordinal);
        foreach (var (name, parameter, _) in parameters) byName[name] = parameter;
        foreach (var name in saved.Keys)
        {
            if (!byName.TryGetValue(name, out var parameter))
                throw new ArgumentException($"Saved optimizer state for '{name}', which is not a trained parameter.", nameof(saved));
            var (m, v) = saved[name];
            if (!m.shape.AsSpan().SequenceEqual(parameter.shape) || !v.shape.AsSpan().SequenceEqual(parameter.shape))
                throw new ArgumentException($"Saved optimizer state for '{name}' has shape [{string.Join(", ", m.shape)}], the parameter [{string.Join(", ", parameter.shape)}].", nameof(saved));
        }
        DisposeMoments();
        foreach (var (name, (m, v)) in saved)
        {
            var target = byName[name];
            moments[name] = (m.to(target.dtype, target.device).clone().DetachFromDisposeScope(), v.to(target.dtype, target.device).clone().DetachFromDisposeScope());
        }
        StepCount = stepCount;
    }

    /// <summary>Frees the moments.</summary>
    public void Dispose() => DisposeMoments();

    private void DisposeMoments()
    {
        foreach (var (m, v) in moments.Values)
        {
            m.Dispose();
            v.Dispose();
        }
        moments.Clear();
    }
}
