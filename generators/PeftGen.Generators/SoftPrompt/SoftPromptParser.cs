using System.Collections.Generic;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.SoftPrompt;

/// <summary>Reads <c>[SoftPrompt]</c> attributes and checks what needs no model (length, name, init text).</summary>
internal static class SoftPromptParser
{
    public const string AttributeName = "PeftGen.SoftPromptAttribute";

    public static EquatableArray<SoftPromptSpec> Parse(IEnumerable<AttributeReader> attributes, List<DiagnosticInfo> diagnostics)
    {
        var prompts = new List<SoftPromptSpec>();
        foreach (var attribute in attributes)
        {
            // A null name or text is reported by ArgumentRules; reading it as the default would add a prompt nobody wrote.
            if (attribute.IsNull("Name") || attribute.IsNull("InitText")) continue;
            var prompt = new SoftPromptSpec(
                attribute.Named("Name", SettingRules.DefaultName),
                attribute.PositionalInt(0, 0),
                attribute.NamedEnum("Init", SettingRules.DefaultSoftPromptInit),
                attribute.Named("InitText", ""),
                attribute.Site,
                attribute.PositionalSite(0),
                attribute.NamedSite("Init"));
            var valid = true;
            if (!SettingRules.IsValidVirtualTokens(prompt.VirtualTokens))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.PromptLengthNotPositive, prompt.VirtualTokensSite, prompt.Name, prompt.VirtualTokens));
                valid = false;
            }
            if (!SettingRules.IsValidModuleName(prompt.Name))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.BadPromptName, attribute.NamedSite("Name"), prompt.Name));
                valid = false;
            }
            if (prompt.Init == SoftPromptSpec.TextInit && string.IsNullOrWhiteSpace(prompt.InitText))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.PromptTextMissing, attribute.HasNamed("InitText") ? attribute.NamedSite("InitText") : attribute.NamedSite("Init"), prompt.Name));
                valid = false;
            }
            if (valid) prompts.Add(prompt);
        }
        return prompts.ToEquatableArray();
    }

    /// <summary>
    /// [SoftPrompt] belongs on the model class or on the model class's token embedding member; elsewhere each is
    /// PEFT303 (a block's prompts would have no model to attach to).
    /// </summary>
    /// <param name="onModel">The attributes are on the model class, or on its token embedding member.</param>
    /// <param name="owner">The class the attributes are in, for the message.</param>
    /// <returns>Whether they are placed correctly (or absent).</returns>
    public static bool CheckPlacement(IReadOnlyList<AttributeReader> attributes, bool onModel, string owner, List<DiagnosticInfo> diagnostics)
    {
        if (onModel) return true;
        foreach (var attribute in attributes)
        {
            var name = attribute.IsNull("Name") ? "null" : attribute.Named("Name", SettingRules.DefaultName);
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.PromptWithoutTokenEmbedding, attribute.Site, name, owner));
        }
        return attributes.Count == 0;
    }
}
