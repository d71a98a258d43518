using PeftGen.Tokenizers;
using PeftGen.Training;
using Xunit;

namespace PeftGen.Tests.Tokenizers;

public sealed class TrainedFolderTokenizerTests
{
    [Fact]
    public void The_trained_folder_tokenizer_comes_first_then_the_base_folder_one()
    {
        using var trained = new TokenizerFolder();
        using var baseFolder = new TokenizerFolder();
        Assert.Null(TrainedFolder.OpenTokenizer(trained.Path, baseFolder.Path));

        TinyBpe.WriteVocabAndMerges(baseFolder);
        Assert.IsType<BpeTextTokenizer>(TrainedFolder.OpenTokenizer(trained.Path, baseFolder.Path));
        Assert.Null(TrainedFolder.OpenTokenizer(trained.Path));

        System.IO.File.WriteAllBytes(trained.File("tokenizer.model"),
            SentencePieceModelWriter.Write(SentencePieceModelWriter.LlamaLayout(("▁", -1)), SentencePieceModelWriter.ModelType.Bpe));
        Assert.IsType<SentencePieceTextTokenizer>(TrainedFolder.OpenTokenizer(trained.Path, baseFolder.Path));
    }
}
