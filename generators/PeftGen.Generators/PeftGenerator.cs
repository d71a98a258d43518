using Microsoft.CodeAnalysis;
using PeftGen.Generators.Emit;
using PeftGen.Generators.Model;

namespace PeftGen.Generators;

/// <summary>
/// PeftGen's incremental generator. It wires the steps only:
/// <c>[PeftModel]</c> and <c>[PeftModule]</c> classes → <see cref="ParsedClass"/> (parsed once per class, and parsed
/// again only when something it reads changed), split into the location-free <see cref="ClassSpec"/> and the
/// locations of its sites →
/// each model combined with every module → <see cref="ModelSpec"/> (resolved against the model's configuration) →
/// one source file per class, plus one per block for the typed dimensions the models reaching it share; the
/// diagnostics of every step are reported together, at their sites' locations.
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
        var modelParses = context.SyntaxProvider
            .ForAttributeWithMetadataName(ClassParser.PeftModelAttributeName, static (node, ct) => ClassParser.IsCandidate(node, ct), (ctx, ct) => parses.GetOrParseModel(ctx, ct))
            .WithTrackingName(TrackingNames.ModelParses);
        var moduleParses = context.SyntaxProvider
            .ForAttributeWithMetadataName(ClassParser.PeftModuleAttributeName, static (node, ct) => ClassParser.IsCandidate(node, ct), (ctx, ct) => parses.GetOrParseModule(ctx, ct))
            .Where(static parsed => parsed is not null)
            .Select(static (parsed, _) => parsed!)
            .WithTrackingName(TrackingNames.ModuleParses);

        // Source outputs see specs only: an edit that just moves text changes the sites' locations, not the specs.
        var models = modelParses.Select(static (parsed, _) => parsed.Spec).WithTrackingName(TrackingNames.Models);
        var modules = moduleParses.Select(static (parsed, _) => parsed.Spec).WithTrackingName(TrackingNames.Modules);

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

        var sites = modelParses.Select(static (parsed, _) => parsed.Sites).Collect()
            .Combine(moduleParses.Select(static (parsed, _) => parsed.Sites).Collect())
            .Select(static (all, _) => Output.FlattenSites(all.Left, all.Right))
            .WithTrackingName(TrackingNames.Sites);

        // A block's typed dimensions depend on the models that reach it, so they are a file of their own.
        var blockDimensions = allModules
            .Combine(resolvedModels.Select(static (model, _) => BlockDimensions.Reach(model)).Collect())
            .SelectMany(static (input, ct) => BlockDimensions.Resolve(input, ct))
            .WithTrackingName(TrackingNames.BlockDimensions);

        context.RegisterSourceOutput(modules, static (spc, module) => Output.Module(spc, module));
        context.RegisterSourceOutput(resolvedModels, static (spc, model) => Output.Model(spc, model));
        context.RegisterSourceOutput(blockDimensions, static (spc, block) => Output.BlockDimensions(spc, block));

        // Reporting alone sees the compilation, to put diagnostics on real syntax trees (#pragma can suppress them).
        context.RegisterSourceOutput(diagnostics.Combine(sites).Combine(context.CompilationProvider),
            static (spc, input) => Output.Report(spc, input.Left.Left, input.Left.Right, input.Right));
    }
}
