using System;
using System.Linq;
using PeftGen.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.SoftPrompt;

public sealed class SoftPromptInitTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(-3)]
    public void Config_rejects_no_virtual_tokens(int n)
        => Assert.Throws<ArgumentOutOfRangeException>(() => new SoftPromptConfig(n).Validate());

    [Fact]
    public void Config_rejects_text_init_without_text_or_tokenizer()
    {
        Assert.Throws<ArgumentException>(() => new SoftPromptConfig(4, SoftPromptInit.Text, "  ", PeftTokenizer.Gpt2).Validate());
        var noTokenizer = Assert.Throws<ArgumentException>(() => new SoftPromptConfig(4, SoftPromptInit.Text, "hi").Validate());
        Assert.Contains("tokenizer", noTokenizer.Message, StringComparison.OrdinalIgnoreCase);
        new SoftPromptConfig(4).Validate();
        new SoftPromptConfig(4, SoftPromptInit.Text, "hi", PeftTokenizer.Gpt2).Validate();
    }

    [Theory]
    [InlineData(7, new[] { 5, 6, 7, 5, 6, 7, 5 })]
    [InlineData(3, new[] { 5, 6, 7 })]
    [InlineData(2, new[] { 5, 6 })]
    [InlineData(6, new[] { 5, 6, 7, 5, 6, 7 })]
    public void Init_ids_repeat_or_truncate_as_peft(int n, int[] expected)
        => Assert.Equal(expected, PromptTokenizer.FitToLength(new[] { 5, 6, 7 }, n));

    [Fact]
    public void Gpt2_tokenizes_offline_without_special_tokens()
    {
        // GPT-2's vocabulary: "Hello" = 15496, " world" = 995 (Hugging Face's gpt2 tokenizer gives [15496, 995]).
        Assert.Equal(new[] { 15496, 995, 15496, 995, 15496 },
            global::PeftGen.SoftPrompt.InitTokenIds(new SoftPromptConfig(5, SoftPromptInit.Text, "Hello world", PeftTokenizer.Gpt2)));
    }

    [Theory]
    [InlineData("Classify if the tweet is a complaint or not:", 20)]
    [InlineData("Classify if the tweet is a complaint or not:", 4)]
    [InlineData("Summarize", 3)]
    public void Text_init_reproduces_the_token_embeddings_of_the_text(string text, int n)
    {
        using var scope = NewDisposeScope();
        using var embedding = new TokenEmbedding(50257, 8);
        var config = new SoftPromptConfig(n, SoftPromptInit.Text, text, PeftTokenizer.Gpt2);
        var prompt = embedding.AddSoftPrompt("text", config);

        var textIds = Microsoft.ML.Tokenizers.TiktokenTokenizer.CreateForModel("gpt2").EncodeToIds(text);
        Assert.True(textIds.Count > 0);
        var expectedIds = Enumerable.Range(0, n).Select(i => (long)textIds[i % textIds.Count]).ToArray();
        Tensor expected;
        using (AdapterContext.BaseOnly())
            expected = embedding.forward(tensor(expectedIds).unsqueeze(0)).squeeze(0);

        Assert.Equal(new long[] { n, 8 }, prompt.Embeddings.shape);
        Assert.Equal(TensorHash.Of(expected), TensorHash.Of(prompt.Embeddings));
        Assert.True(prompt.Embeddings.requires_grad);
        Assert.False(embedding.Weight.requires_grad);
    }

    [Fact]
    public void Text_init_refuses_a_vocabulary_smaller_than_the_tokenizer()
    {
        using var embedding = new TokenEmbedding(100, 4);
        var error = Assert.Throws<ArgumentException>(() =>
            embedding.AddSoftPrompt("t", new SoftPromptConfig(2, SoftPromptInit.Text, "Hello world", PeftTokenizer.Gpt2)));
        Assert.Contains("15496", error.Message);
        Assert.Empty(embedding.SoftPrompts);
    }

    [Fact]
    public void Sample_vocab_copies_random_rows_of_the_table()
    {
        using var scope = NewDisposeScope();
        using var embedding = new TokenEmbedding(50, 6);
        using var generator = new Generator(11);
        var prompt = embedding.AddSoftPrompt("s", new SoftPromptConfig(12, SoftPromptInit.SampleVocab), generator);

        var rows = Reference.ToDoubles(embedding.Weight);
        var values = Reference.ToDoubles(prompt.Embeddings);
        var matched = Enumerable.Range(0, 12).Select(i => Enumerable.Range(0, 50).Single(r =>
            Enumerable.Range(0, 6).All(c => rows[r * 6 + c] == values[i * 6 + c]))).ToList();
        Assert.True(matched.Distinct().Count() > 1, "Sampled rows should differ.");

        // The same seed samples the same ids: a run is repeatable.
        using var sameSeed = new Generator(11);
        var again = embedding.AddSoftPrompt("s2", new SoftPromptConfig(12, SoftPromptInit.SampleVocab), sameSeed);
        Assert.Equal(TensorHash.Of(prompt.Embeddings), TensorHash.Of(again.Embeddings));
    }

    [Fact]
    public void Random_init_is_standard_normal()
    {
        using var scope = NewDisposeScope();
        using var embedding = new TokenEmbedding(10, 64);
        var values = Reference.ToDoubles(embedding.AddSoftPrompt("r", new SoftPromptConfig(40)).Embeddings);
        var mean = values.Average();
        var std = Math.Sqrt(values.Select(v => (v - mean) * (v - mean)).Average());
        Assert.InRange(mean, -0.1, 0.1);
        Assert.InRange(std, 0.9, 1.1);
    }

    [Fact]
    public void Half_precision_tables_keep_the_prompt_in_float32_and_output_their_own_dtype()
    {
        using var scope = NewDisposeScope();
        using var embedding = new TokenEmbedding(20, 4, dtype: ScalarType.BFloat16);
        var prompt = embedding.AddSoftPrompt("p", new SoftPromptConfig(3, SoftPromptInit.SampleVocab));
        Assert.Equal(ScalarType.Float32, prompt.Embeddings.dtype);
        var output = embedding.forward(tensor(new long[] { 1, 2 }).unsqueeze(0));
        Assert.Equal(ScalarType.BFloat16, output.dtype);
        Assert.Equal(new long[] { 1, 5, 4 }, output.shape);
    }
}
