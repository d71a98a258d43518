using Microsoft.CodeAnalysis;
using PeftGen.Generators.Emit;
using PeftGen.Generators.Model;

namespace PeftGen.Generators;

/// <summary>
/// PeftGen's incremental generator. It wires the steps only:
/// <c>[PeftModel]</c> and <c>[PeftModule]</c> classes → <see cref="ClassSpec"/> (parsed once per class, and parsed
/// again only when something it reads changed) →
/// each model combined with every module → <see cref="ModelSpec"/> (resolved against the model's configuration) →
/// one source file per class; the diagnostics of every step are reported together.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed class PeftGenerator : IIncrementalGenerator
{
    /// <summary>Class parses kept across compilations while nothing they read changed (see <see cref="ClassParseCache"/>).</summary>
    internal ClassParseCache Parses { get; } = new();

    /// <inheritdoc />
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        // The only lambdas that are not static: the parse goes through this instance's cache.
        var parses = Parses;
        var models = context.SyntaxProvider
            .ForAttributeWithMetadataName(ClassParser.PeftModelAttributeName, static (node, ct) => ClassParser.IsCandidate(node, ct), (ctx, ct) => parses.GetOrParseModel(ctx, ct))
            .WithTrackingName(TrackingNames.Models);

        var modules = context.SyntaxProvider
            .ForAttributeWithMetadataName(ClassParser.PeftModuleAttributeName, static (node, ct) => ClassParser.IsCandidate(node, ct), (ctx, ct) => parses.GetOrParseModule(ctx, ct))
            .Where(static spec => spec is not null)
            .Select(static (spec, _) => spec!)
            .WithTrackingName(TrackingNames.Modules);

        var allModules = modules
            .Collect()
            .Select(static (specs, _) => specs.ToEquatableArray())
            .WithTrackingName(TrackingNames.AllModules);

        var resolvedModels = models
            .Combine(allModules)
            .Select(static (input, ct) => ModelBuilder.Build(input, ct))
            .WithTrackingName(TrackingNames.ResolvedModels);

        var diagnostics = modules.Select(static (module, _) => module.Diagnostics).Collect()
            .Combine(models.Select(static (model, _) => model.Diagnostics).Collect())
            .Combine(resolvedModels.Select(static (model, _) => model.Diagnostics).Collect())
            .Select(static (all, _) => Output.Flatten(all.Left.Left, all.Left.Right, all.Right))
            .WithTrackingName(TrackingNames.Diagnostics);

        context.RegisterSourceOutput(modules, static (spc, module) => Output.Module(spc, module));
        context.RegisterSourceOutput(resolvedModels, static (spc, model) => Output.Model(spc, model));

        // Reporting alone sees the compilation, to put diagnostics on real syntax trees (#pragma can suppress them).
        context.RegisterSourceOutput(diagnostics.Combine(context.CompilationProvider), static (spc, input) => Output.Report(spc, input.Left, input.Right));
    }
}
