using System.IO;
using System.Text.Json.Nodes;
using PeftGen.Formats;
using PeftGen.Tokenizers;
using Xunit;
using static PeftGen.Tests.Tokenizers.SentencePieceModelWriter;

namespace PeftGen.Tests.Tokenizers;

public sealed class PretrainedTokenizerTests
{
    private static void WriteSentencePiece(TokenizerFolder folder) =>
        File.WriteAllBytes(folder.File("tokenizer.model"), Write(LlamaLayout(("▁t", -1), ("▁", -10), ("t", -10)), ModelType.Bpe));

    // Llama 2's tokenizer.json: a conversion of tokenizer.model, BPE with byte fallback and no byte-level step.
    private static void WriteSentencePieceConversion(TokenizerFolder folder) => folder.Write("tokenizer.json", new JsonObject
    {
        ["normalizer"] = new JsonObject { ["type"] = "Sequence", ["normalizers"] = new JsonArray(new JsonObject { ["type"] = "Prepend", ["prepend"] = "▁" }) },
        ["pre_tokenizer"] = null,
        ["decoder"] = new JsonObject { ["type"] = "Sequence", ["decoders"] = new JsonArray(new JsonObject { ["type"] = "ByteFallback" }) },
        ["model"] = new JsonObject { ["type"] = "BPE", ["byte_fallback"] = true, ["vocab"] = new JsonObject { ["▁t"] = 0 }, ["merges"] = new JsonArray() },
    }.ToJsonString());

    [Fact]
    public void The_folder_files_pick_the_kind()
    {
        using var json = new TokenizerFolder();
        TinyBpe.WriteTokenizerJson(json);
        Assert.IsType<BpeTextTokenizer>(PretrainedTokenizer.FromFolder(json.Path));

        using var pair = new TokenizerFolder();
        TinyBpe.WriteVocabAndMerges(pair);
        Assert.IsType<BpeTextTokenizer>(PretrainedTokenizer.FromFolder(pair.Path));

        using var sentencePiece = new TokenizerFolder();
        WriteSentencePiece(sentencePiece);
        Assert.IsType<SentencePieceTextTokenizer>(PretrainedTokenizer.FromFolder(sentencePiece.Path));

        // Llama 2 ships both: the SentencePiece original is read, not its conversion.
        WriteSentencePieceConversion(sentencePiece);
        Assert.IsType<SentencePieceTextTokenizer>(PretrainedTokenizer.FromFolder(sentencePiece.Path));
    }

    [Fact]
    public void Tokenizer_json_comes_before_vocab_and_merges()
    {
        using var folder = new TokenizerFolder();
        TinyBpe.WriteVocabAndMerges(folder);
        folder.Write("merges.txt", "#version: 0.2\n");   // no merges: " the" would be four byte tokens
        TinyBpe.WriteTokenizerJson(folder);

        Assert.Equal([258], PretrainedTokenizer.FromFolder(folder.Path).Encode(" the"));
    }

    [Fact]
    public void A_missing_folder_or_tokenizer_says_what_was_looked_for()
    {
        var missing = Path.Combine(Path.GetTempPath(), "peftgen-tok-missing-" + System.Guid.NewGuid().ToString("N"));
        var noFolder = Assert.Throws<DirectoryNotFoundException>(() => PretrainedTokenizer.FromFolder(missing));
        Assert.Contains(missing, noFolder.Message);

        using var empty = new TokenizerFolder();
        empty.Write("vocab.json", "{}");   // half of a pair is no tokenizer
        Assert.False(PretrainedTokenizer.HasTokenizerFiles(empty.Path));
        var none = Assert.Throws<FileNotFoundException>(() => PretrainedTokenizer.FromFolder(empty.Path));
        Assert.Equal(
            $"'{empty.Path}' holds no tokenizer: looked for tokenizer.json, vocab.json + merges.txt, and tokenizer.model; copy them from the model's repository.",
            none.Message);
    }

    [Fact]
    public void A_sentence_piece_conversion_without_its_model_asks_for_the_model()
    {
        using var folder = new TokenizerFolder();
        WriteSentencePieceConversion(folder);

        var error = Assert.Throws<PeftFormatException>(() => PretrainedTokenizer.FromFolder(folder.Path));
        Assert.Equal(folder.File("tokenizer.json"), error.FilePath);
        Assert.Contains("put the model's tokenizer.model beside it", error.Message);
    }

    [Fact]
    public void A_malformed_config_names_the_file_and_the_field()
    {
        using var folder = new TokenizerFolder();
        TinyBpe.WriteTokenizerJson(folder);
        folder.Write("tokenizer_config.json", "{\"eos_token\": 5}");
        var error = Assert.Throws<PeftFormatException>(() => PretrainedTokenizer.FromFolder(folder.Path));
        Assert.Equal(folder.File("tokenizer_config.json"), error.FilePath);
        Assert.Contains("field 'eos_token'", error.Message);

        folder.Write("tokenizer_config.json", "{\"eos_token\": \"<|endoftext|>\",");
        Assert.Contains("is not valid JSON", Assert.Throws<PeftFormatException>(() => PretrainedTokenizer.FromFolder(folder.Path)).Message);
    }
}
