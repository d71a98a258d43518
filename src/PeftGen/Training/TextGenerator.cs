using System;
using System.Collections.Generic;
using PeftGen.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen.Training;

/// <summary>How <see cref="TextGenerator"/> picks tokens.</summary>
public sealed record GenerationOptions
{
    /// <summary>Most tokens to add after the prompt.</summary>
    public int MaxNewTokens { get; init; } = 32;

    /// <summary>Softmax temperature; 0 (the default) means greedy decoding.</summary>
    public double Temperature { get; init; }

    /// <summary>Sample only among the <c>TopK</c> most likely tokens; 0 means all.</summary>
    public int TopK { get; init; }

    /// <summary>Seed of the sampling generator (each call starts from it, so a call is repeatable).</summary>
    public long Seed { get; init; }

    /// <summary>Generation stops after this id (which is not returned); null never stops early.</summary>
    public int? EndOfSequenceId { get; init; }

    /// <summary>Longest input the model accepts; older tokens are dropped from the left beyond it. 0: unlimited.</summary>
    public int MaxContext { get; init; }
}

/// <summary>
/// Greedy and sampled decoding over an <see cref="ICausalLanguageModel"/>. Every step recomputes the whole
/// sequence (no KV cache), which is fine for small models; only the last position goes through the head.
/// </summary>
public sealed class TextGenerator
{
    private readonly nn.Module module;
    private readonly ICausalLanguageModel model;

    /// <summary>Creates a generator for a model that is an <see cref="nn.Module"/> implementing <see cref="ICausalLanguageModel"/>.</summary>
    public TextGenerator(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        this.model = model as ICausalLanguageModel
            ?? throw new ArgumentException($"{model.GetType().Name} does not implement {nameof(ICausalLanguageModel)}.", nameof(model));
        module = model;
    }

    /// <summary>The new token ids after <paramref name="promptIds"/> (without the end-of-sequence id).</summary>
    public IReadOnlyList<int> Generate(IReadOnlyList<int> promptIds, GenerationOptions options)
    {
        ArgumentNullException.ThrowIfNull(promptIds);
        ArgumentNullException.ThrowIfNull(options);
        if (promptIds.Count == 0) throw new ArgumentException("The prompt needs at least one token.", nameof(promptIds));
        if (options.MaxNewTokens < 0 || options.TopK < 0 || options.MaxContext < 0 || options.Temperature < 0)
            throw new ArgumentOutOfRangeException(nameof(options), "Generation settings must not be negative.");

        bool wasTraining = module.training;
        module.eval();
        using var noGrad = no_grad();
        using var generator = new Generator((ulong)options.Seed);
        var sequence = new List<long>(promptIds.Count + options.MaxNewTokens);
        foreach (var id in promptIds) sequence.Add(id);
        var produced = new List<int>();
        try
        {
            var device = model.HeadWeight.device;
            for (int step = 0; step < options.MaxNewTokens; step++)
            {
                using var scope = NewDisposeScope();
                int start = options.MaxContext > 0 ? Math.Max(0, sequence.Count - options.MaxContext) : 0;
                var window = sequence.GetRange(start, sequence.Count - start).ToArray();
                var hidden = model.ForwardHidden(tensor(window, new long[] { 1, window.Length }, device: device));
                var logits = hidden[0, -1].matmul(model.HeadWeight.t()).to(ScalarType.Float32);
                int next = (int)Choose(logits, options, generator);
                if (options.EndOfSequenceId == next) break;
                produced.Add(next);
                sequence.Add(next);
            }
        }
        finally
        {
            module.train(wasTraining);
        }
        return produced;
    }

    /// <summary>Tokenizes <paramref name="prompt"/>, generates, and decodes the new tokens; stops at the tokenizer's EOS.</summary>
    public string Generate(ITextTokenizer tokenizer, string prompt, GenerationOptions options)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(options);
        var ids = Generate(tokenizer.Encode(prompt), options with { EndOfSequenceId = options.EndOfSequenceId ?? tokenizer.EndOfSequenceId });
        return tokenizer.Decode(ids);
    }

    private static long Choose(Tensor logits, GenerationOptions options, Generator generator)
    {
        if (options.Temperature == 0) return logits.argmax().item<long>();
        var scaled = logits / options.Temperature;
        if (options.TopK > 0 && options.TopK < scaled.shape[0])
        {
            var kth = scaled.topk(options.TopK).values[-1];
            scaled = scaled.masked_fill(scaled.lt(kth), double.NegativeInfinity);
        }
        return scaled.softmax(0).multinomial(1, generator: generator).item<long>();
    }
}
