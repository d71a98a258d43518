using System.Linq;
using Microsoft.CodeAnalysis;

namespace PeftGen.Generators.Model;

/// <summary>One type of a hierarchy: its keyword (<c>class</c>, <c>record</c>, <c>struct</c>), name and type parameters.</summary>
internal sealed record TypeLevel(string Keyword, string Name, string TypeParameters);

/// <summary>
/// Where a partial type lives: its namespace and every containing type from the outermost in, so the emitter can
/// reopen the same nesting (generic containing types included) and nothing lands in the wrong type.
/// </summary>
/// <param name="Namespace">The namespace, empty for the global namespace.</param>
/// <param name="Levels">Containing types, outermost first, ending with the type itself.</param>
/// <param name="MetadataName">The fully qualified metadata name, used for the hint name.</param>
/// <param name="FullyQualifiedName">The <c>global::</c>-qualified name, for references from generated code.</param>
internal sealed record TypeHierarchy(string Namespace, EquatableArray<TypeLevel> Levels, string MetadataName, string FullyQualifiedName)
{
    public string Name => Levels[Levels.Count - 1].Name;

    /// <summary>The hint name <c>{Namespace}.{Outer}.{Type}.Peft.g.cs</c>, with generic arity kept but made file-safe.</summary>
    public string HintName => MetadataName.Replace('`', '_').Replace('+', '.') + ".Peft.g.cs";

    public static TypeHierarchy From(INamedTypeSymbol type)
    {
        var levels = new System.Collections.Generic.List<TypeLevel>();
        for (var current = type; current is not null; current = current.ContainingType)
        {
            var keyword = current.IsRecord
                ? (current.IsValueType ? "record struct" : "record")
                : current.TypeKind == TypeKind.Struct ? "struct" : current.TypeKind == TypeKind.Interface ? "interface" : "class";
            var typeParameters = current.TypeParameters.Length == 0
                ? ""
                : "<" + string.Join(", ", current.TypeParameters.Select(p => p.Name)) + ">";
            levels.Insert(0, new TypeLevel(keyword, current.Name, typeParameters));
        }

        var ns = type.ContainingNamespace.IsGlobalNamespace ? "" : type.ContainingNamespace.ToDisplayString();
        var metadataName = ns.Length == 0 ? MetadataPath(type) : ns + "." + MetadataPath(type);
        return new TypeHierarchy(ns, levels.ToEquatableArray(), metadataName, type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat));
    }

    private static string MetadataPath(INamedTypeSymbol type)
        => type.ContainingType is null ? type.MetadataName : MetadataPath(type.ContainingType) + "." + type.MetadataName;
}
