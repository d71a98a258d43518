using System.Collections.Generic;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Lora;

/// <summary>Reads <c>[Lora]</c> attributes and checks the rules that need no model (rank, alpha, dropout, names).</summary>
internal static class LoraParser
{
    public const string AttributeName = "PeftGen.LoraAttribute";
    public const string NoLoraAttributeName = "PeftGen.NoLoraAttribute";

    public static EquatableArray<AdapterSpec> Parse(IEnumerable<AttributeReader> attributes, string owner, List<DiagnosticInfo> diagnostics)
    {
        var adapters = new List<AdapterSpec>();
        var names = new HashSet<string>(System.StringComparer.Ordinal);
        foreach (var attribute in attributes)
        {
            var adapter = new AdapterSpec(
                attribute.Named("Adapter", "default"),
                attribute.Named("Rank", 8),
                attribute.Named("Alpha", 8d),
                attribute.Named("Dropout", 0d),
                attribute.Named("UseRsLora", false),
                attribute.NamedStrings("Targets").ToEquatableArray(),
                attribute.NamedLocation("Rank"));

            var valid = true;
            if (adapter.Rank <= 0)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.RankNotPositive, attribute.NamedLocation("Rank"), adapter.Name, adapter.Rank));
                valid = false;
            }
            if (!(adapter.Alpha > 0))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.AlphaNotPositive, attribute.NamedLocation("Alpha"), adapter.Name, adapter.Alpha));
                valid = false;
            }
            if (!(adapter.Dropout >= 0 && adapter.Dropout < 1))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.DropoutOutOfRange, attribute.NamedLocation("Dropout"), adapter.Name, adapter.Dropout));
                valid = false;
            }
            if (adapter.Name.Length == 0 || adapter.Name.IndexOf('.') >= 0)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.BadAdapterName, attribute.NamedLocation("Adapter"), adapter.Name));
                valid = false;
            }
            else if (!names.Add(adapter.Name))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.DuplicateAdapter, attribute.HasNamed("Adapter") ? attribute.NamedLocation("Adapter") : attribute.Location, adapter.Name, owner));
                valid = false;
            }
            if (valid) adapters.Add(adapter);
        }
        return adapters.ToEquatableArray();
    }
}
