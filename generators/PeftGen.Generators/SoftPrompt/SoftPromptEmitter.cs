using System.Linq;
using PeftGen.Generators.Emit;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.SoftPrompt;

/// <summary>Emits the soft prompts of a model, attached to its token embedding.</summary>
internal static class SoftPromptEmitter
{
    public static void WriteSoftPrompts(SourceWriter writer, ClassSpec root, string tokenEmbeddingMember)
    {
        var embedding = root.Members.FirstOrDefault(m => m.Name == tokenEmbeddingMember);
        if (embedding is null) return;
        var tokenizer = RuntimeNames.Tokenizer(root.Root!.Tokenizer);
        var prompts = root.ClassSoftPrompts.Concat(root.Members.SelectMany(m => m.SoftPrompts)).ToList();
        foreach (var prompt in prompts)
        {
            writer.WriteLine($"{ClassEmitter.Field(embedding)}.AddSoftPrompt({Literals.String(prompt.Name)}, new global::PeftGen.SoftPromptConfig({Literals.Int(prompt.VirtualTokens)}, {RuntimeNames.SoftPromptInit(prompt.Init)}, {Literals.String(prompt.InitText)}, {tokenizer}));");
        }

        // The first prompt is active and trains; the others wait frozen until activated.
        foreach (var prompt in prompts.Skip(1))
            writer.WriteLine($"{ClassEmitter.Field(embedding)}.SetSoftPromptTrainable({Literals.String(prompt.Name)}, false);");
    }
}
