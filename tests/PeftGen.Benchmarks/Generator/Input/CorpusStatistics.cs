using System;
using System.Collections.Generic;
using System.Linq;

namespace GeneratorBench.Data;

/// <summary>Word and line counts of a training corpus; ordinary code that knows nothing of the model.</summary>
public sealed class CorpusStatistics
{
    private readonly Dictionary<string, int> _counts = new(StringComparer.Ordinal);

    /// <summary>Lines seen so far.</summary>
    public int Lines { get; private set; }

    /// <summary>Words seen so far.</summary>
    public long Words { get; private set; }

    /// <summary>Lines longer than this many characters are counted but their words are not.</summary>
    public int MaxLineLength { get; init; } = 4096;

    /// <summary>Counts the words of one line.</summary>
    public void Add(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        Lines++;
        if (line.Length > MaxLineLength) return;
        foreach (var word in line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
        {
            var key = word.Trim('.', ',', ';', ':', '!', '?', '"', '\'').ToLowerInvariant();
            if (key.Length == 0) continue;
            _counts[key] = _counts.TryGetValue(key, out var n) ? n + 1 : 1;
            Words++;
        }
    }

    /// <summary>The <paramref name="count"/> most frequent words, most frequent first, ties in ordinal order.</summary>
    public IReadOnlyList<KeyValuePair<string, int>> Top(int count)
        => _counts.OrderByDescending(p => p.Value).ThenBy(p => p.Key, StringComparer.Ordinal).Take(count).ToList();

    /// <summary>Distinct words over all words: a rough measure of how repetitive the corpus is.</summary>
    public double TypeTokenRatio => Words == 0 ? 0 : (double)_counts.Count / Words;

    /// <summary>A one-line summary for logs.</summary>
    public override string ToString()
        => FormattableString.Invariant($"{Lines} lines, {Words} words, {_counts.Count} distinct (ratio {TypeTokenRatio:F3})");
}
