using System;
using System.Linq;
using System.Text.Json.Nodes;
using PeftGen.Formats;
using PeftGen.Tokenizers;
using Xunit;

namespace PeftGen.Tests.Tokenizers;

public sealed class BpeTextTokenizerTests
{
    // Worked by hand from TinyBpe's merges. GPT-2's pattern splits "the hello world" into "the", " hello", " world";
    // "the": t h e -> (h e) -> [t, he] = [116, 257]; " hello": Ġ h e l l o -> (h e), (l l), (ll o) -> [Ġ, he, llo] =
    // [32, 257, 260]; " world": Ġ w o r l d -> (Ġ w) -> [261, 111, 114, 108, 100]; " the": (Ġ t), (h e), (Ġt he) -> [258].
    private static readonly int[] TheHelloWorld = [116, 257, 32, 257, 260, 261, 111, 114, 108, 100];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Tokenizer_json_gives_the_ids_worked_by_hand_with_merges_as_strings_or_pairs(bool mergesAsPairs)
    {
        using var folder = new TokenizerFolder();
        TinyBpe.WriteTokenizerJson(folder, mergesAsPairs);
        var tokenizer = BpeTextTokenizer.FromTokenizerJson(folder.Path);

        Assert.Equal(TheHelloWorld, tokenizer.Encode("the hello world"));
        Assert.Equal([258], tokenizer.Encode(" the"));
        // Bytes without a merge are their own ids: é is C3 A9, a newline 0A, a tab 09.
        Assert.Equal([0xC3, 0xA9, 0x0A, 0x09], tokenizer.Encode("é\n\t"));
    }

    [Fact]
    public void Vocab_json_and_merges_txt_give_the_same_ids()
    {
        using var folder = new TokenizerFolder();
        TinyBpe.WriteVocabAndMerges(folder);
        var tokenizer = BpeTextTokenizer.FromVocabAndMerges(folder.Path);

        Assert.Equal(TheHelloWorld, tokenizer.Encode("the hello world"));
        Assert.Equal([TinyBpe.ImStart, 258, TinyBpe.ImEnd], tokenizer.Encode("<|im_start|> the<|im_end|>"));
        Assert.Equal(TinyBpe.EndOfText, tokenizer.EndOfSequenceId);
        Assert.Equal(266, tokenizer.VocabularySize);
    }

    [Theory]
    [InlineData("the hello world")]
    [InlineData("  leading, trailing and   inner runs  ")]
    [InlineData("tabs\tand\n\nnewlines\r\n end")]
    [InlineData("naïve café, Straße, 日本語, Ελληνικά, emoji 🙂👍🏽")]
    [InlineData("")]
    public void Text_round_trips(string text)
    {
        using var folder = new TokenizerFolder();
        TinyBpe.WriteTokenizerJson(folder);
        var tokenizer = PretrainedTokenizer.FromFolder(folder.Path);

        Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text)));
    }

    [Fact]
    public void Added_tokens_are_whole_ids_and_decoding_drops_the_special_ones()
    {
        using var folder = new TokenizerFolder();
        TinyBpe.WriteTokenizerJson(folder);
        var tokenizer = BpeTextTokenizer.FromTokenizerJson(folder.Path);

        var ids = tokenizer.Encode("<|im_start|>the<tool> hello<|im_end|><|endoftext|>");
        Assert.Equal([TinyBpe.ImStart, 116, 257, TinyBpe.Tool, 32, 257, 260, TinyBpe.ImEnd, TinyBpe.EndOfText], ids);
        Assert.Equal("the<tool> hello", tokenizer.Decode(ids));
        Assert.Equal(TinyBpe.EndOfText, tokenizer.EndOfSequenceId);
        Assert.Equal(TinyBpe.EndOfText, tokenizer.PaddingId);
        Assert.Null(tokenizer.BeginningOfSequenceId);
        Assert.Equal(266, tokenizer.VocabularySize);
        Assert.Equal(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool>"], tokenizer.AddedTokens.Select(t => t.Content));
    }

    [Fact]
    public void Bos_comes_from_the_template_of_tokenizer_json_unless_the_config_says_otherwise()
    {
        using var folder = new TokenizerFolder();
        TinyBpe.WriteTokenizerJson(folder, postProcessor: TinyBpe.BosTemplate());
        var templated = BpeTextTokenizer.FromTokenizerJson(folder.Path);
        Assert.Equal([TinyBpe.EndOfText, 258], templated.EncodeForModel(" the"));
        Assert.Equal([258], templated.Encode(" the"));

        var config = TinyBpe.Config();
        config["add_bos_token"] = false;
        folder.Write("tokenizer_config.json", config.ToJsonString());
        Assert.Equal([258], BpeTextTokenizer.FromTokenizerJson(folder.Path).EncodeForModel(" the"));

        TinyBpe.WriteTokenizerJson(folder);
        Assert.Equal([258], BpeTextTokenizer.FromTokenizerJson(folder.Path).EncodeForModel(" the"));

        config = TinyBpe.Config();
        config["bos_token"] = new JsonObject { ["content"] = "<|im_start|>", ["special"] = true };
        config["add_bos_token"] = true;
        config["add_eos_token"] = true;
        folder.Write("tokenizer_config.json", config.ToJsonString());
        var configured = BpeTextTokenizer.FromTokenizerJson(folder.Path);
        Assert.Equal([TinyBpe.ImStart, 258, TinyBpe.EndOfText], configured.EncodeForModel(" the"));
        Assert.Equal(" the", configured.Decode(configured.EncodeForModel(" the")));
    }

    [Fact]
    public void A_split_pattern_of_the_pre_tokenizer_is_used()
    {
        using var folder = new TokenizerFolder();
        // Splitting at every character leaves nothing to merge: " the" stays Ġ t h e.
        folder.Write("tokenizer.json", TinyBpe.TokenizerJson(mergesAsPairs: true, splitPattern: ".").ToJsonString());
        folder.Write("tokenizer_config.json", TinyBpe.Config().ToJsonString());

        Assert.Equal([32, 116, 104, 101], BpeTextTokenizer.FromTokenizerJson(folder.Path).Encode(" the"));
    }

    [Fact]
    public void An_nfc_normalizer_composes_before_splitting_and_other_normalizers_are_refused()
    {
        using var folder = new TokenizerFolder();
        var json = TinyBpe.TokenizerJson(mergesAsPairs: true);
        folder.Write("tokenizer_config.json", TinyBpe.Config().ToJsonString());
        json["normalizer"] = new JsonObject { ["type"] = "NFC" };
        folder.Write("tokenizer.json", json.ToJsonString());
        // e + combining acute (65 CC 81) composes to é (C3 A9).
        Assert.Equal([0xC3, 0xA9], BpeTextTokenizer.FromTokenizerJson(folder.Path).Encode("e\u0301"));

        json["normalizer"] = new JsonObject { ["type"] = "Lowercase" };
        folder.Write("tokenizer.json", json.ToJsonString());
        Assert.Contains("the normalizer Lowercase is not one PeftGen reads", Assert.Throws<PeftFormatException>(() => BpeTextTokenizer.FromTokenizerJson(folder.Path)).Message);

        json["normalizer"] = null;
        json["pre_tokenizer"]!["add_prefix_space"] = true;
        folder.Write("tokenizer.json", json.ToJsonString());
        Assert.Contains("add_prefix_space", Assert.Throws<PeftFormatException>(() => BpeTextTokenizer.FromTokenizerJson(folder.Path)).Message);
    }

    [Fact]
    public void A_merge_naming_an_unknown_token_names_the_file_and_the_token()
    {
        using var folder = new TokenizerFolder();
        var json = TinyBpe.TokenizerJson(mergesAsPairs: false);
        json["model"]!["merges"]!.AsArray().Add("llo wor");
        folder.Write("tokenizer.json", json.ToJsonString());
        folder.Write("tokenizer_config.json", TinyBpe.Config().ToJsonString());

        var error = Assert.Throws<PeftFormatException>(() => BpeTextTokenizer.FromTokenizerJson(folder.Path));
        Assert.Equal(folder.File("tokenizer.json"), error.FilePath);
        Assert.Contains("merge 7 (\"llo wor\") names \"wor\"", error.Message);

        TinyBpe.WriteVocabAndMerges(folder);
        folder.Write("merges.txt", TinyBpe.MergesText() + "Ġ x\n");
        error = Assert.Throws<PeftFormatException>(() => BpeTextTokenizer.FromVocabAndMerges(folder.Path));
        Assert.Equal(folder.File("merges.txt"), error.FilePath);
        Assert.Contains("\"Ġx\", which is not in the vocabulary", error.Message);

        folder.Write("merges.txt", TinyBpe.MergesText() + "Ġ\n");
        error = Assert.Throws<PeftFormatException>(() => BpeTextTokenizer.FromVocabAndMerges(folder.Path));
        Assert.Contains("line 8 must be two tokens", error.Message);
    }

    [Fact]
    public void Malformed_files_name_themselves()
    {
        using var folder = new TokenizerFolder();
        folder.Write("tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}");
        var error = Assert.Throws<PeftFormatException>(() => BpeTextTokenizer.FromTokenizerJson(folder.Path));
        Assert.Equal(folder.File("tokenizer.json"), error.FilePath);
        Assert.Contains("is not valid JSON", error.Message);

        var json = TinyBpe.TokenizerJson(mergesAsPairs: true);
        json["model"]!["merges"]!.AsArray().Add(new JsonArray("a", "b", "c"));
        folder.Write("tokenizer.json", json.ToJsonString());
        error = Assert.Throws<PeftFormatException>(() => BpeTextTokenizer.FromTokenizerJson(folder.Path));
        Assert.Contains("merge 7 must be \"a b\" or [\"a\", \"b\"]", error.Message);

        json = TinyBpe.TokenizerJson(mergesAsPairs: true);
        json["model"]!["type"] = "WordPiece";
        folder.Write("tokenizer.json", json.ToJsonString());
        Assert.Contains("holds a WordPiece model", Assert.Throws<PeftFormatException>(() => BpeTextTokenizer.FromTokenizerJson(folder.Path)).Message);
    }

    [Fact]
    public void A_config_naming_a_token_the_vocabulary_lacks_names_the_config()
    {
        using var folder = new TokenizerFolder();
        TinyBpe.WriteTokenizerJson(folder);
        var config = TinyBpe.Config();
        config["eos_token"] = "</s>";
        folder.Write("tokenizer_config.json", config.ToJsonString());

        var error = Assert.Throws<PeftFormatException>(() => BpeTextTokenizer.FromTokenizerJson(folder.Path));
        Assert.Equal(folder.File("tokenizer_config.json"), error.FilePath);
        Assert.Contains("eos_token \"</s>\" is neither a token of the vocabulary nor an added token", error.Message);
    }

    [Fact]
    public void Without_a_config_the_only_special_token_is_eos_and_ids_outside_the_vocabulary_are_refused()
    {
        using var folder = new TokenizerFolder();
        var json = TinyBpe.TokenizerJson(mergesAsPairs: false);
        json["added_tokens"] = new JsonArray(new JsonObject { ["id"] = TinyBpe.EndOfText, ["content"] = "<|endoftext|>", ["special"] = true });
        folder.Write("tokenizer.json", json.ToJsonString());
        var tokenizer = BpeTextTokenizer.FromTokenizerJson(folder.Path);

        Assert.Equal(TinyBpe.EndOfText, tokenizer.EndOfSequenceId);
        Assert.Equal(263, tokenizer.VocabularySize);
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([263]));
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([-1]));
    }
}
