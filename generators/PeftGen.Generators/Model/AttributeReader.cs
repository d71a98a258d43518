using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using PeftGen.Generators.Diagnostics;

namespace PeftGen.Generators.Model;

/// <summary>Reads an attribute's arguments together with the syntax locations they were written at.</summary>
internal sealed class AttributeReader
{
    private readonly AttributeData _data;
    private readonly AttributeSyntax? _syntax;

    public AttributeReader(AttributeData data, CancellationToken cancellationToken)
    {
        _data = data;
        _syntax = data.ApplicationSyntaxReference?.GetSyntax(cancellationToken) as AttributeSyntax;
    }

    public string Name => _data.AttributeClass?.Name.Replace("Attribute", "") ?? "";

    public LocationInfo? Location => LocationInfo.From(_syntax);

    /// <summary>The location of a named argument (<c>Rank = 0</c>), else of the attribute.</summary>
    public LocationInfo? NamedLocation(string name)
        => LocationInfo.From(_syntax?.ArgumentList?.Arguments.FirstOrDefault(a => a.NameEquals?.Name.Identifier.Text == name)) ?? Location;

    /// <summary>The location of the <paramref name="index"/>-th constructor argument, else of the attribute.</summary>
    public LocationInfo? PositionalLocation(int index)
    {
        var positional = _syntax?.ArgumentList?.Arguments.Where(a => a.NameEquals is null && a.NameColon is null).ToList();
        return positional is not null && index < positional.Count ? LocationInfo.From(positional[index]) : Location;
    }

    public bool HasNamed(string name) => _data.NamedArguments.Any(a => a.Key == name);

    public T Named<T>(string name, T defaultValue)
    {
        foreach (var argument in _data.NamedArguments)
        {
            if (argument.Key == name && argument.Value.Value is T value) return value;
        }
        return defaultValue;
    }

    public IReadOnlyList<string> NamedStrings(string name)
    {
        foreach (var argument in _data.NamedArguments)
        {
            if (argument.Key == name && argument.Value.Kind == TypedConstantKind.Array)
                return argument.Value.Values.Select(v => v.Value as string ?? "").ToList();
        }
        return new string[0];
    }

    /// <summary>A constructor argument as text (integers are written in invariant culture).</summary>
    public string PositionalText(int index)
    {
        if (index >= _data.ConstructorArguments.Length) return "";
        return _data.ConstructorArguments[index].Value switch
        {
            string s => s,
            int i => i.ToString(CultureInfo.InvariantCulture),
            long l => l.ToString(CultureInfo.InvariantCulture),
            _ => "",
        };
    }

    public ITypeSymbol? PositionalType(int index)
        => index < _data.ConstructorArguments.Length ? _data.ConstructorArguments[index].Value as ITypeSymbol : null;

    public int PositionalInt(int index, int defaultValue)
        => index < _data.ConstructorArguments.Length && _data.ConstructorArguments[index].Value is int i ? i : defaultValue;
}
