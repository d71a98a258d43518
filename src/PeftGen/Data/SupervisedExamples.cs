using System;
using System.Collections.Generic;

namespace PeftGen.Data;

/// <summary>One tokenized training sequence with per-position labels aligned to the inputs.</summary>
/// <param name="InputIds">Token ids.</param>
/// <param name="Labels">The id to learn at each position, or <c>-100</c> where the position does not count.</param>
public sealed record TokenizedExample(int[] InputIds, int[] Labels)
{
    /// <summary>Positions whose label counts.</summary>
    public int LabelledCount
    {
        get
        {
            int count = 0;
            foreach (var label in Labels)
            {
                if (label != SupervisedExamples.Ignored) count++;
            }
            return count;
        }
    }
}

/// <summary>Tokenized examples and how many had to be truncated.</summary>
/// <param name="Examples">The examples, in input order.</param>
/// <param name="TruncatedCount">Examples longer than the maximum length that were cut.</param>
public sealed record TokenizedDataset(IReadOnlyList<TokenizedExample> Examples, int TruncatedCount);

/// <summary>
/// Turns prompt/completion records into <c>prompt + separator + completion + EOS</c> sequences whose labels are the
/// completion tokens and EOS only.
/// </summary>
public sealed class SupervisedExamples
{
    /// <summary>The label of positions the loss ignores.</summary>
    public const int Ignored = -100;

    private readonly ITextTokenizer tokenizer;
    private readonly int[] separator;

    /// <summary>Creates an encoder.</summary>
    /// <param name="tokenizer">Tokenizer for prompts, separator and completions.</param>
    /// <param name="maxLength">Longest sequence kept; longer ones are truncated (see <see cref="Encode(PromptCompletion, out bool)"/>).</param>
    /// <param name="separator">Text between prompt and completion (tokenized on its own).</param>
    public SupervisedExamples(ITextTokenizer tokenizer, int maxLength, string separator = "\n")
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(separator);
        this.tokenizer = tokenizer;
        this.separator = [.. tokenizer.Encode(separator)];
        if (maxLength < this.separator.Length + 4)
            throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "Maximum length must leave room for a prompt, the separator and a completion.");
        MaxLength = maxLength;
    }

    /// <summary>Longest sequence produced.</summary>
    public int MaxLength { get; }

    /// <summary>The ids of the prompt as generation sees it: <c>prompt + separator</c>.</summary>
    public int[] EncodePrompt(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        return [.. tokenizer.Encode(prompt), .. separator];
    }

    /// <summary>
    /// Encodes one record. When it is longer than <see cref="MaxLength"/>, the prompt loses tokens from its start
    /// (down to half the budget; the text nearest the completion is kept), then the completion loses its end.
    /// </summary>
    public TokenizedExample Encode(PromptCompletion record, out bool truncated)
    {
        ArgumentNullException.ThrowIfNull(record);
        var prompt = tokenizer.Encode(record.Prompt);
        var completion = new List<int>(tokenizer.Encode(record.Completion)) { tokenizer.EndOfSequenceId };
        int promptKept = prompt.Count;
        int completionKept = completion.Count;
        truncated = prompt.Count + separator.Length + completion.Count > MaxLength;
        if (truncated)
        {
            promptKept = Math.Min(prompt.Count, Math.Max(MaxLength / 2, MaxLength - separator.Length - completion.Count));
            completionKept = Math.Min(completion.Count, MaxLength - separator.Length - promptKept);
        }

        int length = promptKept + separator.Length + completionKept;
        var ids = new int[length];
        var labels = new int[length];
        int at = 0;
        for (int i = prompt.Count - promptKept; i < prompt.Count; i++, at++)
        {
            ids[at] = prompt[i];
            labels[at] = Ignored;
        }
        foreach (var id in separator)
        {
            ids[at] = id;
            labels[at++] = Ignored;
        }
        for (int i = 0; i < completionKept; i++, at++)
        {
            ids[at] = completion[i];
            labels[at] = completion[i];
        }
        return new TokenizedExample(ids, labels);
    }

    /// <summary>Encodes every record and counts the truncated ones.</summary>
    public TokenizedDataset EncodeAll(IEnumerable<PromptCompletion> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        var examples = new List<TokenizedExample>();
        int truncatedCount = 0;
        foreach (var record in records)
        {
            examples.Add(Encode(record, out var truncated));
            if (truncated) truncatedCount++;
        }
        return new TokenizedDataset(examples, truncatedCount);
    }
}
