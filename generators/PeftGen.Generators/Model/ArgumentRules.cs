using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using PeftGen.Generators.Diagnostics;

namespace PeftGen.Generators.Model;

/// <summary>
/// Rules every argument of every PeftGen attribute obeys, checked once per attribute before a feature reads it: no
/// argument and no array entry is <c>null</c> (a feature would otherwise fall back to a default without a word), and
/// an enum argument is one of its enum's declared values.
/// </summary>
internal static class ArgumentRules
{
    public static void Check(AttributeReader attribute, List<DiagnosticInfo> diagnostics)
    {
        var data = attribute.Data;
        var parameters = data.AttributeConstructor?.Parameters ?? default;
        for (var i = 0; i < data.ConstructorArguments.Length; i++)
        {
            var name = !parameters.IsDefault && i < parameters.Length ? "Argument '" + parameters[i].Name + "'" : "Argument " + (i + 1);
            if (data.ConstructorArguments[i].IsNull)
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NullArgument, attribute.PositionalSite(i), name, attribute.Name, "give a value"));
            else
                CheckEnum(attribute, data.ConstructorArguments[i], name, attribute.PositionalSite(i), diagnostics);
        }

        foreach (var argument in data.NamedArguments)
        {
            var value = argument.Value;
            if (value.IsNull)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NullArgument, attribute.NamedSite(argument.Key), argument.Key, attribute.Name,
                    "remove the argument to keep its default, or give a value"));
                continue;
            }
            if (value.Kind == TypedConstantKind.Array)
            {
                for (var i = 0; i < value.Values.Length; i++)
                {
                    if (value.Values[i].IsNull)
                    {
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NullArgument, attribute.NamedElementSite(argument.Key, i),
                            "Entry " + (i + 1) + " of " + argument.Key, attribute.Name, "remove the entry"));
                    }
                }
                continue;
            }
            CheckEnum(attribute, value, argument.Key, attribute.NamedSite(argument.Key), diagnostics);
        }
    }

    private static void CheckEnum(AttributeReader attribute, TypedConstant value, string name, SourceSite? site, List<DiagnosticInfo> diagnostics)
    {
        if (value.Kind != TypedConstantKind.Enum || value.Type is not INamedTypeSymbol enumType) return;
        var members = enumType.GetMembers().OfType<IFieldSymbol>().Where(f => f.HasConstantValue).ToList();
        if (members.Any(f => Equals(f.ConstantValue, value.Value))) return;
        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UndefinedEnumValue, site, name, value.Value ?? "?", attribute.Name,
            enumType.ToDisplayString(), string.Join(", ", members.Select(f => enumType.Name + "." + f.Name))));
    }
}
