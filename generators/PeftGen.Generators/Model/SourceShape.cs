using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace PeftGen.Generators.Model;

/// <summary>
/// One syntax tree's declarations, as a digest that ignores what no other file can see: the bodies of methods,
/// constructors, operators, accessors and expression-bodied members, plus trivia (whitespace, comments). Two versions
/// of a file with the same digest declare the same types, members, attributes, constants and usings, so every symbol
/// another file binds against them, and every constant value it reads, is the same.
/// </summary>
/// <remarks>
/// One instance per tree (trees are immutable and reused across compilations while their file is unchanged); the
/// digest is computed when first asked, which happens only for a tree that replaced another.
/// </remarks>
internal sealed class TreeShape
{
    private static readonly ConditionalWeakTable<SyntaxTree, TreeShape> Shapes = new();

    private readonly SyntaxTree tree;
    private byte[]? digest;

    private TreeShape(SyntaxTree tree) => this.tree = tree;

    public string FilePath => tree.FilePath;

    public static TreeShape Of(SyntaxTree tree) => Shapes.GetValue(tree, static t => new TreeShape(t));

    /// <summary>Whether this tree declares exactly what <paramref name="other"/> declares.</summary>
    public bool SameDeclarations(TreeShape other, CancellationToken cancellationToken)
    {
        if (ReferenceEquals(this, other)) return true;
        if (!string.Equals(FilePath, other.FilePath, StringComparison.Ordinal)) return false;
        var mine = Digest(cancellationToken);
        var theirs = other.Digest(cancellationToken);
        return mine.SequenceEqual(theirs);
    }

    private byte[] Digest(CancellationToken cancellationToken)
    {
        var digest = Volatile.Read(ref this.digest);
        if (digest is not null) return digest;
        digest = Compute(tree, cancellationToken);
        Volatile.Write(ref this.digest, digest);
        return digest;
    }

    private static byte[] Compute(SyntaxTree tree, CancellationToken cancellationToken)
    {
        var text = new StringBuilder();
        var options = tree.Options;
        text.Append(options.Kind).Append('\u0001').Append(options.DocumentationMode).Append('\u0001');
        if (options is CSharpParseOptions csharp) text.Append(csharp.LanguageVersion).Append('\u0001');
        foreach (var symbol in options.PreprocessorSymbolNames) text.Append(symbol).Append('\u0001');
        foreach (var feature in options.Features.OrderBy(f => f.Key, StringComparer.Ordinal)) text.Append(feature.Key).Append('=').Append(feature.Value).Append('\u0001');
        text.Append('\u0002');

        var root = tree.GetRoot(cancellationToken);
        foreach (var item in root.DescendantNodesAndTokens(static node => !IsBody(node)))
        {
            cancellationToken.ThrowIfCancellationRequested();
            // A body is skipped whole; a marker keeps "has a body" apart from "has none" (abstract, partial).
            if (item.IsToken) text.Append(item.AsToken().Text).Append('\u0001');
            else if (IsBody(item.AsNode()!)) text.Append("{…}\u0001");
        }
        // Directives anywhere (#nullable, #if, #define) can change how later declarations are read.
        for (var directive = root.GetFirstDirective(); directive is not null; directive = directive.GetNextDirective())
            text.Append(directive.ToString()).Append('\u0001');

        using var sha = SHA256.Create();
        return sha.ComputeHash(Encoding.UTF8.GetBytes(text.ToString()));
    }

    /// <summary>
    /// Executable code that nothing outside it can refer to: bodies, and the initializers of properties and of fields
    /// that are not constants (constants, enum values and parameter defaults are read by other code, so they stay).
    /// </summary>
    private static bool IsBody(SyntaxNode node)
        => node switch
        {
            BlockSyntax { Parent: BaseMethodDeclarationSyntax or AccessorDeclarationSyntax } => true,
            ArrowExpressionClauseSyntax { Parent: BaseMethodDeclarationSyntax or AccessorDeclarationSyntax or BasePropertyDeclarationSyntax } => true,
            EqualsValueClauseSyntax { Parent: PropertyDeclarationSyntax } => true,
            EqualsValueClauseSyntax { Parent: VariableDeclaratorSyntax { Parent: VariableDeclarationSyntax { Parent: FieldDeclarationSyntax field } } }
                => !field.Modifiers.Any(SyntaxKind.ConstKeyword),
            _ => false,
        };
}

/// <summary>
/// What a compilation offers a class's parse besides the class's own syntax: the declarations of every file, the
/// references, the options and the assembly name. Two snapshots that are <see cref="SameAs"/> each other bind every
/// declaration to the same symbols and every constant to the same value.
/// </summary>
internal sealed class CompilationShape
{
    private static readonly ConditionalWeakTable<Compilation, CompilationShape> Shapes = new();

    private readonly ImmutableArray<TreeShape> trees;
    private readonly ImmutableArray<MetadataReference> references;
    private readonly CompilationOptions options;
    private readonly string? assemblyName;

    private CompilationShape(Compilation compilation)
    {
        trees = compilation.SyntaxTrees.Select(TreeShape.Of).ToImmutableArray();
        references = compilation.References.ToImmutableArray();
        options = compilation.Options;
        assemblyName = compilation.AssemblyName;
    }

    public static CompilationShape Of(Compilation compilation) => Shapes.GetValue(compilation, static c => new CompilationShape(c));

    /// <summary>Whether a parse made against <paramref name="other"/> still holds here (conservative: false when unsure).</summary>
    public bool SameAs(CompilationShape other, CancellationToken cancellationToken)
    {
        if (ReferenceEquals(this, other)) return true;
        // Options and references are compared as objects: a project whose settings did not change keeps them.
        if (!ReferenceEquals(options, other.options) || !string.Equals(assemblyName, other.assemblyName, StringComparison.Ordinal)) return false;
        if (references.Length != other.references.Length || trees.Length != other.trees.Length) return false;
        for (var i = 0; i < references.Length; i++)
        {
            if (!ReferenceEquals(references[i], other.references[i])) return false;
        }
        for (var i = 0; i < trees.Length; i++)
        {
            if (!trees[i].SameDeclarations(other.trees[i], cancellationToken)) return false;
        }
        return true;
    }
}
