using System;
using System.Collections.Generic;
using System.Linq;
using PeftGen.Data;
using PeftGen.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftGen.Tests.Training;

/// <summary>Toy data and model wrappers shared by trainer and generation tests.</summary>
internal static class TrainingFixtures
{
    public const int Vocab = 64;
    public const int Eos = 0;

    /// <summary>
    /// "Counting" examples: a prompt of 2–4 tokens, separator 62, then the next tokens of the count (t+1 mod 60,
    /// starting after the prompt's last token) and EOS. Learnable by a one-block model.
    /// </summary>
    public static List<TokenizedExample> CountingExamples(int count, int seed)
    {
        var random = new Random(seed);
        var examples = new List<TokenizedExample>();
        for (int i = 0; i < count; i++)
        {
            int start = random.Next(1, 60);
            int promptLength = random.Next(2, 5);
            int completionLength = random.Next(3, 6);
            var ids = new List<int>();
            var labels = new List<int>();
            int value = start;
            for (int p = 0; p < promptLength; p++, value = value % 59 + 1)
            {
                ids.Add(value);
                labels.Add(SupervisedExamples.Ignored);
            }
            ids.Add(62);
            labels.Add(SupervisedExamples.Ignored);
            for (int c = 0; c < completionLength; c++, value = value % 59 + 1)
            {
                ids.Add(value);
                labels.Add(value);
            }
            ids.Add(Eos);
            labels.Add(Eos);
            examples.Add(new TokenizedExample([.. ids], [.. labels]));
        }
        return examples;
    }

    public static List<(string Name, Parameter Parameter)> AllParameters(nn.Module model) =>
        model.named_parameters().Select(p => (p.name, p.parameter)).ToList();
}

/// <summary>
/// Wraps a model; a batch containing <see cref="PoisonId"/> yields NaN hidden states (NaN loss), one containing
/// <see cref="GradientPoisonId"/> a finite loss whose head gradient is NaN (0 · d√x/dx at x = 0).
/// </summary>
internal sealed class PoisonedModel : nn.Module<Tensor, Tensor>, ICausalLanguageModel
{
    public const long PoisonId = 63;
    public const long GradientPoisonId = 61;
    private readonly TinyCausalLm inner;

    public PoisonedModel(TinyCausalLm inner) : base(nameof(PoisonedModel))
    {
        this.inner = inner;
        RegisterComponents();
    }

    public TinyCausalLm Inner => inner;

    public Tensor HeadWeight => inner.HeadWeight;

    public Tensor ForwardHidden(Tensor inputIds)
    {
        var hidden = inner.ForwardHidden(inputIds);
        if (inputIds.eq(GradientPoisonId).any().item<bool>())
            return hidden + (inner.HeadWeight - inner.HeadWeight.detach()).sqrt().sum() * 0.0;
        return inputIds.eq(PoisonId).any().item<bool>() ? hidden * double.NaN : hidden;
    }

    public override Tensor forward(Tensor inputIds) => ForwardHidden(inputIds);
}

/// <summary>Replaces the first token of the batch at <paramref name="poisonedIndex"/> by <paramref name="poisonId"/>.</summary>
internal sealed class PoisonedBatches(IBatchSource inner, long poisonedIndex, long poisonId = PoisonedModel.PoisonId) : IBatchSource
{
    public long BatchesPerEpoch => inner.BatchesPerEpoch;

    public TokenBatch GetBatch(long index)
    {
        var batch = inner.GetBatch(index);
        if (index != poisonedIndex) return batch;
        var ids = (long[])batch.InputIds.Clone();
        ids[0] = poisonId;
        return new TokenBatch(ids, batch.AttentionMask, batch.Labels, batch.BatchSize, batch.SequenceLength);
    }
}
