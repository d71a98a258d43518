using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Text;
using PeftGen.Generators;

namespace PeftGen.Generators.Tests;

/// <summary>Runs the generator over inline sources and compiles the result against TorchSharp and PeftGen.</summary>
internal static class TestHelpers
{
    public const string InputPath = "Input.cs";

    public static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.CSharp13);

    private static readonly Lazy<ImmutableArray<MetadataReference>> References = new(() =>
    {
        // The framework, TorchSharp and PeftGen as this test process loads them (its trusted platform assemblies).
        var paths = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator);
        return paths
            .Where(p => p.EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p))
            .ToImmutableArray();
    });

    public static CSharpCompilation CreateCompilation(params string[] sources) => CreateCompilation(Array.Empty<MetadataReference>(), sources);

    public static CSharpCompilation CreateCompilation(IEnumerable<MetadataReference> extraReferences, params string[] sources)
        => CSharpCompilation.Create(
            "PeftGenTestInput",
            sources.Select((s, i) => CSharpSyntaxTree.ParseText(s, ParseOptions, i == 0 ? InputPath : $"Input{i}.cs")),
            References.Value.Concat(extraReferences),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));

    /// <summary>
    /// Compiles <paramref name="source"/> as assembly <paramref name="assemblyName"/> (through the generator when
    /// <paramref name="generate"/>) and returns it as a metadata-only reference: an image, so its types have no syntax,
    /// as a package's or another project's do.
    /// </summary>
    public static MetadataReference Library(string assemblyName, string source, bool generate = true)
    {
        Compilation compilation = CSharpCompilation.Create(
            assemblyName,
            new[] { CSharpSyntaxTree.ParseText(source, ParseOptions, assemblyName + ".cs") },
            References.Value,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));
        if (generate) CreateDriver().RunGeneratorsAndUpdateCompilation(compilation, out compilation, out _);
        using var image = new MemoryStream();
        var emitted = compilation.Emit(image);
        if (!emitted.Success)
            throw new InvalidOperationException("The library does not compile:\n" + string.Join("\n", emitted.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error)));
        return MetadataReference.CreateFromImage(image.ToArray());
    }

    public static GeneratorResult Run(IEnumerable<MetadataReference> extraReferences, params string[] sources)
    {
        var compilation = CreateCompilation(extraReferences, sources);
        var driver = CreateDriver().RunGeneratorsAndUpdateCompilation(compilation, out var output, out var generatorDiagnostics);
        return new GeneratorResult(driver, compilation, output, generatorDiagnostics);
    }

    public static GeneratorDriver CreateDriver()
        => CSharpGeneratorDriver.Create(
            new[] { new PeftGenerator().AsSourceGenerator() },
            parseOptions: ParseOptions,
            driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));

    public static GeneratorResult Run(params string[] sources)
    {
        var compilation = CreateCompilation(sources);
        var driver = CreateDriver().RunGeneratorsAndUpdateCompilation(compilation, out var output, out var generatorDiagnostics);
        return new GeneratorResult(driver, compilation, output, generatorDiagnostics);
    }

    /// <summary>Removes <c>[|</c> and <c>|]</c> from <paramref name="marked"/> and returns the span they enclosed.</summary>
    public static (string Source, TextSpan Span) Unmark(string marked)
    {
        var start = marked.IndexOf("[|", StringComparison.Ordinal);
        var end = marked.IndexOf("|]", StringComparison.Ordinal);
        if (start < 0 || end < start) throw new ArgumentException("The source has no [| |] marker.", nameof(marked));
        var source = marked.Remove(end, 2).Remove(start, 2);
        return (source, TextSpan.FromBounds(start, end - 2));
    }
}

/// <summary>What one generator run produced.</summary>
internal sealed record GeneratorResult(GeneratorDriver Driver, CSharpCompilation Input, Compilation Output, ImmutableArray<Diagnostic> GeneratorDiagnostics)
{
    public GeneratorRunResult RunResult => Driver.GetRunResult().Results.Single();

    public IReadOnlyList<GeneratedSourceResult> Sources => RunResult.GeneratedSources;

    public string Source(string hintName) => Sources.Single(s => s.HintName == hintName).SourceText.ToString();

    /// <summary>Errors and warnings of the compilation with the generated code (the repository promotes warnings).</summary>
    public IReadOnlyList<Diagnostic> CompilationErrors()
        => Output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning).ToList();

    /// <summary>The value of a constant of the generated code, e.g. <c>Gpt2Small.Accounting.Summary</c>.</summary>
    public object? Constant(string typeMetadataName, string field)
    {
        var type = Output.GetTypeByMetadataName(typeMetadataName) ?? throw new InvalidOperationException($"No type {typeMetadataName} in the output.");
        var symbol = type.GetMembers(field).OfType<IFieldSymbol>().Single();
        return symbol.ConstantValue;
    }
}
