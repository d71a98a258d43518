using System;
using System.IO;
using System.Linq;
using PeftGen.Data;
using Xunit;

namespace PeftGen.Tests.Data;

public sealed class TrimmedVocabularyTests
{
    private static readonly string[] Corpus =
    [
        "The jury said it did find that the city's election was conducted.",
        "The jury further said in term-end presentments that the City Executive Committee deserves praise.",
        "a professional performer who tells jokes and performs comical acts",
    ];

    [Fact]
    public void Every_text_round_trips_exactly_including_tokens_outside_the_vocabulary()
    {
        var gpt2 = new Gpt2Tokenizer();
        var trimmed = TrimmedVocabularyTokenizer.Select(gpt2, Corpus, 300);
        // The corpus uses fewer distinct tokens than asked for: all of them are kept, besides the bytes and EOS.
        Assert.Equal(257 + Corpus.SelectMany(gpt2.Encode).Distinct().Count(id => gpt2.TokenBytes(id).Length > 1), trimmed.VocabularySize);
        foreach (var text in Corpus.Concat(["Zürich naïve — 東京 🙂 xylophonist's", "", "  \n\t", "supercalifragilistic"]))
        {
            var ids = trimmed.Encode(text);
            Assert.All(ids, id => Assert.InRange(id, 0, trimmed.VocabularySize - 1));
            Assert.Equal(text, trimmed.Decode(ids));
        }
    }

    [Fact]
    public void Frequent_tokens_stay_whole_and_rare_ones_are_spelled_in_bytes()
    {
        var gpt2 = new Gpt2Tokenizer();
        var trimmed = TrimmedVocabularyTokenizer.Select(gpt2, Corpus, 300);
        // " jury" occurs twice in the corpus: one token, as in GPT-2.
        Assert.Single(trimmed.Encode(" jury"));
        Assert.Equal(gpt2.Encode(" jury"), trimmed.Encode(" jury").Select(id => trimmed.KeptIds[id]));
        // A word the corpus never uses falls back to one byte token per byte.
        Assert.Equal(" xylophone".Length, trimmed.Encode(" xylophone").Count);
        Assert.Equal(gpt2.EndOfSequenceId, trimmed.KeptIds[trimmed.EndOfSequenceId]);
        Assert.Equal("", trimmed.Decode([trimmed.EndOfSequenceId]));
    }

    [Fact]
    public void Saves_and_loads_the_same_vocabulary_and_refuses_broken_files()
    {
        var gpt2 = new Gpt2Tokenizer();
        var trimmed = TrimmedVocabularyTokenizer.Select(gpt2, Corpus, 280);
        var folder = Path.Combine(Path.GetTempPath(), "peftgen-vocab-" + Guid.NewGuid().ToString("N"));
        try
        {
            trimmed.Save(folder);
            var loaded = TrimmedVocabularyTokenizer.Load(folder, gpt2);
            Assert.Equal(trimmed.KeptIds, loaded.KeptIds);
            Assert.Equal(trimmed.Encode(Corpus[1]), loaded.Encode(Corpus[1]));

            var path = Path.Combine(folder, TrimmedVocabularyTokenizer.FileName);
            File.WriteAllText(path, File.ReadAllText(path).Replace("\"gpt2\"", "\"llama\""));
            Assert.Throws<InvalidDataException>(() => TrimmedVocabularyTokenizer.Load(folder, gpt2));
            File.WriteAllText(path, "{\"base_vocabulary\":\"gpt2\",\"size\":2,\"kept_ids\":[1,2]}");
            Assert.Contains("byte", Assert.Throws<InvalidDataException>(() => TrimmedVocabularyTokenizer.Load(folder, gpt2)).Message);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void Rejects_sizes_that_cannot_hold_the_byte_tokens_and_repeated_ids()
    {
        var gpt2 = new Gpt2Tokenizer();
        Assert.Throws<ArgumentOutOfRangeException>(() => TrimmedVocabularyTokenizer.Select(gpt2, Corpus, 100));
        var bytes = Enumerable.Range(0, 256).Select(b => gpt2.ByteToken((byte)b)).Append(gpt2.EndOfSequenceId).ToList();
        Assert.Throws<ArgumentException>(() => new TrimmedVocabularyTokenizer(gpt2, bytes.Append(bytes[0])));
        Assert.Throws<ArgumentException>(() => new TrimmedVocabularyTokenizer(gpt2, bytes.Skip(1)));
    }
}
