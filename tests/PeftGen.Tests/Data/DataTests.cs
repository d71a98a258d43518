using System;
using System.IO;
using System.Linq;
using PeftGen.Data;
using Xunit;

namespace PeftGen.Tests.Data;

public sealed class TokenizerTests
{
    [Fact]
    public void Gpt2_bpe_loads_offline_and_gives_gpt2_ids()
    {
        var tokenizer = new Gpt2Tokenizer();
        // GPT-2's vocabulary: "Hello" = 15496, "Ġworld" = 995, "." = 13.
        Assert.Equal(new[] { 15496, 995, 13 }, tokenizer.Encode("Hello world."));
        Assert.Equal(50_256, tokenizer.EndOfSequenceId);
        var text = "The quick brown fox, naïvely: 12 jumps!";
        Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text).Append(tokenizer.EndOfSequenceId)));
    }
}

public sealed class ReaderTests
{
    [Fact]
    public void Json_lines_are_read_and_bad_lines_name_their_line()
    {
        var good = "{\"prompt\":\"dog\",\"completion\":\"a domestic animal\"}\n\n{\"completion\":\"x\",\"prompt\":\"p\",\"id\":3}\n";
        var records = TextReaders.ReadPromptCompletions(new StringReader(good));
        Assert.Equal(new[] { new PromptCompletion("dog", "a domestic animal"), new PromptCompletion("p", "x") }, records);

        var bad = "{\"prompt\":\"a\",\"completion\":\"b\"}\n{\"prompt\":\"a\"}\n";
        var error = Assert.Throws<FormatException>(() => TextReaders.ReadPromptCompletions(new StringReader(bad), "defs.jsonl"));
        Assert.StartsWith("defs.jsonl:2:", error.Message);
        Assert.Throws<FormatException>(() => TextReaders.ReadPromptCompletions(new StringReader("[1,2]\n")));
    }

    [Fact]
    public void Gzipped_files_are_read_through_gzip()
    {
        var folder = Directory.CreateTempSubdirectory("peftgen-data-");
        try
        {
            var jsonl = Path.Combine(folder.FullName, "d.jsonl.gz");
            var text = Path.Combine(folder.FullName, "t.txt.gz");
            WriteGzip(jsonl, "{\"prompt\":\"cat (noun)\",\"completion\":\"a feline\"}\n");
            WriteGzip(text, "one\n\ntwo\n");
            Assert.Equal(new[] { new PromptCompletion("cat (noun)", "a feline") }, TextReaders.ReadPromptCompletions(jsonl));
            Assert.Equal(new[] { "one", "two" }, TextReaders.ReadParagraphs(text));
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    private static void WriteGzip(string path, string content)
    {
        using var file = File.Create(path);
        using var gzip = new System.IO.Compression.GZipStream(file, System.IO.Compression.CompressionLevel.Fastest);
        gzip.Write(System.Text.Encoding.UTF8.GetBytes(content));
    }

    [Fact]
    public void Plain_text_gives_one_paragraph_per_non_blank_line()
    {
        Assert.Equal(new[] { "First one.", "Second." }, TextReaders.ReadParagraphs(new StringReader("  First one.  \n\n \nSecond.\n")));
    }
}

/// <summary>A tokenizer with one id per character ('a' = 1 … 'z' = 26, space = 27, newline = 28), EOS = 0.</summary>
internal sealed class LetterTokenizer : ITextTokenizer
{
    public int EndOfSequenceId => 0;
    public int VocabularySize => 29;
    public System.Collections.Generic.IReadOnlyList<int> Encode(string text) =>
        text.Select(c => c == ' ' ? 27 : c == '\n' ? 28 : c - 'a' + 1).ToArray();
    public string Decode(System.Collections.Generic.IEnumerable<int> ids) =>
        new(ids.Where(i => i != 0).Select(i => i == 27 ? ' ' : i == 28 ? '\n' : (char)('a' + i - 1)).ToArray());
}

public sealed class SupervisedExampleTests
{
    [Fact]
    public void Labels_cover_completion_and_eos_only()
    {
        var encoder = new SupervisedExamples(new LetterTokenizer(), maxLength: 32);
        var example = encoder.Encode(new PromptCompletion("ab", "cd"), out var truncated);
        Assert.False(truncated);
        // a b \n c d EOS
        Assert.Equal(new[] { 1, 2, 28, 3, 4, 0 }, example.InputIds);
        Assert.Equal(new[] { -100, -100, -100, 3, 4, 0 }, example.Labels);
        Assert.Equal(3, example.LabelledCount);
        Assert.Equal(new[] { 1, 2, 28 }, encoder.EncodePrompt("ab"));
    }

    [Fact]
    public void Long_records_are_truncated_and_counted()
    {
        var encoder = new SupervisedExamples(new LetterTokenizer(), maxLength: 8);
        var dataset = encoder.EncodeAll(new[]
        {
            new PromptCompletion("abcdefgh", "xy"),   // 8 + 1 + 2 + 1 = 12 > 8: prompt keeps its last 4 tokens
            new PromptCompletion("ab", "cdefghij"),   // 2 + 1 + 9 = 12 > 8: completion keeps its first 5 tokens
            new PromptCompletion("a", "b"),
        });
        Assert.Equal(2, dataset.TruncatedCount);
        Assert.Equal(new[] { 5, 6, 7, 8, 28, 24, 25, 0 }, dataset.Examples[0].InputIds);
        Assert.Equal(new[] { 1, 2, 28, 3, 4, 5, 6, 7 }, dataset.Examples[1].InputIds);
        Assert.Equal(new[] { -100, -100, -100, 3, 4, 5, 6, 7 }, dataset.Examples[1].Labels);
        Assert.All(dataset.Examples, e => Assert.True(e.InputIds.Length <= 8));
    }

    [Fact]
    public void Batches_are_right_padded_with_mask_and_ignored_labels()
    {
        var encoder = new SupervisedExamples(new LetterTokenizer(), maxLength: 32);
        var batch = TokenBatch.Pad(new[] { encoder.Encode(new("ab", "c"), out _), encoder.Encode(new("a", "b"), out _) }, padId: 0);
        Assert.Equal((2, 5), (batch.BatchSize, batch.SequenceLength));
        Assert.Equal(new long[] { 1, 2, 28, 3, 0, 1, 28, 2, 0, 0 }, batch.InputIds);
        Assert.Equal(new long[] { 1, 1, 1, 1, 1, 1, 1, 1, 1, 0 }, batch.AttentionMask);
        Assert.Equal(new long[] { -100, -100, -100, 3, 0, -100, -100, 2, 0, -100 }, batch.Labels);
        Assert.Equal(4, batch.LabelledTokens);
        Assert.Equal(9, batch.RealTokens);
        using var ids = batch.InputIdsTensor();
        Assert.Equal(new long[] { 2, 5 }, ids.shape);
    }

    [Fact]
    public void Shuffling_is_deterministic_by_seed_and_covers_every_example_each_epoch()
    {
        var encoder = new SupervisedExamples(new LetterTokenizer(), maxLength: 32);
        var examples = Enumerable.Range(0, 10).Select(i => encoder.Encode(new(new string((char)('a' + i), 1), "z"), out _)).ToArray();
        long[] FirstTokens(ExampleBatches source, long epoch) => Enumerable.Range(0, 4)
            .SelectMany(b => { var batch = source.GetBatch(epoch * 4 + b); return Enumerable.Range(0, batch.BatchSize).Select(r => batch.InputIds[r * batch.SequenceLength]); })
            .ToArray();
        var a = new ExampleBatches(examples, 3, 0, seed: 7);
        var b = new ExampleBatches(examples, 3, 0, seed: 7);
        var c = new ExampleBatches(examples, 3, 0, seed: 8);
        Assert.Equal(4, a.BatchesPerEpoch);
        Assert.Equal(FirstTokens(a, 0), FirstTokens(b, 0));
        Assert.Equal(FirstTokens(a, 1), FirstTokens(b, 1));
        Assert.NotEqual(FirstTokens(a, 0), FirstTokens(a, 1));
        Assert.NotEqual(FirstTokens(a, 0), FirstTokens(c, 0));
        Assert.Equal(Enumerable.Range(1, 10).Select(i => (long)i), FirstTokens(a, 1).Order());
    }

    [Fact]
    public void Pretraining_text_is_packed_into_full_blocks_with_eos_between_paragraphs()
    {
        var blocks = new PackedTextBlocks(new[] { "abc", "de", "fghij" }, new LetterTokenizer(), blockLength: 4, batchSize: 2, seed: 1, shuffle: false);
        // a b c EOS d e EOS f g h i j EOS = 13 tokens → 3 blocks of 4, tail dropped.
        Assert.Equal(13, blocks.TokenCount);
        Assert.Equal(3, blocks.BlockCount);
        var batch = blocks.GetBatch(0);
        Assert.Equal(new long[] { 1, 2, 3, 0, 4, 5, 0, 6 }, batch.InputIds);
        Assert.Equal(batch.InputIds, batch.Labels);
        Assert.Equal(6, batch.LabelledTokens);
    }
}
