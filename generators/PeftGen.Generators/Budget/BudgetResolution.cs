using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using PeftGen.Generators.Accounting;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Model;
using PeftGen.Generators.Quantization;
using PeftGen.Generators.SixteenBit;

namespace PeftGen.Generators.Budget;

/// <summary>The training memory estimate of a model for its declared batch and sequence, in bytes.</summary>
/// <param name="Weights">The weights as stored (<c>Accounting.WeightBytes</c>).</param>
/// <param name="Gradients">float32 gradients of the trainable values.</param>
/// <param name="Optimizer">AdamW's two float32 moments per trainable value.</param>
/// <param name="Transient">The largest float32 copy of a 4-bit or 16-bit base that one product makes, then drops.</param>
/// <param name="BudgetBytes">The declared budget; 0 when none.</param>
internal sealed record EstimateSpec(
    long Batch,
    long Sequence,
    ActivationEstimate Shape,
    long Weights,
    long Gradients,
    long Optimizer,
    long Activations,
    long Transient,
    long BudgetBytes)
{
    public long Total => checked(Weights + Gradients + Optimizer + Activations + Transient);
}

/// <summary>
/// Estimates a model's training memory for its declared batch and sequence and checks it against its budget
/// (PEFT404), naming the largest items and concrete changes that would fit: a shorter sequence, a smaller batch, 4-bit
/// or 16-bit bases, a lower LoRA rank. Each alternative is the same accounting run on a changed spec.
/// </summary>
internal static class BudgetResolution
{
    public static EstimateSpec? Resolve(ClassSpec root, AccountingSpec accountingSpec, AccountingResult accounting, List<DiagnosticInfo> diagnostics)
    {
        if (root.Root?.Budget is not { Sequence: > 0, Batch: > 0 } budget) return null;
        if (ContextLength(root.Root) is { } context && budget.Sequence > context)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.BadBatchOrSequence, budget.SequenceSite, BudgetParser.SequenceArgument, budget.Sequence,
                "exceeds the model's ContextLength of " + context.ToString(CultureInfo.InvariantCulture) + "; estimate a sequence the model takes"));
            return null;
        }
        var shape = ActivationEstimate.From(root.Root, accountingSpec.Layers, accountingSpec.ActiveAdapter, out var missing);
        if (shape is null)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ActivationsUnknown, budget.SequenceSite, root.Type.Name, missing));
            return null;
        }
        EstimateSpec estimate;
        try
        {
            estimate = Estimate(accountingSpec, accounting, shape, budget.Batch, budget.Sequence, budget.BudgetBytes);
            _ = estimate.Total;
        }
        catch (OverflowException)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.BadBatchOrSequence, budget.SequenceSite, BudgetParser.SequenceArgument, budget.Sequence,
                "gives an estimate beyond a 64-bit byte count (with Batch = " + budget.Batch.ToString(CultureInfo.InvariantCulture) + "); use a realistic batch and sequence"));
            return null;
        }
        if (budget.BudgetBytes > 0 && estimate.Total > budget.BudgetBytes)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.BudgetExceeded, budget.BudgetSite, root.Type.Name,
                BudgetParser.Describe(estimate.Total), budget.Batch, budget.Sequence, budget.BudgetText, Parts(estimate),
                Largest(estimate, accounting), Alternatives(root, accountingSpec, estimate, shape)));
        }
        return estimate;
    }

    /// <summary>The model's ContextLength, when it declares one that resolves.</summary>
    private static long? ContextLength(RootSpec root)
    {
        if (root.ContextLength is not { } context) return null;
        var constants = root.Constants.Where(c => c.Kind == ConfigValueKind.Integer).ToDictionary(c => c.Name, c => c.Value, StringComparer.Ordinal);
        var (value, error, _) = context.Expression.Evaluate(constants);
        return error is null ? value : null;
    }

    private static EstimateSpec Estimate(AccountingSpec spec, AccountingResult accounting, ActivationEstimate shape, long batch, long sequence, long budget)
        => new(batch, sequence, shape, accounting.WeightBytes, accounting.GradientBytes, accounting.OptimizerBytes,
            shape.Bytes(batch, sequence), TransientBytes(spec), budget);

    /// <summary>
    /// The largest per-call float32 copy of a base that is not stored in float32: a 4-bit base is dequantized for each
    /// product, a 16-bit one widened under float32 compute; one exists at a time.
    /// </summary>
    public static long TransientBytes(AccountingSpec spec)
    {
        long largest = 0;
        foreach (var layer in spec.Layers.Where(l => l.Kind == LayerKind.Linear && l.Dimensions.Count == 2))
        {
            var narrow = layer.Quantization is not null || (spec.SixteenBitBases && SixteenBitResolution.Applies(layer.Kind, layer.Trainable));
            if (narrow) largest = Math.Max(largest, checked(layer.Dimensions[0] * layer.Dimensions[1] * 4));
        }
        return largest;
    }

    private static string Parts(EstimateSpec e)
        => "weights " + BudgetParser.Describe(e.Weights) + ", gradients " + BudgetParser.Describe(e.Gradients) + ", AdamW state " + BudgetParser.Describe(e.Optimizer)
            + ", activations " + BudgetParser.Describe(e.Activations) + (e.Transient > 0 ? ", largest dequantized weight " + BudgetParser.Describe(e.Transient) : "");

    /// <summary>The three largest items: a member's weights, or one of the estimate's other parts.</summary>
    private static string Largest(EstimateSpec e, AccountingResult accounting)
    {
        var items = accounting.Members.Select(m => ("weights of '" + m.Path + "'", m.WeightBytes)).ToList();
        items.Add(("activations", e.Activations));
        items.Add(("AdamW state", e.Optimizer));
        items.Add(("gradients", e.Gradients));
        items.Add(("largest dequantized weight", e.Transient));
        return string.Join(", ", items.OrderByDescending(i => i.Item2).Take(3).Select(i => i.Item1 + " " + BudgetParser.Describe(i.Item2)));
    }

    private static string Alternatives(ClassSpec root, AccountingSpec spec, EstimateSpec current, ActivationEstimate shape)
    {
        var budget = current.BudgetBytes;
        var fits = new List<string>();
        var misses = new List<string>();
        void Consider(string change, long total)
        {
            if (total <= budget) fits.Add(change + " (" + BudgetParser.Describe(total) + ")");
            else misses.Add(change + " (" + BudgetParser.Describe(total) + ")");
        }
        long With(AccountingSpec changed, long batch, long sequence)
        {
            var shapeOf = ActivationEstimate.From(root.Root!, changed.Layers, changed.ActiveAdapter, out _) ?? shape;
            return Estimate(changed, ParameterAccounting.Compute(changed), shapeOf, batch, sequence, budget).Total;
        }

        var fixedPart = current.Weights + current.Gradients + current.Optimizer + current.Transient;
        if (current.Sequence > 1)
        {
            var sequence = Largest(1, current.Sequence - 1, s => fixedPart + shape.Bytes(current.Batch, s) <= budget);
            if (sequence > 0) Consider("Sequence = " + Text(sequence), fixedPart + shape.Bytes(current.Batch, sequence));
            else Consider("Sequence = 1", fixedPart + shape.Bytes(current.Batch, 1));
        }
        if (current.Batch > 1)
        {
            var batch = Largest(1, current.Batch - 1, b => fixedPart + shape.Bytes(b, current.Sequence) <= budget);
            if (batch > 0) Consider("Batch = " + Text(batch), fixedPart + shape.Bytes(batch, current.Sequence));
        }

        var quantized = FourBit(spec);
        if (quantized is not null) Consider("[Quantize4Bit] on the model class", With(quantized, current.Batch, current.Sequence));
        if (!spec.SixteenBitBases && !root.Root!.TrainAll && spec.Layers.Any(l => SixteenBitResolution.Applies(l.Kind, l.Trainable) && l.Quantization is null))
            Consider("BaseDType = BaseDType.BFloat16", With(spec with { SixteenBitBases = true }, current.Batch, current.Sequence));

        var ranks = spec.Layers.SelectMany(l => l.Adapters).Where(a => a.Name == spec.ActiveAdapter).Select(a => a.Adapter.Rank).DefaultIfEmpty(0).Max();
        if (ranks > 1)
        {
            var rank = Largest(1, ranks - 1, r => With(WithRank(spec, r), current.Batch, current.Sequence) <= budget);
            if (rank > 0) Consider("LoRA rank " + Text(rank), With(WithRank(spec, rank), current.Batch, current.Sequence));
            else Consider("LoRA rank 1", With(WithRank(spec, 1), current.Batch, current.Sequence));
        }

        var result = fits.Count > 0 ? "would fit: " + string.Join(", ", fits) : "no single change fits";
        if (misses.Count > 0) result += "; too large still: " + string.Join(", ", misses);
        return result;
    }

    /// <summary>The largest value in [low, high] for which <paramref name="fits"/> holds (it holds below any value that fits); 0 if none.</summary>
    private static long Largest(long low, long high, Func<long, bool> fits)
    {
        long found = 0;
        while (low <= high)
        {
            var middle = low + ((high - low) / 2);
            if (fits(middle))
            {
                found = middle;
                low = middle + 1;
            }
            else
            {
                high = middle - 1;
            }
        }
        return found;
    }

    /// <summary>The spec with a model-wide [Quantize4Bit] (NF4, blocks of 64, double quantization) on every frozen float projection but the head; null when there is none.</summary>
    private static AccountingSpec? FourBit(AccountingSpec spec)
    {
        var nf4 = new QuantSpec("Nf4", 64, true, "Auto", null);
        var changed = false;
        var layers = spec.Layers.Select(l =>
        {
            if (l.Kind != LayerKind.Linear || l.Trainable || l.Quantization is not null || l.Path == "lm_head" || l.Dimensions.Count != 2) return l;
            changed = true;
            return l with { Quantization = nf4, QuantizedValues = checked(l.Dimensions[0] * l.Dimensions[1]) };
        }).ToEquatableArray();
        return changed ? spec with { Layers = layers } : null;
    }

    /// <summary>The spec with the active adapter's rank at most <paramref name="rank"/> on every projection.</summary>
    private static AccountingSpec WithRank(AccountingSpec spec, long rank)
        => spec with
        {
            Layers = spec.Layers.Select(l => l.Dimensions.Count != 2 ? l : l with
            {
                Adapters = l.Adapters.Select(a => a.Name != spec.ActiveAdapter || a.Adapter.Rank <= rank ? a : a with
                {
                    Adapter = a.Adapter with { Rank = (int)rank },
                    Parameters = checked(rank * (l.Dimensions[0] + l.Dimensions[1])),
                }).ToEquatableArray(),
            }).ToEquatableArray(),
        };

    private static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);
}
