using System;
using System.Collections.Generic;
using System.Linq;
using PeftGen.Generators.Accounting;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.SoftPrompt;

/// <summary>
/// A model's soft prompts against the model: each needs the model's token embedding, a distinct name, room in the
/// context, and for text initialisation a tokenizer whose ids fit the embedding. Yields what each prompt adds to the
/// accounting (<c>N × width</c>).
/// </summary>
internal static class SoftPromptResolution
{
    /// <summary><c>PeftTokenizer</c> members these rules read.</summary>
    private const string NoTokenizer = "None", Gpt2Tokenizer = "Gpt2";

    /// <summary>GPT-2's BPE vocabulary: text-initialised prompts look up its ids in the token embedding.</summary>
    private const long Gpt2Vocabulary = 50257;

    /// <param name="tokenEmbedding">The token embedding prompts attach to (in the model class or a block it reaches once), if any.</param>
    /// <param name="resolve">Evaluates a dimension against the model's configuration (reporting it when it does not resolve).</param>
    public static List<AccountedPrompt> Resolve(ClassSpec root, MemberSpec? tokenEmbedding, Func<DimensionSpec, string, long?> resolve, List<DiagnosticInfo> diagnostics)
    {
        var rootSpec = root.Root!;
        var prompts = new List<AccountedPrompt>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        var context = rootSpec.ContextLength is { } contextSpec ? resolve(contextSpec, "ContextLength") : null;
        foreach (var prompt in root.ClassSoftPrompts.Concat(root.Members.SelectMany(m => m.SoftPrompts)))
        {
            if (!names.Add(prompt.Name))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.DuplicatePrompt, prompt.Site, prompt.Name, root.Type.Name));
                continue;
            }
            if (tokenEmbedding is null)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.PromptWithoutTokenEmbedding, prompt.Site, prompt.Name, root.Type.Name));
                continue;
            }
            if (context is { } contextLength && prompt.VirtualTokens >= contextLength)
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.PromptTooLong, prompt.VirtualTokensSite, prompt.Name, prompt.VirtualTokens, root.Type.Name, contextLength));
            if (prompt.Init == SoftPromptSpec.TextInit && rootSpec.Tokenizer == NoTokenizer)
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.PromptTextWithoutTokenizer, prompt.InitSite, prompt.Name, root.Type.Name));
            if (prompt.Init == SoftPromptSpec.TextInit && rootSpec.Tokenizer == Gpt2Tokenizer
                && resolve(tokenEmbedding.Dimensions[0], tokenEmbedding.Name) is { } rows && rows < Gpt2Vocabulary)
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.VocabularyTooSmall, prompt.InitSite, prompt.Name, "GPT-2", Gpt2Vocabulary, root.Type.Name, rows));
            var dim = resolve(tokenEmbedding.Dimensions[1], tokenEmbedding.Name) ?? 0;
            prompts.Add(new AccountedPrompt(prompt.Name, checked(prompt.VirtualTokens * dim)));
        }
        return prompts;
    }
}
