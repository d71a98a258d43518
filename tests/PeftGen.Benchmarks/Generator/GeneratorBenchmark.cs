using System.Collections.Immutable;
using System.Diagnostics;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Runtime.InteropServices;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Emit;
using Microsoft.CodeAnalysis.Text;
using PeftGen.Generators;

namespace PeftGen.Benchmarks.Generator;

/// <summary>
/// How many outputs of one incremental step had each run reason, over every timed unrelated edit. Cached: not run
/// again. Unchanged: run again, result equal to the previous one (so nothing after it runs). Modified, New, Removed:
/// a new result that the steps after it must process.
/// </summary>
/// <param name="Step">The tracking name of the step.</param>
/// <param name="Kind"><c>generator</c> (PeftGen's own named steps), <c>output</c> (a <c>RegisterSourceOutput</c>
/// node) or <c>roslyn</c> (the driver's inputs and the steps inside <c>ForAttributeWithMetadataName</c>).</param>
public sealed record StepReasons(string Step, string Kind, int Cached, int Unchanged, int Modified, int New, int Removed);

/// <summary>The generator's compile-time cost on a project with a 24-layer LoRA model (all times warm medians, ms).</summary>
/// <param name="SourceFiles">Hand-written files of the project (the model's two files and two unrelated ones).</param>
/// <param name="SourceLines">Their lines.</param>
/// <param name="GeneratedFiles">Files the generator adds.</param>
/// <param name="GeneratedLines">Their lines.</param>
/// <param name="AdaptedProjections">LoRA-adapted projection instances of one model (layers × projections per layer).</param>
/// <param name="Warmup">Untimed iterations before every timed series.</param>
/// <param name="Timed">Timed iterations per series.</param>
/// <param name="ColdCompileWithGeneratorMs">The first compile with the generator in this process: JIT of Roslyn and the generator included.</param>
/// <param name="ColdDriverFullRunMs">The driver's share of that first compile (the generator's and the driver's JIT included).</param>
/// <param name="CompileWithoutGeneratorMs">Parse, create the compilation and emit, with the generator's output supplied as ordinary source files.</param>
/// <param name="CompileWithGeneratorMs">Parse, create the compilation, run the generator on it, emit.</param>
/// <param name="GeneratorAddsMs">What the generator adds to a full build: the median of with minus without over the
/// iterations (each pair runs back to back, so a burst of load from other processes mostly falls on both).</param>
/// <param name="CompileWithoutGeneratorCpuMs">Process CPU time of the builds without the generator (all threads): less
/// sensitive than wall time to other processes on the machine.</param>
/// <param name="CompileWithGeneratorCpuMs">Process CPU time of the builds with the generator.</param>
/// <param name="GeneratorAddsCpuMs">The median of with minus without in process CPU time.</param>
/// <param name="DriverFullRunMs">The generator driver alone, first run on a fresh compilation (inside the with-generator builds).</param>
/// <param name="UnrelatedEditDriverMs">The same driver instance run again after a one-literal edit in an unrelated file.</param>
/// <param name="FloorEditDriverMs">The same edits with a generator that only finds the <c>[PeftModel]</c> and
/// <c>[PeftModule]</c> classes (<c>ForAttributeWithMetadataName</c>, name-only transform): the part of an edit that
/// Roslyn spends re-binding attributed classes in the new compilation, which any attribute-driven generator pays.</param>
/// <param name="MemberFloorEditDriverMs">The same edits with a generator that finds the same classes and reads what
/// PeftGen's parse must read of them (every property's type and attributes with their arguments), keeping a count:
/// what re-parsing them costs in a new compilation before any PeftGen logic.</param>
/// <param name="EditOutputUnchanged">Every edit left the generated files identical to the full run's.</param>
/// <param name="GeneratorStepsCached">Outputs of PeftGen's own steps, over the timed edits, that were not run again.</param>
/// <param name="GeneratorStepsUnchanged">Outputs of PeftGen's own steps run again with an equal result.</param>
/// <param name="GeneratorStepsRecomputed">Outputs of PeftGen's own steps with a new result (0 when incremental).</param>
/// <param name="OutputStepsCached">Source outputs, over the timed edits, that were not run again.</param>
/// <param name="OutputStepsUnchanged">Source outputs run again with an equal input.</param>
/// <param name="OutputStepsRecomputed">Source outputs run on a new input (0 when incremental).</param>
/// <param name="EditSteps">Run reasons per tracked step and source output, summed over the timed edits.</param>
public sealed record GeneratorMeasurement(
    int SourceFiles,
    int SourceLines,
    int GeneratedFiles,
    int GeneratedLines,
    int AdaptedProjections,
    int Warmup,
    int Timed,
    double ColdCompileWithGeneratorMs,
    double ColdDriverFullRunMs,
    double CompileWithoutGeneratorMs,
    double CompileWithGeneratorMs,
    double GeneratorAddsMs,
    double CompileWithoutGeneratorCpuMs,
    double CompileWithGeneratorCpuMs,
    double GeneratorAddsCpuMs,
    double DriverFullRunMs,
    double UnrelatedEditDriverMs,
    double FloorEditDriverMs,
    double MemberFloorEditDriverMs,
    bool EditOutputUnchanged,
    int GeneratorStepsCached,
    int GeneratorStepsUnchanged,
    int GeneratorStepsRecomputed,
    int OutputStepsCached,
    int OutputStepsUnchanged,
    int OutputStepsRecomputed,
    IReadOnlyList<StepReasons> EditSteps);

/// <summary>
/// Times PeftGen's source generator the way the compiler runs it, in-process through Roslyn: a full build of a
/// project with a 24-layer annotated model with and without the generator, and the incremental driver after an
/// unrelated edit. See docs/benchmarks.md.
/// </summary>
public static class GeneratorBenchmark
{
    /// <summary>The unrelated file that the edit series types into, and the literal it retypes.</summary>
    private const string EditedFile = "CorpusStatistics.cs";
    private const string EditedLiteral = "4096";

    /// <summary>Adapted projections of each 24-layer model: 7 per layer (q, k, v, o, gate, up, down).</summary>
    private const int ExpectedAdaptedProjections = 24 * 7;

    /// <summary>PeftGen's tracking names (generators/PeftGen.Generators/TrackingNames.cs, internal there).</summary>
    private static readonly string[] GeneratorSteps = ["ModelParses", "ModuleParses", "Models", "Modules", "AllModules", "ResolvedModels", "Diagnostics", "Sites"];

    private static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.CSharp13);

    // What `dotnet build -c Release` asks of the compiler, minus analyzers other than the generator.
    private static readonly CSharpCompilationOptions CompilationOptions = new(
        OutputKind.DynamicallyLinkedLibrary,
        optimizationLevel: OptimizationLevel.Release,
        nullableContextOptions: NullableContextOptions.Enable,
        deterministic: true);

    private static readonly EmitOptions PortablePdbEmitOptions = new(debugInformationFormat: DebugInformationFormat.PortablePdb);

    /// <summary>Runs every series: 5 warm-up + 15 timed iterations, or 2 + 3 when <paramref name="quick"/>.</summary>
    public static GeneratorMeasurement Run(bool quick)
    {
        int warmup = quick ? 2 : 5, timed = quick ? 3 : 15;
        var sources = InputSources();
        var references = References();

        var cold = CompileWithGenerator(sources, references);
        var generated = cold.Generated;
        if (generated.Length == 0) throw new InvalidOperationException("The generator produced no source for the benchmark project.");
        var generatedAsSource = sources.AddRange(generated);
        int adapted = AdaptedProjections(cold.Output);
        if (adapted != ExpectedAdaptedProjections)
            throw new InvalidOperationException($"Expected {ExpectedAdaptedProjections} LoRA-adapted projections in Decoder24Lora, found {adapted}.");

        // Interleaved so that load from other processes on the machine falls on both sides alike.
        var without = new List<Timing>();
        var with = new List<Timing>();
        var driver = new List<double>();
        for (int i = 0; i < warmup + timed; i++)
        {
            var plain = CompileWithoutGenerator(generatedAsSource, references);
            var generating = CompileWithGenerator(sources, references);
            if (i < warmup) continue;
            without.Add(plain);
            with.Add(generating.Time);
            driver.Add(generating.DriverMilliseconds);
        }

        var edits = UnrelatedEdits(new PeftGenerator(), sources, references, warmup, timed);
        var floor = UnrelatedEdits(new AttributeFloorGenerator(), sources, references, warmup, timed);
        var memberFloor = UnrelatedEdits(new MemberReadingFloorGenerator(), sources, references, warmup, timed);
        bool outputUnchanged = edits.Outputs.All(output => output.SequenceEqual(generated.Select(g => (g.Path, g.Text.ToString()))));
        var generatorSteps = edits.Steps.Where(s => s.Kind == "generator").ToList();
        var outputSteps = edits.Steps.Where(s => s.Kind == "output").ToList();
        if (generatorSteps.Count != GeneratorSteps.Length)
            throw new InvalidOperationException($"Expected PeftGen's steps {string.Join(", ", GeneratorSteps)} in the run (renamed in TrackingNames.cs?).");
        double Median(IEnumerable<Timing> timings, Func<Timing, double> value) => Stats.Median(timings.Select(value).ToList());
        double MedianAdded(Func<Timing, double> value) => Stats.Median(with.Zip(without, (w, o) => value(w) - value(o)).ToList());
        return new GeneratorMeasurement(
            sources.Length,
            sources.Sum(s => s.Text.Lines.Count),
            generated.Length,
            generated.Sum(s => s.Text.Lines.Count),
            adapted,
            warmup,
            timed,
            cold.Time.WallMilliseconds,
            cold.DriverMilliseconds,
            Median(without, t => t.WallMilliseconds),
            Median(with, t => t.WallMilliseconds),
            MedianAdded(t => t.WallMilliseconds),
            Median(without, t => t.CpuMilliseconds),
            Median(with, t => t.CpuMilliseconds),
            MedianAdded(t => t.CpuMilliseconds),
            Stats.Median(driver),
            Stats.Median(edits.DriverMilliseconds),
            Stats.Median(floor.DriverMilliseconds),
            Stats.Median(memberFloor.DriverMilliseconds),
            outputUnchanged,
            generatorSteps.Sum(s => s.Cached),
            generatorSteps.Sum(s => s.Unchanged),
            generatorSteps.Sum(s => s.Modified + s.New + s.Removed),
            outputSteps.Sum(s => s.Cached),
            outputSteps.Sum(s => s.Unchanged),
            outputSteps.Sum(s => s.Modified + s.New + s.Removed),
            edits.Steps);
    }

    private sealed record SourceFile(string Path, SourceText Text);

    private sealed record Timing(double WallMilliseconds, double CpuMilliseconds);

    private sealed record GeneratingBuild(Timing Time, double DriverMilliseconds, Compilation Output, ImmutableArray<SourceFile> Generated);

    private sealed record EditSeries(List<double> DriverMilliseconds, List<List<(string, string)>> Outputs, IReadOnlyList<StepReasons> Steps);

    /// <summary>Wall and process CPU time since <see cref="Start"/>.</summary>
    private sealed class Clock
    {
        private readonly Stopwatch wall = Stopwatch.StartNew();
        private readonly TimeSpan cpu = Environment.CpuUsage.TotalTime;

        public static Clock Start()
        {
            // Garbage left by the previous iteration is collected now, so that no iteration pays for another's.
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            return new Clock();
        }

        public TimeSpan Elapsed => wall.Elapsed;

        public Timing Stop() => new(wall.Elapsed.TotalMilliseconds, (Environment.CpuUsage.TotalTime - cpu).TotalMilliseconds);
    }

    private static Timing CompileWithoutGenerator(ImmutableArray<SourceFile> sources, ImmutableArray<MetadataReference> references)
    {
        var clock = Clock.Start();
        Emit(CreateCompilation(sources, references));
        return clock.Stop();
    }

    private static GeneratingBuild CompileWithGenerator(ImmutableArray<SourceFile> sources, ImmutableArray<MetadataReference> references)
    {
        var clock = Clock.Start();
        var compilation = CreateCompilation(sources, references);
        var driverStart = clock.Elapsed;
        var driver = CreateDriver(new PeftGenerator(), trackSteps: false).RunGeneratorsAndUpdateCompilation(compilation, out var output, out var diagnostics);
        var driverTime = clock.Elapsed - driverStart;
        Emit(output);
        var time = clock.Stop();

        var result = driver.GetRunResult().Results.Single();
        if (result.Exception is not null) throw new InvalidOperationException("The generator threw.", result.Exception);
        if (!diagnostics.IsEmpty) throw new InvalidOperationException("The generator reported: " + string.Join("; ", diagnostics));
        var generated = result.GeneratedSources.Select(s => new SourceFile(s.HintName, s.SourceText)).ToImmutableArray();
        return new GeneratingBuild(time, driverTime.TotalMilliseconds, output, generated);
    }

    /// <summary>
    /// Retypes one literal of an unrelated file per iteration (an incremental reparse, as the IDE does) and reruns the
    /// same tracked driver on the edited compilation; only the driver is timed.
    /// </summary>
    private static EditSeries UnrelatedEdits(IIncrementalGenerator generator, ImmutableArray<SourceFile> sources,
        ImmutableArray<MetadataReference> references, int warmup, int timed)
    {
        var compilation = CreateCompilation(sources, references);
        // Recording every step's inputs and outputs costs time of its own, more for a generator with more steps: the
        // timed driver records nothing, and a second driver fed the same compilations tells what each step did.
        var driver = CreateDriver(generator, trackSteps: false).RunGenerators(compilation);
        var tracked = CreateDriver(generator, trackSteps: true).RunGenerators(compilation);
        var tree = compilation.SyntaxTrees.Single(t => t.FilePath == EditedFile);
        int start = tree.GetText().ToString().IndexOf(EditedLiteral, StringComparison.Ordinal);
        if (start < 0) throw new InvalidOperationException($"{EditedFile} no longer contains {EditedLiteral}.");
        var literal = new TextSpan(start, EditedLiteral.Length);

        var milliseconds = new List<double>();
        var outputs = new List<List<(string, string)>>();
        var reasons = new Dictionary<(string Step, string Kind), int[]>();
        for (int i = 0; i < warmup + timed; i++)
        {
            var value = (4097 + i).ToString(System.Globalization.CultureInfo.InvariantCulture);
            var edited = tree.WithChangedText(tree.GetText().WithChanges(new TextChange(literal, value)));
            compilation = compilation.ReplaceSyntaxTree(tree, edited);
            tree = edited;
            literal = new TextSpan(literal.Start, value.Length);

            var clock = Clock.Start();
            driver = driver.RunGenerators(compilation);
            double ms = clock.Elapsed.TotalMilliseconds;
            tracked = tracked.RunGenerators(compilation);
            if (i < warmup) continue;

            milliseconds.Add(ms);
            var result = tracked.GetRunResult().Results.Single();
            outputs.Add(result.GeneratedSources.Select(s => (s.HintName, s.SourceText.ToString())).ToList());
            outputs.Add(driver.GetRunResult().Results.Single().GeneratedSources.Select(s => (s.HintName, s.SourceText.ToString())).ToList());
            // TrackedSteps also holds the source outputs' steps; TrackedOutputSteps tells which those are.
            Tally(reasons, result.TrackedSteps, step =>
                GeneratorSteps.Contains(step) ? "generator" : result.TrackedOutputSteps.ContainsKey(step) ? "output" : "roslyn");
        }

        var steps = reasons
            .OrderBy(r => r.Key.Kind, StringComparer.Ordinal).ThenBy(r => r.Key.Step, StringComparer.Ordinal)
            .Select(r => new StepReasons(r.Key.Step, r.Key.Kind, r.Value[0], r.Value[1], r.Value[2], r.Value[3], r.Value[4]))
            .ToList();
        return new EditSeries(milliseconds, outputs, steps);
    }

    private static void Tally(Dictionary<(string, string), int[]> reasons,
        ImmutableDictionary<string, ImmutableArray<IncrementalGeneratorRunStep>> steps, Func<string, string> kindOf)
    {
        foreach (var (name, runs) in steps)
        {
            var key = (name, kindOf(name));
            if (!reasons.TryGetValue(key, out var counts)) reasons[key] = counts = new int[5];
            foreach (var (_, reason) in runs.SelectMany(r => r.Outputs))
            {
                counts[reason switch
                {
                    IncrementalStepRunReason.Cached => 0,
                    IncrementalStepRunReason.Unchanged => 1,
                    IncrementalStepRunReason.Modified => 2,
                    IncrementalStepRunReason.New => 3,
                    _ => 4,
                }]++;
            }
        }
    }

    /// <summary>Instances of projections carrying an adapter, from the generated <c>Decoder24Lora.Accounting.Members</c> rows.</summary>
    private static int AdaptedProjections(Compilation output)
    {
        var accounting = output.GetTypeByMetadataName("GeneratorBench.Models.Decoder24Lora+Accounting")
            ?? throw new InvalidOperationException("The generator emitted no Decoder24Lora.Accounting.");
        var members = accounting.GetMembers("Members").Single().DeclaringSyntaxReferences.Single().GetSyntax();
        int adapted = 0;
        foreach (var row in members.DescendantNodes().OfType<ImplicitObjectCreationExpressionSyntax>())
        {
            // MemberParameters(Path, Kind, Instances, BaseParameters, AdapterParameters, TrainableParameters, WeightBytes)
            var arguments = row.ArgumentList.Arguments;
            long Number(int index) => long.Parse(arguments[index].ToString().TrimEnd('L'), System.Globalization.CultureInfo.InvariantCulture);
            if (Number(4) > 0) adapted += (int)Number(2);
        }
        return adapted;
    }

    private static CSharpCompilation CreateCompilation(ImmutableArray<SourceFile> sources, ImmutableArray<MetadataReference> references)
        => CSharpCompilation.Create(
            "GeneratorBench",
            sources.Select(s => CSharpSyntaxTree.ParseText(s.Text, ParseOptions, s.Path)),
            references,
            CompilationOptions);

    private static GeneratorDriver CreateDriver(IIncrementalGenerator generator, bool trackSteps)
        => CSharpGeneratorDriver.Create(
            [generator.AsSourceGenerator()],
            parseOptions: ParseOptions,
            driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: trackSteps));

    /// <summary>Emits the assembly and its portable PDB to memory; fails on any compile error.</summary>
    private static void Emit(Compilation compilation)
    {
        using var pe = new MemoryStream();
        using var pdb = new MemoryStream();
        var result = compilation.Emit(pe, pdb, options: PortablePdbEmitOptions);
        if (!result.Success)
        {
            var errors = result.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).Take(10);
            throw new InvalidOperationException("The benchmark project does not compile:\n" + string.Join("\n", errors));
        }
    }

    /// <summary>The hand-written project: the .cs files under Generator/Input, embedded in this assembly.</summary>
    private static ImmutableArray<SourceFile> InputSources()
    {
        const string prefix = "GeneratorInput/";
        var assembly = typeof(GeneratorBenchmark).Assembly;
        return assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(prefix, StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .Select(n =>
            {
                using var stream = assembly.GetManifestResourceStream(n)!;
                return new SourceFile(n[prefix.Length..], SourceText.From(stream, canBeEmbedded: true));
            })
            .ToImmutableArray();
    }

    /// <summary>
    /// What a project referencing the PeftGen package compiles against: the shared framework, and PeftGen with every
    /// non-framework assembly it needs (TorchSharp, the tokenizers, ...), from this process's trusted platform assemblies.
    /// Created once, as the compiler server keeps them between builds.
    /// </summary>
    private static ImmutableArray<MetadataReference> References()
    {
        var trusted = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => p.EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
            .DistinctBy(p => Path.GetFileNameWithoutExtension(p), StringComparer.OrdinalIgnoreCase)
            .ToDictionary(p => Path.GetFileNameWithoutExtension(p), StringComparer.OrdinalIgnoreCase);
        string framework = Path.GetFullPath(RuntimeEnvironment.GetRuntimeDirectory());
        var paths = trusted.Values.Where(p => Path.GetFullPath(p).StartsWith(framework, StringComparison.Ordinal)).ToHashSet();

        var pending = new Stack<string>([typeof(LoraLinear).Assembly.GetName().Name!]);
        while (pending.TryPop(out var name))
        {
            if (!trusted.TryGetValue(name, out var path) || !paths.Add(path)) continue;
            foreach (var dependency in ReferencedAssemblyNames(path)) pending.Push(dependency);
        }
        return paths.Order(StringComparer.Ordinal).Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToImmutableArray();
    }

    /// <summary>Names of the assemblies that <paramref name="path"/> references, read from its metadata without loading it.</summary>
    private static IEnumerable<string> ReferencedAssemblyNames(string path)
    {
        using var pe = new PEReader(File.OpenRead(path));
        var metadata = pe.GetMetadataReader();
        return metadata.AssemblyReferences.Select(h => metadata.GetString(metadata.GetAssemblyReference(h).Name)).ToList();
    }

    /// <summary>
    /// What any generator that reads these classes' members pays in a new compilation: it finds the classes PeftGen
    /// finds, binds every property's attributes and type and the attributes' arguments, as PeftGen's parse must, and
    /// keeps only a count. Above this floor is PeftGen's own work.
    /// </summary>
    private sealed class MemberReadingFloorGenerator : IIncrementalGenerator
    {
        public void Initialize(IncrementalGeneratorInitializationContext context)
        {
            var models = context.SyntaxProvider.ForAttributeWithMetadataName(
                "PeftGen.PeftModelAttribute", static (node, _) => node is ClassDeclarationSyntax, static (ctx, _) => Read(ctx.TargetSymbol));
            var modules = context.SyntaxProvider.ForAttributeWithMetadataName(
                "PeftGen.PeftModuleAttribute", static (node, _) => node is ClassDeclarationSyntax, static (ctx, _) => Read(ctx.TargetSymbol));
            context.RegisterSourceOutput(models.Collect().Combine(modules.Collect()), static (_, _) => { });
        }

        private static string Read(ISymbol symbol)
        {
            var type = (INamedTypeSymbol)symbol;
            int count = type.GetAttributes().Sum(a => a.ConstructorArguments.Length + a.NamedArguments.Length);
            foreach (var property in type.GetMembers().OfType<IPropertySymbol>())
            {
                count += property.Type.Name.Length;
                foreach (var attribute in property.GetAttributes())
                    count += (attribute.AttributeClass?.Name.Length ?? 0) + attribute.ConstructorArguments.Length + attribute.NamedArguments.Length;
            }
            return type.Name + count.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    /// <summary>
    /// The least an attribute-driven generator does: find the classes PeftGen finds, keep their names, emit nothing.
    /// Like every <c>ForAttributeWithMetadataName</c> pipeline, it binds those classes again in each new compilation.
    /// </summary>
    private sealed class AttributeFloorGenerator : IIncrementalGenerator
    {
        public void Initialize(IncrementalGeneratorInitializationContext context)
        {
            var models = context.SyntaxProvider.ForAttributeWithMetadataName(
                "PeftGen.PeftModelAttribute", static (node, _) => node is ClassDeclarationSyntax, static (ctx, _) => ctx.TargetSymbol.Name);
            var modules = context.SyntaxProvider.ForAttributeWithMetadataName(
                "PeftGen.PeftModuleAttribute", static (node, _) => node is ClassDeclarationSyntax, static (ctx, _) => ctx.TargetSymbol.Name);
            context.RegisterSourceOutput(models.Collect().Combine(modules.Collect()), static (_, _) => { });
        }
    }
}
