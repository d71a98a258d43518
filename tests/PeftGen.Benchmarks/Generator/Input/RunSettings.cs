using System;
using System.Collections.Generic;
using System.Globalization;

namespace GeneratorBench;

/// <summary>Settings of one fine-tuning run, read from <c>key=value</c> lines.</summary>
public sealed record RunSettings(int Steps, int BatchSize, int SequenceLength, double LearningRate, int Seed)
{
    /// <summary>The settings a run uses when the file names nothing.</summary>
    public static RunSettings Default { get; } = new(Steps: 1000, BatchSize: 8, SequenceLength: 512, LearningRate: 2e-4, Seed: 1234);

    /// <summary>Tokens one optimizer step sees.</summary>
    public long TokensPerStep => (long)BatchSize * SequenceLength;

    /// <summary>Reads <c>key=value</c> lines over <see cref="Default"/>; blank lines and <c>#</c> comments are skipped.</summary>
    public static RunSettings Parse(IEnumerable<string> lines)
    {
        var settings = Default;
        foreach (var raw in lines)
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var equals = line.IndexOf('=');
            if (equals <= 0) throw new FormatException($"Expected key=value, got '{line}'.");
            var key = line[..equals].Trim();
            var value = line[(equals + 1)..].Trim();
            settings = key switch
            {
                "steps" => settings with { Steps = PositiveInt(key, value) },
                "batch_size" => settings with { BatchSize = PositiveInt(key, value) },
                "sequence_length" => settings with { SequenceLength = PositiveInt(key, value) },
                "learning_rate" => settings with { LearningRate = double.Parse(value, CultureInfo.InvariantCulture) },
                "seed" => settings with { Seed = int.Parse(value, CultureInfo.InvariantCulture) },
                _ => throw new FormatException($"Unknown setting '{key}'."),
            };
        }
        return settings;
    }

    private static int PositiveInt(string key, string value)
    {
        var parsed = int.Parse(value, CultureInfo.InvariantCulture);
        return parsed > 0 ? parsed : throw new FormatException($"{key} must be positive, got {parsed}.");
    }
}
