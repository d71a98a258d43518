using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Text.Json;

namespace PeftGen.Data;

/// <summary>One supervised record: the model sees the prompt and learns to produce the completion.</summary>
/// <param name="Prompt">Input text (not trained on).</param>
/// <param name="Completion">Target text (the only tokens the loss counts).</param>
public sealed record PromptCompletion(string Prompt, string Completion);

/// <summary>Readers for the two text formats training uses.</summary>
public static class TextReaders
{
    /// <summary>
    /// Reads JSON Lines of <c>{"prompt": "...", "completion": "..."}</c> (other fields are ignored; blank lines are
    /// skipped). A line that is not such an object fails with its line number. A <c>.gz</c> file is decompressed.
    /// </summary>
    public static IReadOnlyList<PromptCompletion> ReadPromptCompletions(string path)
    {
        using var reader = OpenText(path);
        return ReadPromptCompletions(reader, path);
    }

    /// <summary>Reads JSON Lines records from a reader; <paramref name="sourceName"/> names it in errors.</summary>
    public static IReadOnlyList<PromptCompletion> ReadPromptCompletions(TextReader reader, string sourceName = "input")
    {
        ArgumentNullException.ThrowIfNull(reader);
        var records = new List<PromptCompletion>();
        int lineNumber = 0;
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                using var document = JsonDocument.Parse(line);
                var root = document.RootElement;
                if (root.ValueKind != JsonValueKind.Object) throw new FormatException("the line is not a JSON object");
                records.Add(new PromptCompletion(RequiredString(root, "prompt"), RequiredString(root, "completion")));
            }
            catch (Exception e) when (e is JsonException or FormatException)
            {
                throw new FormatException($"{sourceName}:{lineNumber}: expected {{\"prompt\": string, \"completion\": string}}: {e.Message}", e);
            }
        }
        return records;
    }

    /// <summary>
    /// Reads plain text with one paragraph per line; blank lines are skipped, lines are trimmed. A <c>.gz</c> file
    /// is decompressed.
    /// </summary>
    public static IReadOnlyList<string> ReadParagraphs(string path)
    {
        using var reader = OpenText(path);
        return ReadParagraphs(reader);
    }

    /// <summary>Reads paragraphs (one per non-blank line) from a reader.</summary>
    public static IReadOnlyList<string> ReadParagraphs(TextReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var paragraphs = new List<string>();
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            var trimmed = line.Trim();
            if (trimmed.Length > 0) paragraphs.Add(trimmed);
        }
        return paragraphs;
    }

    /// <summary>Opens a UTF-8 text file, through gzip when its name ends in <c>.gz</c>.</summary>
    public static StreamReader OpenText(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase)) return new StreamReader(path);
        var file = File.OpenRead(path);
        return new StreamReader(new GZipStream(file, CompressionMode.Decompress), leaveOpen: false);
    }

    private static string RequiredString(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind != JsonValueKind.String)
            throw new FormatException($"\"{name}\" is missing or not a string");
        return value.GetString()!;
    }
}
