using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Emit;

/// <summary>The generator's outputs: source for every valid class, and the diagnostics of every step.</summary>
internal static class Output
{
    public static void Module(SourceProductionContext context, ClassSpec module)
    {
        if (module.IsValid) context.AddSource(module.Type.HintName, SourceText.From(ClassEmitter.EmitModule(module), System.Text.Encoding.UTF8));
    }

    public static void Model(SourceProductionContext context, ModelSpec model)
    {
        if (model.IsValid) context.AddSource(model.Root.Type.HintName, SourceText.From(ClassEmitter.EmitModel(model), System.Text.Encoding.UTF8));
    }

    /// <summary>Every diagnostic once (a block reached twice by one model reports once).</summary>
    public static EquatableArray<DiagnosticInfo> Flatten(params ImmutableArray<EquatableArray<DiagnosticInfo>>[] groups)
        => groups.SelectMany(g => g).SelectMany(d => d).Distinct().ToEquatableArray();

    /// <summary>Reports diagnostics on the compilation's syntax trees, found by path; elsewhere by path and span.</summary>
    public static void Report(SourceProductionContext context, EquatableArray<DiagnosticInfo> diagnostics, Compilation compilation)
    {
        if (diagnostics.Count == 0) return;
        var trees = new Dictionary<string, SyntaxTree>(System.StringComparer.Ordinal);
        foreach (var tree in compilation.SyntaxTrees) trees[tree.FilePath] = tree;
        foreach (var diagnostic in diagnostics)
        {
            var location = diagnostic.Location is { } info
                ? trees.TryGetValue(info.FilePath, out var tree) && info.TextSpan.End <= tree.Length
                    ? Location.Create(tree, info.TextSpan)
                    : info.ToLocation()
                : Location.None;
            context.ReportDiagnostic(diagnostic.ToDiagnostic(location));
        }
    }
}
