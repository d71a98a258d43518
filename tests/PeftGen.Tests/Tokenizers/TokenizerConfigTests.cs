using System.Linq;
using PeftGen.Formats;
using PeftGen.Tokenizers;
using Xunit;

namespace PeftGen.Tests.Tokenizers;

public sealed class TokenizerConfigTests
{
    [Fact]
    public void Tokens_are_read_as_strings_or_added_token_objects()
    {
        using var folder = new TokenizerFolder();
        folder.Write("tokenizer_config.json", """
            {
              "add_bos_token": true,
              "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false, "special": true},
              "eos_token": "</s>",
              "pad_token": null,
              "added_tokens_decoder": {
                "2": {"content": "</s>", "special": true},
                "0": {"content": "<unk>", "special": true},
                "32000": {"content": "<tool>", "special": false}
              },
              "model_max_length": 4096
            }
            """);
        var config = TokenizerConfig.Read(folder.File("tokenizer_config.json"));

        Assert.Equal("<s>", config.BosToken);
        Assert.Equal("</s>", config.EosToken);
        Assert.Null(config.PadToken);
        Assert.Null(config.UnkToken);
        Assert.True(config.AddBosToken);
        Assert.Null(config.AddEosToken);
        Assert.Equal([new AddedToken(0, "<unk>", true), new AddedToken(2, "</s>", true), new AddedToken(32000, "<tool>", false)], config.AddedTokens.ToArray());
    }

    [Fact]
    public void The_special_tokens_map_fills_what_the_config_leaves_out()
    {
        using var folder = new TokenizerFolder();
        folder.Write("tokenizer_config.json", """{"eos_token": "<|im_end|>"}""");
        folder.Write("special_tokens_map.json", """{"eos_token": "<|endoftext|>", "pad_token": {"content": "<|endoftext|>"}}""");
        var config = TokenizerConfig.ReadFolder(folder.Path);

        Assert.Equal("<|im_end|>", config.EosToken);
        Assert.Equal("<|endoftext|>", config.PadToken);
        using var none = new TokenizerFolder();
        Assert.Same(TokenizerConfig.Empty, TokenizerConfig.ReadFolder(none.Path));
    }

    [Fact]
    public void Wrong_shapes_name_the_field()
    {
        using var folder = new TokenizerFolder();
        folder.Write("tokenizer_config.json", """{"added_tokens_decoder": {"x": {"content": "<a>"}}}""");
        Assert.Contains("field 'added_tokens_decoder.x'", Assert.Throws<PeftFormatException>(() => TokenizerConfig.Read(folder.File("tokenizer_config.json"))).Message);

        folder.Write("tokenizer_config.json", """{"add_bos_token": "yes"}""");
        Assert.Contains("field 'add_bos_token'", Assert.Throws<PeftFormatException>(() => TokenizerConfig.Read(folder.File("tokenizer_config.json"))).Message);

        folder.Write("tokenizer_config.json", """{"bos_token": {"special": true}}""");
        Assert.Contains("field 'bos_token'", Assert.Throws<PeftFormatException>(() => TokenizerConfig.Read(folder.File("tokenizer_config.json"))).Message);
    }
}
