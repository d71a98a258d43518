using System;
using System.Collections.Immutable;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace PeftGen.Generators.Model;

/// <summary>
/// Keeps each class's parse across compilations while nothing it depends on changed, so that an edit in an
/// unrelated file does not bind every attributed class again.
/// </summary>
/// <remarks>
/// <para><c>ForAttributeWithMetadataName</c> calls the parse for every attributed class in each new compilation, and
/// the parse binds each class's members, their attributes and the model's configuration constants in that
/// compilation: most of the generator's time after an edit that changed nothing it reads.</para>
/// <para>A parse is reused only when all of these hold, so reuse never changes the result:</para>
/// <list type="bullet">
/// <item>the class declaration is the same syntax node (its file is unchanged; an edit there makes a new tree);</item>
/// <item>every file that declares the class or a type containing it is the same tree (the parse's site
/// locations point into those files);</item>
/// <item>every file of the compilation declares what it declared before (<see cref="TreeShape"/>: a change inside
/// a method body cannot change a symbol or a constant another file reads), the references and the options are the
/// same objects, and the assembly name is the same.</item>
/// </list>
/// <para>Entries are keyed weakly on the syntax node, so a class's entry goes when its tree goes. The cache belongs to
/// one generator instance; it holds specs (plain data) and the shapes of the compilation they were parsed in.</para>
/// </remarks>
internal sealed class ClassParseCache
{
    private readonly ConditionalWeakTable<SyntaxNode, Slot> models = new();
    private readonly ConditionalWeakTable<SyntaxNode, Slot> modules = new();
    private int parses;
    private int reuses;

    /// <summary>Parses run (for tests).</summary>
    public int Parses => Volatile.Read(ref parses);

    /// <summary>Parses reused (for tests).</summary>
    public int Reuses => Volatile.Read(ref reuses);

    public ParsedClass GetOrParseModel(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken)
        => GetOrParse(models, context, ClassParser.ParseModel, cancellationToken)!;

    public ParsedClass? GetOrParseModule(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken)
        => GetOrParse(modules, context, ClassParser.ParseModule, cancellationToken);

    private ParsedClass? GetOrParse(ConditionalWeakTable<SyntaxNode, Slot> table, GeneratorAttributeSyntaxContext context,
        Func<GeneratorAttributeSyntaxContext, CancellationToken, ParsedClass?> parse, CancellationToken cancellationToken)
    {
        var shape = CompilationShape.Of(context.SemanticModel.Compilation);
        var declaringTrees = DeclaringTrees(context.TargetSymbol);
        var slot = table.GetValue(context.TargetNode, static _ => new Slot());
        var entry = slot.Entry;
        if (entry is not null && entry.DeclaringTrees.SequenceEqual(declaringTrees) && entry.Shape.SameAs(shape, cancellationToken))
        {
            // Later reuses compare against this compilation, and older trees are let go.
            if (!ReferenceEquals(entry.Shape, shape)) slot.Entry = entry with { Shape = shape };
            Interlocked.Increment(ref reuses);
            return entry.Spec;
        }

        var spec = parse(context, cancellationToken);
        slot.Entry = new Entry(spec, shape, declaringTrees);
        Interlocked.Increment(ref parses);
        return spec;
    }

    /// <summary>Every tree declaring the type or a type that contains it, as identity-compared shapes.</summary>
    private static ImmutableArray<TreeShape> DeclaringTrees(ISymbol type)
    {
        var trees = ImmutableArray.CreateBuilder<TreeShape>();
        for (var current = type as INamedTypeSymbol; current is not null; current = current.ContainingType)
        {
            foreach (var reference in current.DeclaringSyntaxReferences) trees.Add(TreeShape.Of(reference.SyntaxTree));
        }
        return trees.ToImmutable();
    }

    /// <summary>The latest parse of one class declaration (replaced whole, so readers see a consistent entry).</summary>
    private sealed class Slot
    {
        private Entry? entry;

        public Entry? Entry
        {
            get => Volatile.Read(ref entry);
            set => Volatile.Write(ref entry, value);
        }
    }

    private sealed record Entry(ParsedClass? Spec, CompilationShape Shape, ImmutableArray<TreeShape> DeclaringTrees);
}
