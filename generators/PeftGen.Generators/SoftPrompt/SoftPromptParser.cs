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
}
