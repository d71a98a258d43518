using System;
using System.Collections.Generic;
using TorchSharp.Modules;
using TorchSharp;
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
        double decayFactor = 1 - learningRate * weightDecay;
        using var noGrad = no_grad();
        using var numbers = new UpdateNumbers(beta1, beta2, epsilon, biasCorrection2Sqrt, -learningRate / biasCorrection1, decayFactor);
        foreach (var (name, parameter, decays) in parameters)
        {
            // Disposed at the end of the iteration, so the wrapper outlives every native call that reads it.
            using var grad = parameter.grad;
            if (grad is null) continue;
            using var scope = NewDisposeScope();
            if (!moments.TryGetValue(name, out var state))
            {
                state = (zeros_like(parameter).DetachFromDisposeScope(), zeros_like(parameter).DetachFromDisposeScope());
                moments[name] = state;
            }
            bool decay = weightDecay > 0 && decays && decayFactor != 1;
            if (!Sliceable(parameter, grad, state))
            {
                Update(parameter, grad, state.ExpAvg, state.ExpAvgSq, decay, numbers, null);
                continue;
            }
            // Slice by slice: each slice of the parameter, its gradient and moments passes through the cache once for
            // the whole update, and the denominator lands in one kept buffer instead of a parameter-sized temporary
            // (a fresh 103 MB, page-faulted in, every step for a 50,257 × 512 token embedding).
            long count = parameter.NumberOfElements;
            var scratch = Scratch(Math.Min(count, SliceElements), parameter);
            using var flatParameter = parameter.view(-1);
            using var flatGrad = grad.view(-1);
            using var flatAvg = state.ExpAvg.view(-1);
            using var flatAvgSq = state.ExpAvgSq.view(-1);
            for (long start = 0; start < count; start += SliceElements)
            {
                long length = Math.Min(SliceElements, count - start);
                using var sliceScope = NewDisposeScope();
                Update(flatParameter.narrow(0, start, length), flatGrad.narrow(0, start, length), flatAvg.narrow(0, start, length),
                    flatAvgSq.narrow(0, start, length), decay, numbers, scratch.narrow(0, 0, length));
            }
        }
    }

    /// <summary>
    /// Elements per slice of a large parameter's update: 2 MB of float32, so that a slice of the parameter, gradient,
    /// both moments and the denominator stay in the cache between the update's passes.
    /// </summary>
    internal const long SliceElements = 512 * 1024;

    private Tensor? scratch;

    // The kept denominator buffer: at least elements long, of the parameter's dtype and device.
    private Tensor Scratch(long elements, Tensor like)
    {
        if (scratch is null || scratch.NumberOfElements < elements || scratch.dtype != like.dtype || scratch.device_type != like.device_type || scratch.device_index != like.device_index)
        {
            scratch?.Dispose();
            scratch = empty(new[] { elements }, dtype: like.dtype, device: like.device).DetachFromDisposeScope();
        }
        return scratch;
    }

    // Slicing takes flat views: every tensor of the update must be contiguous (parameters and their state are, unless
    // a caller made them otherwise), and a parameter worth slicing must be larger than a slice.
    private static bool Sliceable(Tensor parameter, Tensor grad, (Tensor ExpAvg, Tensor ExpAvgSq) state)
        => parameter.NumberOfElements > SliceElements && parameter.is_contiguous() && grad.is_contiguous()
            && state.ExpAvg.is_contiguous() && state.ExpAvgSq.is_contiguous();

    // PyTorch's AdamW rule on one parameter or slice: decoupled decay, both moments, then
    // p -= lr / (1 - β1^t) · m / (sqrt(v) / sqrt(1 - β2^t) + ε). The denominator goes into denominator when given.
    private static void Update(Tensor parameter, Tensor grad, Tensor expAvg, Tensor expAvgSq, bool decay, UpdateNumbers numbers, Tensor? denominator)
    {
        if (decay) parameter.mul_(numbers.Decay);
        expAvg.mul_(numbers.Beta1).add_(grad, alpha: numbers.OneMinusBeta1);
        expAvgSq.mul_(numbers.Beta2).addcmul_(grad, grad, value: numbers.OneMinusBeta2);
        var denom = denominator is null ? expAvgSq.sqrt() : denominator.copy_(expAvgSq).sqrt_();
        denom.div_(numbers.BiasCorrection2Sqrt).add_(numbers.Epsilon);
        parameter.addcdiv_(expAvg, denom, value: numbers.StepSize);
    }

    // A step's numbers as Scalars, made once and held until every native call that reads them has returned (a number
    // passed as an implicit conversion's temporary could be finalized during the call).
    private sealed class UpdateNumbers(double beta1, double beta2, double epsilon, double biasCorrection2Sqrt, double stepSize, double decay) : IDisposable
    {
        public Scalar Beta1 { get; } = beta1.ToScalar();
        public Scalar OneMinusBeta1 { get; } = (1 - beta1).ToScalar();
        public Scalar Beta2 { get; } = beta2.ToScalar();
        public Scalar OneMinusBeta2 { get; } = (1 - beta2).ToScalar();
        public Scalar Epsilon { get; } = epsilon.ToScalar();
        public Scalar BiasCorrection2Sqrt { get; } = biasCorrection2Sqrt.ToScalar();
        public Scalar StepSize { get; } = stepSize.ToScalar();
        public Scalar Decay { get; } = decay.ToScalar();

        public void Dispose()
        {
            foreach (var scalar in new[] { Beta1, OneMinusBeta1, Beta2, OneMinusBeta2, Epsilon, BiasCorrection2Sqrt, StepSize, Decay }) scalar.Dispose();
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

    /// <summary>Frees the moments and the update's buffer.</summary>
    public void Dispose()
    {
        DisposeMoments();
        scratch?.Dispose();
        scratch = null;
    }

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
