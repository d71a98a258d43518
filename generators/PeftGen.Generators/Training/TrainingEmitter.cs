using System.Collections.Generic;
using System.Linq;
using System.Text;
using PeftGen.Generators.Emit;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Training;

/// <summary>
/// Emits a model's typed training surface: its adapters and soft prompts as named constants
/// (<c>MyModel.Adapters.Sql</c>, usable wherever a name is taken) and the <c>TrainingPlan</c> that
/// <c>PeftTraining.CreateTrainer</c> and <c>SaveTrained</c> follow (what trains, resolved here, at compile time).
/// </summary>
internal static class TrainingEmitter
{
    public const string AdaptersClass = "Adapters";
    public const string SoftPromptsClass = "SoftPrompts";
    public const string PlanInterface = "global::PeftGen.Training.IPeftTrainableModel";
    private const string PlanType = "global::PeftGen.Training.TrainingPlan";

    public static void Write(SourceWriter writer, ModelSpec model)
    {
        var adapters = Names(writer, AdaptersClass, "The LoRA adapters this model declares, by name: pass them wherever an adapter name is taken (<c>SetActiveAdapter</c>, <c>AdapterContext.Use</c>, <c>SaveAdapter</c>).",
            model.Accounting.Adapters.Select(a => a.Name), model.ActiveAdapter, "LoRA adapter", "the active adapter, which trains");
        var prompts = Names(writer, SoftPromptsClass, "The soft prompts this model declares, by name: pass them wherever a soft prompt name is taken (<c>AdapterContext.Use</c>, <c>SetActiveSoftPrompt</c>, <c>SaveSoftPrompt</c>).",
            model.Accounting.Prompts.Select(p => p.Name), model.ActivePrompt, "Soft prompt", "the active prompt, which trains");

        var adapter = model.ActiveAdapter is { } a ? AdaptersClass + "." + adapters[a] : "null";
        var prompt = model.ActivePrompt is { } p ? SoftPromptsClass + "." + prompts[p] : "null";
        writer.WriteLine("/// <summary>");
        writer.WriteLine("/// What this model trains, resolved at compile time: " + Describe(model) + ". <c>CreateTrainer</c> trains exactly this");
        writer.WriteLine("/// (<c>Accounting.TrainableParameters</c>) and <c>SaveTrained</c> saves it (both in <c>PeftGen.Training.PeftTraining</c>).");
        writer.WriteLine("/// </summary>");
        writer.WriteLine($"public static {PlanType} TrainingPlan {{ get; }} = new({adapter}, {prompt}, {Literals.Bool(model.Root.Root!.TrainAll)}, Accounting.TrainableParameters);");
        writer.WriteLine();
        writer.WriteLine($"{PlanType} {PlanInterface}.TrainingPlan => TrainingPlan;");
    }

    /// <summary>A PascalCase identifier for a name (<c>sql</c> → <c>Sql</c>, <c>tenant_a</c> → <c>TenantA</c>).</summary>
    public static string Identifier(string name)
    {
        var builder = new StringBuilder();
        var upper = true;
        foreach (var c in name)
        {
            if (!char.IsLetterOrDigit(c))
            {
                upper = true;
                continue;
            }
            builder.Append(upper ? char.ToUpperInvariant(c) : c);
            upper = false;
        }
        if (builder.Length == 0 || char.IsDigit(builder[0])) builder.Insert(0, '_');
        return builder.ToString();
    }

    /// <summary>Writes a static class of string constants; returns each name's identifier.</summary>
    private static Dictionary<string, string> Names(SourceWriter writer, string className, string summary, IEnumerable<string> names, string? active, string what, string activeNote)
    {
        var identifiers = new Dictionary<string, string>(System.StringComparer.Ordinal);
        var list = names.Distinct(System.StringComparer.Ordinal).ToList();
        if (list.Count == 0) return identifiers;
        // Names like "a-b" and "a_b" map to one identifier, and a member cannot share its class's name: later ones get a suffix.
        var used = new HashSet<string>(System.StringComparer.Ordinal) { className };
        writer.WriteLine($"/// <summary>{summary}</summary>");
        writer.OpenBlock($"public static class {className}");
        foreach (var name in list)
        {
            var identifier = Identifier(name);
            for (var i = 2; !used.Add(identifier); i++) identifier = Identifier(name) + "_" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            identifiers[name] = identifier;
            var note = name == active ? " (" + activeNote + ")" : "";
            writer.WriteLine($"/// <summary>{what} <c>{Literals.DocText(name)}</c>{note}.</summary>");
            writer.WriteLine($"public const string {identifier} = {Literals.String(name)};");
        }
        writer.CloseBlock();
        writer.WriteLine();
        return identifiers;
    }

    private static string Describe(ModelSpec model)
    {
        var parts = new List<string>();
        if (model.Root.Root!.TrainAll) parts.Add("every base weight");
        else if (model.Layers.Any(l => l.Trainable)) parts.Add("the [Trainable] members");
        if (model.ActiveAdapter is { } adapter) parts.Add("LoRA adapter <c>" + Literals.DocText(adapter) + "</c>");
        if (model.ActivePrompt is { } prompt) parts.Add("soft prompt <c>" + Literals.DocText(prompt) + "</c>");
        return parts.Count == 0 ? "nothing" : string.Join(", ", parts);
    }
}
