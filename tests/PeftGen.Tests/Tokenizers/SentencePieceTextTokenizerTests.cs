using System;
using System.Text.Json.Nodes;
using PeftGen.Formats;
using PeftGen.Tokenizers;
using Xunit;
using static PeftGen.Tests.Tokenizers.SentencePieceModelWriter;

namespace PeftGen.Tests.Tokenizers;

public sealed class SentencePieceTextTokenizerTests
{
    // Learned pieces from id 259. In a BPE model the pair whose union has the highest score merges first.
    private static readonly (string, float)[] Learned =
    [
        ("▁t", -1), // 259
        ("he", -2), // 260
        ("▁the", -3), // 261
        ("ll", -4), // 262
        ("▁", -10), // 263
        ("t", -10), // 264
        ("h", -10), // 265
        ("e", -10), // 266
        ("l", -10), // 267
        ("o", -10), // 268
    ];

    private const int Space = 263;

    private static void WriteLlamaLike(TokenizerFolder folder, JsonObject? config)
    {
        System.IO.File.WriteAllBytes(folder.File("tokenizer.model"), Write(LlamaLayout(Learned), ModelType.Bpe));
        if (config is not null) folder.Write("tokenizer_config.json", config.ToJsonString());
    }

    private static JsonObject LlamaConfig(bool addBos) => new()
    {
        ["add_bos_token"] = addBos,
        ["add_eos_token"] = false,
        ["bos_token"] = new JsonObject { ["__type"] = "AddedToken", ["content"] = "<s>", ["lstrip"] = false, ["special"] = true },
        ["eos_token"] = new JsonObject { ["__type"] = "AddedToken", ["content"] = "</s>", ["lstrip"] = false, ["special"] = true },
        ["unk_token"] = "<unk>",
        ["pad_token"] = null,
        ["added_tokens_decoder"] = new JsonObject
        {
            ["0"] = new JsonObject { ["content"] = "<unk>", ["special"] = true },
            ["1"] = new JsonObject { ["content"] = "<s>", ["special"] = true },
            ["2"] = new JsonObject { ["content"] = "</s>", ["special"] = true },
            ["269"] = new JsonObject { ["content"] = "<|im_start|>", ["special"] = true },
        },
    };

    [Fact]
    public void Bpe_pieces_merge_by_score_as_worked_by_hand()
    {
        using var folder = new TokenizerFolder();
        WriteLlamaLike(folder, LlamaConfig(addBos: true));
        var tokenizer = SentencePieceTextTokenizer.FromSentencePieceModel(folder.Path);

        // "the hello" -> "▁the▁hello": (▁ t) -1, then (h e) -2 twice, then (▁t he) -3, then (l l) -4:
        // [▁the, ▁, he, ll, o].
        Assert.Equal([261, Space, 260, 262, 268], tokenizer.Encode("the hello"));
        // Characters without a piece fall back to their UTF-8 bytes, <0xNN> = 3 + NN: "a" 61, "é" C3 A9.
        Assert.Equal([Space, 3 + 0x61, 3 + 0xC3, 3 + 0xA9], tokenizer.Encode("aé"));
        // Spaces are escaped to ▁ one for one (remove_extra_whitespaces is off, as in Llama's model).
        Assert.Equal([Space, 3 + 0x61, Space, Space, 3 + 0x62], tokenizer.Encode("a  b"));
    }

    [Theory]
    [InlineData("the hello")]
    [InlineData("a  b   c")]
    [InlineData("tabs\tand\n\nnewlines\r\n end")]
    [InlineData("naïve café, Straße, 日本語, emoji 🙂👍🏽")]
    public void Text_round_trips_through_pieces_and_bytes(string text)
    {
        using var folder = new TokenizerFolder();
        WriteLlamaLike(folder, LlamaConfig(addBos: true));
        var tokenizer = PretrainedTokenizer.FromFolder(folder.Path);

        Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text)));
        Assert.Equal(text, tokenizer.Decode(tokenizer.EncodeForModel(text)));
    }

    [Fact]
    public void Bos_is_added_only_when_the_config_says_so_and_decoding_drops_it()
    {
        using var folder = new TokenizerFolder();
        WriteLlamaLike(folder, LlamaConfig(addBos: true));
        var withBos = SentencePieceTextTokenizer.FromSentencePieceModel(folder.Path);
        Assert.Equal([1, 261], withBos.EncodeForModel("the"));
        Assert.Equal([261], withBos.Encode("the"));
        Assert.Equal(1, withBos.BeginningOfSequenceId);
        Assert.Equal(2, withBos.EndOfSequenceId);
        Assert.Equal("the", withBos.Decode([1, 261, 2]));

        WriteLlamaLike(folder, LlamaConfig(addBos: false));
        Assert.Equal([261], SentencePieceTextTokenizer.FromSentencePieceModel(folder.Path).EncodeForModel("the"));
    }

    [Fact]
    public void Without_a_config_bos_and_eos_are_the_model_own_and_nothing_is_added()
    {
        using var folder = new TokenizerFolder();
        WriteLlamaLike(folder, config: null);
        var tokenizer = SentencePieceTextTokenizer.FromSentencePieceModel(folder.Path);

        Assert.Equal([261], tokenizer.EncodeForModel("the"));
        Assert.Equal(2, tokenizer.EndOfSequenceId);
        Assert.Equal(1, tokenizer.BeginningOfSequenceId);
        Assert.Equal(269, tokenizer.VocabularySize);
        Assert.Equal("the", tokenizer.Decode([1, 261, 2]));
    }

    [Fact]
    public void Added_tokens_of_the_config_are_whole_ids_counted_in_the_vocabulary()
    {
        using var folder = new TokenizerFolder();
        WriteLlamaLike(folder, LlamaConfig(addBos: true));
        var tokenizer = SentencePieceTextTokenizer.FromSentencePieceModel(folder.Path);

        Assert.Equal([269], tokenizer.Encode("<|im_start|>"));
        Assert.Equal([261, 269], tokenizer.Encode("the<|im_start|>"));
        Assert.Equal("the", tokenizer.Decode([261, 269]));
        Assert.Equal(270, tokenizer.VocabularySize);
    }

    [Fact]
    public void A_unigram_model_takes_the_best_scoring_segmentation_counts_its_byte_pieces_and_refuses_bad_byte_ids()
    {
        using var folder = new TokenizerFolder();
        // "▁the" alone scores -1; any split of it scores -4 or less.
        var pieces = LlamaLayout(("▁the", -1), ("▁t", -2), ("he", -2), ("▁", -5), ("t", -5), ("h", -5), ("e", -5));
        System.IO.File.WriteAllBytes(folder.File("tokenizer.model"), Write(pieces, ModelType.Unigram));
        var tokenizer = SentencePieceTextTokenizer.FromSentencePieceModel(folder.Path);

        Assert.Equal([259], tokenizer.Encode("the"));
        Assert.Equal([259, 259], tokenizer.Encode("the the"));
        Assert.Equal(3 + 256 + 7, tokenizer.VocabularySize);
        Assert.Equal("the the", tokenizer.Decode(tokenizer.Encode("the the")));
        // Microsoft.ML.Tokenizers 2.0.1 gives a unigram model's byte pieces ids past the vocabulary ("é" as 453, 427):
        // refused rather than handed to a model.
        Assert.Contains("outside the vocabulary of 266", Assert.Throws<NotSupportedException>(() => tokenizer.Encode("é")).Message);
    }

    [Fact]
    public void A_malformed_model_names_its_file()
    {
        using var folder = new TokenizerFolder();
        System.IO.File.WriteAllBytes(folder.File("tokenizer.model"), [0x0A, 0x05, 0x01]);
        var truncated = Assert.Throws<PeftFormatException>(() => SentencePieceTextTokenizer.FromSentencePieceModel(folder.Path));
        Assert.Equal(folder.File("tokenizer.model"), truncated.FilePath);
        Assert.Contains("is not a SentencePiece model", truncated.Message);

        System.IO.File.WriteAllBytes(folder.File("tokenizer.model"), []);
        var empty = Assert.Throws<PeftFormatException>(() => SentencePieceTextTokenizer.FromSentencePieceModel(folder.Path));
        Assert.Equal(folder.File("tokenizer.model"), empty.FilePath);
    }
}
