using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using PeftGen.Generators.Diagnostics;

namespace PeftGen.Generators.Model;

/// <summary>Reads an attribute's arguments, and names the sites they were written at (recording their locations).</summary>
internal sealed class AttributeReader
{
    private readonly AttributeData data;
    private readonly AttributeSyntax? syntax;
    private readonly SiteRecorder sites;
    private readonly string key;

    /// <param name="key">The attribute's site: its owner's and its occurrence among attributes of its kind (<c>T.proj[Lora0]</c>).</param>
    public AttributeReader(AttributeData data, SiteRecorder sites, string key, CancellationToken cancellationToken)
    {
        this.data = data;
        this.sites = sites;
        this.key = key;
        syntax = data.ApplicationSyntaxReference?.GetSyntax(cancellationToken) as AttributeSyntax;
    }

    public string Name => data.AttributeClass?.Name.Replace("Attribute", "") ?? "";

    /// <summary>The attribute.</summary>
    public SourceSite? Site => sites.Record(key, LocationInfo.From(syntax));

    /// <summary>The attribute as Roslyn bound it (for the argument rules every attribute shares).</summary>
    public AttributeData Data => data;

    /// <summary>A named argument (<c>Rank = 0</c>), else the attribute.</summary>
    public SourceSite? NamedSite(string name) => sites.Record(key + ":" + name, LocationInfo.From(NamedSyntax(name))) ?? Site;

    /// <summary>
    /// Entry <paramref name="index"/> of an array-valued named argument (<c>Targets = ["q_proj", "v_proj"]</c> or
    /// <c>new[] { … }</c>), else the argument.
    /// </summary>
    public SourceSite? NamedElementSite(string name, int index)
    {
        var elements = NamedSyntax(name)?.Expression switch
        {
            CollectionExpressionSyntax collection => collection.Elements.Select(e => (SyntaxNode)e).ToList(),
            ImplicitArrayCreationExpressionSyntax implicitArray => implicitArray.Initializer.Expressions.Select(e => (SyntaxNode)e).ToList(),
            ArrayCreationExpressionSyntax { Initializer: { } initializer } => initializer.Expressions.Select(e => (SyntaxNode)e).ToList(),
            _ => null,
        };
        var element = elements is not null && index < elements.Count ? LocationInfo.From(elements[index]) : null;
        return sites.Record(key + ":" + name + "[" + index + "]", element) ?? NamedSite(name);
    }

    /// <summary>The <paramref name="index"/>-th constructor argument, else the attribute.</summary>
    public SourceSite? PositionalSite(int index)
    {
        var positional = syntax?.ArgumentList?.Arguments.Where(a => a.NameEquals is null && a.NameColon is null).ToList();
        var argument = positional is not null && index < positional.Count ? LocationInfo.From(positional[index]) : null;
        return sites.Record(key + ":" + index, argument) ?? Site;
    }

    private AttributeArgumentSyntax? NamedSyntax(string name)
        => syntax?.ArgumentList?.Arguments.FirstOrDefault(a => a.NameEquals?.Name.Identifier.Text == name);

    public bool HasNamed(string name) => data.NamedArguments.Any(a => a.Key == name);

    /// <summary>Whether a named argument is written as <c>null</c> (reported by <see cref="ArgumentRules"/>; never read as a default).</summary>
    public bool IsNull(string name) => data.NamedArguments.Any(a => a.Key == name && a.Value.IsNull);

    public T Named<T>(string name, T defaultValue)
    {
        foreach (var argument in data.NamedArguments)
        {
            if (argument.Key == name && argument.Value.Value is T value) return value;
        }
        return defaultValue;
    }

    /// <summary>
    /// The member name of an enum-valued named argument, read from the enum type itself (no list of names to keep in
    /// step with the runtime); <paramref name="defaultName"/> when the argument is absent. An undefined value is
    /// reported by <see cref="ArgumentRules"/>, so the class is not emitted whatever this returns.
    /// </summary>
    public string NamedEnum(string name, string defaultName)
    {
        foreach (var argument in data.NamedArguments)
        {
            if (argument.Key != name || argument.Value.Kind != TypedConstantKind.Enum) continue;
            var member = argument.Value.Type?.GetMembers().OfType<IFieldSymbol>().FirstOrDefault(f => f.HasConstantValue && Equals(f.ConstantValue, argument.Value.Value));
            return member?.Name ?? defaultName;
        }
        return defaultName;
    }

    /// <summary>The entries of a string-array named argument, null entries kept in place; empty when absent or null.</summary>
    public IReadOnlyList<string?> NamedStrings(string name)
    {
        foreach (var argument in data.NamedArguments)
        {
            if (argument.Key == name && argument.Value.Kind == TypedConstantKind.Array && !argument.Value.IsNull)
                return argument.Value.Values.Select(v => v.Value as string).ToList();
        }
        return new string?[0];
    }

    /// <summary>A constructor argument as text (integers are written in invariant culture).</summary>
    public string PositionalText(int index)
    {
        if (index >= data.ConstructorArguments.Length) return "";
        return data.ConstructorArguments[index].Value switch
        {
            string s => s,
            int i => i.ToString(CultureInfo.InvariantCulture),
            long l => l.ToString(CultureInfo.InvariantCulture),
            _ => "",
        };
    }

    public ITypeSymbol? PositionalType(int index)
        => index < data.ConstructorArguments.Length ? data.ConstructorArguments[index].Value as ITypeSymbol : null;

    public int PositionalInt(int index, int defaultValue)
        => index < data.ConstructorArguments.Length && data.ConstructorArguments[index].Value is int i ? i : defaultValue;
}
