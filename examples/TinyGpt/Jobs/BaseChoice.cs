using System.IO;
using PeftGen.Data;

namespace TinyGpt.Jobs;

/// <summary>The pretrained base a run fine-tunes: its folder, tokenizer and recipe.</summary>
/// <param name="Folder">The base folder (GPT-2 layout).</param>
/// <param name="Tokenizer">The base's trimmed vocabulary.</param>
/// <param name="Recipe">How it was made and its held-out quality.</param>
/// <param name="Shipped">True for the base that ships with the example.</param>
public sealed record BaseChoice(string Folder, TrimmedVocabularyTokenizer Tokenizer, BaseRecipe Recipe, bool Shipped)
{
    /// <summary>
    /// An explicit base folder when given; else a base pretrained with the run's settings when the run asks for one
    /// (<c>--pretrain</c>, <c>--pretrain-steps</c>; cached and reused); else the shipped base. Digests are checked.
    /// </summary>
    /// <exception cref="UserInputException">The folder is not a complete, intact base.</exception>
    public static BaseChoice Resolve(RunContext context, string? explicitFolder = null)
    {
        string folder = explicitFolder ?? (context.Pretrain ? PretrainJob.Run(context)!.BaseFolder : BaseFolder.Shipped);
        if (!Directory.Exists(folder)) throw new UserInputException($"The base folder '{folder}' does not exist.");
        try
        {
            var (tokenizer, recipe) = BaseFolder.Open(folder);
            return new BaseChoice(folder, tokenizer, recipe, explicitFolder is null && !context.Pretrain);
        }
        catch (InvalidDataException e)
        {
            // Open names the missing or damaged file and how to restore it.
            throw new UserInputException(e.Message, e);
        }
    }
}
