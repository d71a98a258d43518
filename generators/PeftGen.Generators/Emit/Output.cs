using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Emit;

/// <summary>
/// The generator's outputs: source for every valid class, and the diagnostics of every step. Each is total: an
/// exception while writing one class becomes PEFT000 on that class instead of failing the generator, which would drop
/// the generated code of every model in the project.
/// </summary>
internal static class Output
{
    public static void Module(SourceProductionContext context, ClassSpec module)
    {
        if (module.IsValid) AddSource(context, module.Type, () => ClassEmitter.EmitModule(module));
    }

    public static void Model(SourceProductionContext context, ModelSpec model)
    {
        if (model.IsValid) AddSource(context, model.Root.Type, () => ClassEmitter.EmitModel(model));
    }

    public static void BlockDimensions(SourceProductionContext context, BlockDimensionsSpec block)
        => AddSource(context, block.Type, () => DimensionsEmitter.EmitBlock(block), block.Type.HintName.Replace(".Peft.g.cs", ".Peft.Dims.g.cs"));

    /// <remarks>A failure here is reported without a location: source outputs see specs, which hold none (the message names the class).</remarks>
    private static void AddSource(SourceProductionContext context, TypeHierarchy type, Func<string> emit, string? hintName = null)
    {
        string source;
        try
        {
            source = emit();
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            context.ReportDiagnostic(Failure(type.Name, exception, Location.None));
            return;
        }
        context.AddSource(hintName ?? type.HintName, SourceText.From(source, System.Text.Encoding.UTF8));
    }

    private static Diagnostic Failure(string typeName, Exception exception, Location location)
        => Diagnostic.Create(DiagnosticDescriptors.GeneratorFailure, location, typeName, exception.GetType().Name + ": " + exception.Message);

    /// <summary>Every diagnostic once (a block reached twice by one model reports once).</summary>
    public static EquatableArray<DiagnosticInfo> Flatten(params ImmutableArray<EquatableArray<DiagnosticInfo>>[] groups)
        => groups.SelectMany(g => g).SelectMany(d => d).Distinct().ToEquatableArray();

    /// <summary>Every site recorded by every class's parse, for <see cref="Report"/>.</summary>
    public static EquatableArray<SiteLocation> FlattenSites(params ImmutableArray<EquatableArray<SiteLocation>>[] groups)
        => groups.SelectMany(g => g).SelectMany(s => s).ToEquatableArray();

    /// <summary>
    /// Reports diagnostics at their sites' locations, on the compilation's syntax trees found by path (elsewhere by path
    /// and span).
    /// </summary>
    public static void Report(SourceProductionContext context, EquatableArray<DiagnosticInfo> diagnostics, EquatableArray<SiteLocation> sites, Compilation compilation)
    {
        if (diagnostics.Count == 0) return;
        var locations = new Dictionary<string, LocationInfo>(StringComparer.Ordinal);
        foreach (var site in sites) locations[site.Key] = site.Location;
        var trees = new Dictionary<string, SyntaxTree>(StringComparer.Ordinal);
        foreach (var tree in compilation.SyntaxTrees) trees[tree.FilePath] = tree;
        foreach (var diagnostic in diagnostics)
        {
            var location = diagnostic.Site is { } site && locations.TryGetValue(site.Key, out var info)
                ? trees.TryGetValue(info.FilePath, out var tree) && info.TextSpan.End <= tree.Length
                    ? Location.Create(tree, info.TextSpan)
                    : info.ToLocation()
                : Location.None;
            Diagnostic reported;
            try
            {
                reported = diagnostic.ToDiagnostic(location);
                // Formatting is lazy; format now so that a bad argument list fails here, inside the guard.
                _ = reported.GetMessage(System.Globalization.CultureInfo.InvariantCulture);
            }
            catch (Exception exception) when (exception is not OperationCanceledException)
            {
                reported = Failure("diagnostic " + diagnostic.Id, exception, location);
            }
            context.ReportDiagnostic(reported);
        }
    }
}
