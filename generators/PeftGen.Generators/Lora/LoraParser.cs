using System.Collections.Generic;
using System.Linq;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Lora;

/// <summary>Reads <c>[Lora]</c> attributes and checks the rules that need no model (rank, alpha, dropout, names, targets).</summary>
internal static class LoraParser
{
    public const string AttributeName = "PeftGen.LoraAttribute";
    public const string NoLoraAttributeName = "PeftGen.NoLoraAttribute";

    /// <param name="owner">The member or class the attributes are on, for messages.</param>
    /// <param name="onMember">Member-level attributes, where <c>Targets</c> has no meaning.</param>
    public static EquatableArray<AdapterSpec> Parse(IEnumerable<AttributeReader> attributes, string owner, bool onMember, List<DiagnosticInfo> diagnostics)
    {
        var adapters = new List<AdapterSpec>();
        var names = new HashSet<string>(System.StringComparer.Ordinal);
        foreach (var attribute in attributes)
        {
            // A null name or target list is reported by ArgumentRules; reading it as the default would add an adapter nobody wrote.
            if (attribute.IsNull("Adapter") || attribute.IsNull("Targets")) continue;
            var adapter = new AdapterSpec(
                attribute.Named("Adapter", SettingRules.DefaultName),
                attribute.Named("Rank", SettingRules.LoraRank),
                attribute.Named("Alpha", SettingRules.LoraAlpha),
                attribute.Named("Dropout", SettingRules.LoraDropout),
                attribute.Named("UseRsLora", false),
                ReadTargets(attribute, diagnostics),
                attribute.NamedSite("Rank"),
                attribute.Site);

            var valid = true;
            if (!SettingRules.IsValidRank(adapter.Rank))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.RankNotPositive, attribute.NamedSite("Rank"), adapter.Name, adapter.Rank));
                valid = false;
            }
            if (!SettingRules.IsValidAlpha(adapter.Alpha))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.AlphaNotPositive, attribute.NamedSite("Alpha"), adapter.Name, adapter.Alpha));
                valid = false;
            }
            if (!SettingRules.IsValidDropout(adapter.Dropout))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.DropoutOutOfRange, attribute.NamedSite("Dropout"), adapter.Name, adapter.Dropout));
                valid = false;
            }
            if (!SettingRules.IsValidModuleName(adapter.Name))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.BadAdapterName, attribute.NamedSite("Adapter"), adapter.Name));
                valid = false;
            }
            else if (!names.Add(adapter.Name))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.DuplicateAdapter, attribute.HasNamed("Adapter") ? attribute.NamedSite("Adapter") : attribute.Site, adapter.Name, owner));
                valid = false;
            }
            if (onMember && attribute.HasNamed("Targets"))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.TargetsOnMember, attribute.NamedSite("Targets"), owner));
                valid = false;
            }
            if (valid) adapters.Add(adapter);
        }
        return adapters.ToEquatableArray();
    }

    /// <summary>[Lora] and [NoLora] belong on [Linear] projections (or on a class); elsewhere each is PEFT105.</summary>
    /// <returns>Whether they are placed correctly (or absent).</returns>
    public static bool CheckPlacement(IEnumerable<AttributeReader> lora, AttributeReader? noLora, bool onProjection, string member, List<DiagnosticInfo> diagnostics)
    {
        if (onProjection) return true;
        var placed = true;
        foreach (var reader in noLora is null ? lora : lora.Concat(new[] { noLora }))
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.LoraOnNonProjection, reader.Site, reader.Name, member));
            placed = false;
        }
        return placed;
    }

    /// <summary>The targets with their sites; null entries (reported by ArgumentRules) are left out, repeats are reported.</summary>
    private static EquatableArray<LoraTarget> ReadTargets(AttributeReader attribute, List<DiagnosticInfo> diagnostics)
    {
        var entries = attribute.NamedStrings("Targets");
        var targets = new List<LoraTarget>();
        var seen = new HashSet<string>(System.StringComparer.Ordinal);
        for (var i = 0; i < entries.Count; i++)
        {
            if (entries[i] is not { } name) continue;
            var site = attribute.NamedElementSite("Targets", i);
            if (!seen.Add(name))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.DuplicateTarget, site, name, attribute.Named("Adapter", SettingRules.DefaultName)));
                continue;
            }
            targets.Add(new LoraTarget(name, site));
        }
        return targets.ToEquatableArray();
    }
}
