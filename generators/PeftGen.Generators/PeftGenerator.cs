using Microsoft.CodeAnalysis;
using PeftGen.Generators.Emit;
using PeftGen.Generators.Model;

namespace PeftGen.Generators;

/// <summary>
/// PeftGen's incremental generator. It wires the steps only:
/// <c>[PeftModel]</c> and <c>[PeftModule]</c> classes → <see cref="ClassSpec"/> (parsed once per class) →
/// each model combined with every module → <see cref="ModelSpec"/> (resolved against the model's configuration) →
/// one source file per class, plus the diagnostics.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed class PeftGenerator : IIncrementalGenerator
{
    /// <inheritdoc />
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        var models = context.SyntaxProvider
            .ForAttributeWithMetadataName(ClassParser.PeftModelAttributeName, static (node, ct) => ClassParser.IsCandidate(node, ct), static (ctx, ct) => ClassParser.ParseModel(ctx, ct))
            .WithTrackingName(TrackingNames.Models);

        var modules = context.SyntaxProvider
            .ForAttributeWithMetadataName(ClassParser.PeftModuleAttributeName, static (node, ct) => ClassParser.IsCandidate(node, ct), static (ctx, ct) => ClassParser.ParseModule(ctx, ct))
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

        context.RegisterSourceOutput(modules, static (spc, module) => Output.Module(spc, module));
        context.RegisterSourceOutput(models, static (spc, model) => Output.Diagnostics(spc, model.Diagnostics));
        context.RegisterSourceOutput(resolvedModels, static (spc, model) => Output.Model(spc, model));
    }
}
