using System.Linq;
using PeftGen.Generators.Emit;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.SoftPrompt;

/// <summary>Emits the soft prompts of a model, attached to its token embedding (found by path among the model's layers).</summary>
internal static class SoftPromptEmitter
{
    public static void WriteSoftPrompts(SourceWriter writer, ClassSpec root, string tokenEmbeddingPath)
    {
        var prompts = root.ClassSoftPrompts.Concat(root.Members.SelectMany(m => m.SoftPrompts)).ToList();
        if (prompts.Count == 0 || tokenEmbeddingPath.Length == 0) return;
        var tokenizer = RuntimeNames.Tokenizer(root.Root!.Tokenizer);
        writer.WriteLine($"var tokenEmbedding = global::PeftGen.PeftLayers.Find<global::PeftGen.TokenEmbedding>(layers, {Literals.String(tokenEmbeddingPath)});");
        foreach (var prompt in prompts)
        {
            writer.WriteLine($"tokenEmbedding.AddSoftPrompt({Literals.String(prompt.Name)}, new global::PeftGen.SoftPromptConfig({Literals.Int(prompt.VirtualTokens)}, {RuntimeNames.SoftPromptInit(prompt.Init)}, {Literals.String(prompt.InitText)}, {tokenizer}));");
        }

        // The first prompt is active and trains; the others wait frozen until activated.
        foreach (var prompt in prompts.Skip(1))
            writer.WriteLine($"tokenEmbedding.SetSoftPromptTrainable({Literals.String(prompt.Name)}, false);");
    }
}
