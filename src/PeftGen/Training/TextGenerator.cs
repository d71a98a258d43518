using System;
using System.Collections.Generic;
using System.Linq;
using PeftGen.Data;
using PeftGen.Inference;
using PeftGen.Precision;
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

    /// <summary>
    /// Never produce a token that would repeat an n-gram of this size already in the sequence (prompt included), as
    /// Hugging Face's <c>no_repeat_ngram_size</c>; 0 (the default) allows repeats.
    /// </summary>
    public int NoRepeatNGramSize { get; init; }

    /// <summary>End-of-sequence cannot be chosen before this many new tokens (Hugging Face's <c>min_new_tokens</c>).</summary>
    public int MinNewTokens { get; init; }

    /// <summary>Prompts of one length decoded together in a batch (<see cref="TextGenerator.GenerateBatch"/>).</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>The precision of the forward passes: bfloat16 where the device has it fast, unless set otherwise.</summary>
    public TrainingPrecision Precision { get; init; } = TrainingPrecision.Auto;

    /// <summary>
    /// Feed one new position per step and keep earlier keys and values in a <see cref="KeyValueCache"/> (the default),
    /// for models whose attention uses one; false recomputes the whole sequence every step. A model that does not use
    /// the cache, and a generation that would outgrow <see cref="MaxContext"/>, recompute either way.
    /// </summary>
    public bool UseKeyValueCache { get; init; } = true;
}

/// <summary>
/// Greedy and sampled decoding over an <see cref="ICausalLanguageModel"/>. The prompt is run once and each step then
/// feeds only the new token, reusing earlier keys and values from a <see cref="KeyValueCache"/> when the model's
/// attention keeps one (see <see cref="GenerationOptions.UseKeyValueCache"/>); only the last position goes through the head.
/// </summary>
/// <remarks>
/// <see cref="GenerateBatch"/> decodes prompts of equal length together, so no padding and no attention mask are
/// needed and each row's greedy result is exactly what it would be alone; a row that stops leaves the batch (and the
/// cache). Sampling draws from one generator seeded per call.
/// </remarks>
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
        return GenerateBatch([promptIds], options)[0];
    }

    /// <summary>The new token ids after each prompt, in order (each without the end-of-sequence id).</summary>
    public IReadOnlyList<IReadOnlyList<int>> GenerateBatch(IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        foreach (var prompt in prompts)
        {
            ArgumentNullException.ThrowIfNull(prompt, nameof(prompts));
            if (prompt.Count == 0) throw new ArgumentException("Every prompt needs at least one token.", nameof(prompts));
        }
        if (options.MaxNewTokens < 0 || options.TopK < 0 || options.MaxContext < 0 || options.Temperature < 0 || options.NoRepeatNGramSize < 0 || options.MinNewTokens < 0)
            throw new ArgumentOutOfRangeException(nameof(options), "Generation settings must not be negative.");
        if (options.BatchSize <= 0) throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize, "BatchSize must be positive.");

        var results = new IReadOnlyList<int>[prompts.Count];
        bool wasTraining = module.training;
        module.eval();
        using var noGrad = no_grad();
        using var precision = ComputePrecision.Use(PrecisionSupport.ComputeDType(options.Precision, model.HeadWeight.device));
        // The weights do not change while decoding: each is cast to the compute dtype once, not once per token.
        using var casts = ComputePrecision.ReuseParameterCasts();
        using var generator = new Generator((ulong)options.Seed);
        try
        {
            var groups = Enumerable.Range(0, prompts.Count).GroupBy(i => prompts[i].Count).OrderBy(g => g.Key);
            foreach (var group in groups)
            {
                foreach (var chunk in group.Chunk(options.BatchSize))
                {
                    var produced = Decode(chunk.Select(i => prompts[i]).ToArray(), options, generator);
                    for (int row = 0; row < chunk.Length; row++) results[chunk[row]] = produced[row];
                }
            }
        }
        finally
        {
            module.train(wasTraining);
        }
        return results;
    }

    private List<int>[] Decode(IReadOnlyList<int>[] prompts, GenerationOptions options, Generator generator)
    {
        var sequences = prompts.Select(p => p.Select(id => (long)id).ToList()).ToArray();
        var produced = prompts.Select(_ => new List<int>()).ToArray();
        // Rows still generating; a row leaves the batch when it stops, so later steps compute only what is needed.
        var active = Enumerable.Range(0, prompts.Length).ToList();
        var device = model.HeadWeight.device;
        // A window that slides (MaxContext) moves every position, which a cache cannot follow: recompute then.
        bool fits = options.MaxContext == 0 || prompts[0].Count + options.MaxNewTokens <= options.MaxContext;
        using var cache = new KeyValueCache();
        using var useCache = options.UseKeyValueCache && fits ? cache.Use() : null;
        for (int step = 0; step < options.MaxNewTokens && active.Count > 0; step++)
        {
            using var scope = NewDisposeScope();
            int length = sequences[active[0]].Count;
            // After the first pass a caching model takes only the newest token of each row.
            bool incremental = useCache is not null && cache.Length > 0;
            int start = incremental ? length - 1 : options.MaxContext > 0 ? Math.Max(0, length - options.MaxContext) : 0;
            int width = length - start;
            var window = new long[active.Count * width];
            for (int row = 0; row < active.Count; row++) sequences[active[row]].CopyTo(start, window, row * width, width);
            var hidden = model.ForwardHidden(tensor(window, new long[] { active.Count, width }, device: device));
            if (useCache is not null) cache.Commit();
            var last = hidden.select(1, -1);
            var logits = ComputePrecision.Cast(last).matmul(ComputePrecision.Cast(model.HeadWeight).t()).to(ScalarType.Float32);
            var rows = active.Select(i => sequences[i]).ToArray();
            Suppress(logits, rows, step, options);
            var next = Choose(logits, options, generator);
            var stillActive = new List<int>(active.Count);
            var kept = new List<long>(active.Count);
            for (int row = 0; row < active.Count; row++)
            {
                int index = active[row];
                int token = (int)next[row];
                if (options.EndOfSequenceId == token) continue;
                sequences[index].Add(token);
                produced[index].Add(token);
                stillActive.Add(index);
                kept.Add(row);
            }
            if (kept.Count < active.Count && kept.Count > 0 && cache.Layers > 0) cache.KeepRows(kept);
            active = stillActive;
        }
        return produced;
    }

    // Bans, per row, end-of-sequence before MinNewTokens and every token that would complete an n-gram already seen.
    private static void Suppress(Tensor logits, List<long>[] sequences, int step, GenerationOptions options)
    {
        var banned = new List<long>();
        if (options.EndOfSequenceId is int eos && step < options.MinNewTokens)
        {
            for (int row = 0; row < sequences.Length; row++) banned.Add((long)row * logits.shape[1] + eos);
        }
        int n = options.NoRepeatNGramSize;
        if (n > 0)
        {
            for (int row = 0; row < sequences.Length; row++)
            {
                var seq = sequences[row];
                if (seq.Count < n) continue;
                // The last n − 1 tokens; every earlier occurrence of them bans the token that followed it.
                for (int i = 0; i + n <= seq.Count; i++)
                {
                    bool match = true;
                    for (int k = 0; k < n - 1 && match; k++) match = seq[i + k] == seq[seq.Count - n + 1 + k];
                    if (match) banned.Add(row * logits.shape[1] + seq[i + n - 1]);
                }
            }
        }
        if (banned.Count == 0) return;
        using var flat = logits.view(-1);
        using var index = tensor(banned.ToArray(), device: logits.device);
        flat.index_fill_(0, index, double.NegativeInfinity);
    }

    private static long[] Choose(Tensor logits, GenerationOptions options, Generator generator)
    {
        if (options.Temperature == 0) return logits.argmax(1).cpu().data<long>().ToArray();
        var scaled = logits / options.Temperature;
        if (options.TopK > 0 && options.TopK < scaled.shape[1])
        {
            var kth = scaled.topk(options.TopK, dim: 1).values.narrow(1, options.TopK - 1, 1);
            scaled = scaled.masked_fill(scaled.lt(kth), double.NegativeInfinity);
        }
        return scaled.softmax(1).multinomial(1, generator: generator).squeeze(1).cpu().data<long>().ToArray();
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
}
