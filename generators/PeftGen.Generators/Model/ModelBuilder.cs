using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Threading;
using PeftGen.Generators.Accounting;
using PeftGen.Generators.Budget;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Lora;
using PeftGen.Generators.Quantization;
using PeftGen.Generators.SixteenBit;
using PeftGen.Generators.SoftPrompt;

namespace PeftGen.Generators.Model;

/// <summary>
/// Resolves one model: walks the root and every block it reaches (through [Stack] and [Block]) with the root's
/// configuration, resolves every layer once (its adapters and 4-bit setting come from the features' resolution), has
/// each feature check the rules that need the whole model, and computes the accounting.
/// </summary>
internal static class ModelBuilder
{
    /// <summary>
    /// Resolves one model; an exception becomes a diagnostic on that model (which is then not emitted) instead of
    /// failing the generator, which would drop the generated code of every model in the project.
    /// </summary>
    public static ModelSpec Build((ClassSpec Root, EquatableArray<ClassSpec> Modules) input, CancellationToken cancellationToken)
    {
        try
        {
            return Resolve(input.Root, input.Modules, cancellationToken);
        }
        catch (OverflowException)
        {
            return Failed(input.Root, DiagnosticInfo.Create(DiagnosticDescriptors.CountOverflow, input.Root.Site, input.Root.Type.Name, input.Root.Root?.ConfigType ?? "?"));
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            return Failed(input.Root, DiagnosticInfo.Create(DiagnosticDescriptors.GeneratorFailure, input.Root.Site, input.Root.Type.Name, exception.GetType().Name + ": " + exception.Message));
        }
    }

    private static ModelSpec Failed(ClassSpec root, DiagnosticInfo diagnostic)
        => new(root, EquatableArray<ResolvedLayer>.Empty,
            ParameterAccounting.Compute(new AccountingSpec(EquatableArray<ResolvedLayer>.Empty, EquatableArray<AccountedPrompt>.Empty, null, null)),
            null, null, EquatableArray<string>.Empty, "", new[] { diagnostic }.ToEquatableArray(), IsValid: false);

    private static ModelSpec Resolve(ClassSpec root, EquatableArray<ClassSpec> allModules, CancellationToken cancellationToken)
    {
        var modules = new Dictionary<string, ClassSpec>(System.StringComparer.Ordinal);
        foreach (var module in allModules) modules[module.Type.MetadataName] = module;
        // Blocks of referenced assemblies, as the root read them (its sites), then as this compilation's blocks did.
        foreach (var external in root.ExternalBlocks.Concat(allModules.SelectMany(m => m.ExternalBlocks)))
        {
            if (!modules.ContainsKey(external.Type.MetadataName)) modules[external.Type.MetadataName] = external;
        }

        var walker = new Walker(root, modules, cancellationToken);
        walker.VisitModel(root);

        var rootSpec = root.Root!;
        // The token embedding may sit in the model class or in a block it reaches once (GPT-2's transformer.wte).
        var found = walker.TokenEmbeddings.FirstOrDefault(t => t.Instances == 1);
        var prompts = SoftPromptResolution.Resolve(root, found.Member, (dimension, member) => walker.Resolve(dimension, member, root.Type.Name), walker.Diagnostics);

        QuantResolution.CheckFullFineTuning(root, walker.Layers, walker.Diagnostics);
        if (walker.Complete && root.IsValid && walker.ReachedValid) QuantResolution.CheckModel(root, walker.Layers, walker.Diagnostics);
        if (walker.Complete) LoraResolution.CheckModel(root, walker.Layers, walker.ProjectionNames, adaptersResolved: root.IsValid && walker.ReachedValid, walker.Diagnostics);
        if (walker.Complete) SixteenBitResolution.CheckModel(root, walker.Layers, walker.Diagnostics);

        var layers = walker.Layers.ToEquatableArray();
        var activeAdapter = layers.SelectMany(l => l.Adapters).Select(a => a.Name).FirstOrDefault();
        var accountingSpec = new AccountingSpec(
            layers,
            prompts.ToEquatableArray(),
            activeAdapter,
            prompts.Select(p => p.Name).FirstOrDefault(),
            SixteenBitBases: rootSpec.BaseDType is not null);
        var accounting = ParameterAccounting.Compute(accountingSpec);
        var estimate = walker.Complete && root.IsValid && walker.ReachedValid
            && !walker.Diagnostics.Any(d => DiagnosticDescriptors.ById(d.Id).DefaultSeverity == Microsoft.CodeAnalysis.DiagnosticSeverity.Error)
            ? BudgetResolution.Resolve(root, accountingSpec, accounting, walker.Diagnostics) : null;

        var valid = root.IsValid && walker.ReachedValid && !walker.Diagnostics.Any(d => DiagnosticDescriptors.ById(d.Id).DefaultSeverity == Microsoft.CodeAnalysis.DiagnosticSeverity.Error);
        if (valid && accounting.TrainableParameters == 0 && !rootSpec.TrainAll)
        {
            if (!QuantResolution.ReportQuantizedWithoutLora(root, layers, walker.Diagnostics))
                walker.Report(DiagnosticDescriptors.NothingTrainable, root.Site, root.Type.Name);
        }

        return new ModelSpec(
            root,
            layers,
            accounting,
            activeAdapter,
            prompts.Select(p => p.Name).FirstOrDefault(),
            walker.Blocks.ToEquatableArray(),
            found.Path ?? "",
            walker.Diagnostics.Distinct().ToEquatableArray(),
            valid,
            estimate);
    }

    private sealed class Walker
    {
        private readonly ClassSpec root;
        private readonly Dictionary<string, ClassSpec> modules;
        private readonly CancellationToken cancellationToken;

        public Walker(ClassSpec root, Dictionary<string, ClassSpec> modules, CancellationToken cancellationToken)
        {
            this.root = root;
            this.modules = modules;
            this.cancellationToken = cancellationToken;
            Constants = new Dictionary<string, long>(System.StringComparer.Ordinal);
            foreach (var constant in root.Root!.Constants)
            {
                if (constant.Kind == ConfigValueKind.Integer) Constants[constant.Name] = constant.Value;
            }
        }

        /// <summary>The configuration's integer constants: what dimensions are evaluated against.</summary>
        public Dictionary<string, long> Constants { get; }

        /// <summary>Metadata names of every block class reached, in first-reached order.</summary>
        public List<string> Blocks { get; } = new();

        public List<ResolvedLayer> Layers { get; } = new();

        /// <summary>Every token embedding reached, with its path and how many instances of it exist.</summary>
        public List<(MemberSpec Member, string Path, long Instances)> TokenEmbeddings { get; } = new();

        public List<DiagnosticInfo> Diagnostics { get; } = new();

        public bool ReachedValid { get; private set; } = true;

        /// <summary>False when a block was not found or not entered (unresolved dimensions, recursion): the walk missed part of the model.</summary>
        public bool Complete { get; private set; } = true;

        /// <summary>The names every reached class's [Linear] properties answer to in Targets.</summary>
        public HashSet<string> ProjectionNames { get; } = new(StringComparer.Ordinal);


        public void Report(Microsoft.CodeAnalysis.DiagnosticDescriptor descriptor, SourceSite? site, params object[] arguments)
            => Diagnostics.Add(DiagnosticInfo.Create(descriptor, site, arguments));

        public long? Resolve(DimensionSpec dimension, string member, string owner)
        {
            if (Constants.Count == 0) return null;
            var (value, error, _) = dimension.Expression.Evaluate(Constants);
            if (error is null) return value;
            Report(DiagnosticDescriptors.BadDimension, dimension.Site, dimension.Text, owner + "." + member, error, root.Root!.ConfigType);
            return null;
        }

        /// <summary>
        /// The configuration constant a member's setting names, if it exists with the kind the setting needs;
        /// otherwise reports PEFT019 or PEFT020 for this model and returns null.
        /// </summary>
        public ConfigConstant? Resolve(SettingReference setting, string member, string owner)
        {
            var root = this.root.Root!;
            var constant = root.Constants.FirstOrDefault(c => c.Name == setting.Constant);
            var kind = ConfigConstant.Describe(setting.Kind);
            if (constant is null)
            {
                var candidates = root.Constants.Where(c => c.Kind == setting.Kind).Select(c => "'" + c.Name + "'").ToList();
                Report(DiagnosticDescriptors.SettingNotFound, setting.Site, setting.Argument, owner + "." + member, setting.Constant, root.ConfigType, this.root.Type.Name, kind,
                    candidates.Count == 0 ? "none" : string.Join(", ", candidates));
                return null;
            }
            if (constant.Kind != setting.Kind)
            {
                Report(DiagnosticDescriptors.SettingWrongType, setting.Site, setting.Argument, owner + "." + member, setting.Constant, ConfigConstant.Describe(constant.Kind), root.ConfigType, this.root.Type.Name, kind);
                return null;
            }
            return constant;
        }

        /// <summary>Walks the model: the members of the block it derives from, if any, then its own.</summary>
        public void VisitModel(ClassSpec root)
        {
            var chain = ImmutableStack<string>.Empty.Push(root.Type.MetadataName);
            var baseBlock = root.Root!.BaseBlock;
            if (baseBlock.Length > 0)
            {
                if (modules.TryGetValue(baseBlock, out var block))
                {
                    Blocks.Add(baseBlock);
                    Visit(block, "", 1, chain.Push(baseBlock));
                }
                else
                {
                    ReachedValid = false;
                    Complete = false;
                }
            }
            Visit(root, "", 1, chain);
        }

        public void Visit(ClassSpec type, string prefix, long instances, ImmutableStack<string> chain)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (!type.IsValid) ReachedValid = false;
            ProjectionNames.UnionWith(type.ProjectionNames);
            foreach (var member in type.Members)
            {
                var dims = member.Dimensions.Select(d => Resolve(d, member.Name, type.Type.Name)).ToList();
                if (dims.Any(d => d is null))
                {
                    Complete = false;
                    continue;
                }
                var path = prefix + member.CheckpointName;
                switch (member.Kind)
                {
                    case LayerKind.Stack:
                    case LayerKind.Block:
                        if (!modules.TryGetValue(member.BlockMetadataName, out var block))
                        {
                            ReachedValid = false;
                            Complete = false;
                            continue;
                        }
                        if (chain.Contains(block.Type.MetadataName))
                        {
                            Report(DiagnosticDescriptors.RecursiveBlock, member.Site, type.Type.Name, block.Type.Name);
                            Complete = false;
                            continue;
                        }
                        if (!Blocks.Contains(block.Type.MetadataName)) Blocks.Add(block.Type.MetadataName);
                        var count = member.Kind == LayerKind.Stack ? dims[0]!.Value : 1;
                        Visit(block, member.Kind == LayerKind.Stack ? path + ".*." : path + ".", checked(instances * count), chain.Push(block.Type.MetadataName));
                        break;
                    case LayerKind.Linear:
                        VisitProjection(type, member, path, instances, dims[0]!.Value, dims[1]!.Value);
                        break;
                    default:
                        if (member.Kind == LayerKind.TokenEmbedding) TokenEmbeddings.Add((member, path, instances));
                        if (member.EpsFrom is { } epsFrom && Resolve(epsFrom, member.Name, type.Type.Name) is { } eps && !SettingRules.IsValidEps(eps.Real))
                        {
                            Report(DiagnosticDescriptors.BadNormEpsilon, epsFrom.Site, member.Kind == LayerKind.RmsNorm ? "RmsNorm" : "LayerNorm", type.Type.Name + "." + member.Name,
                                eps.Real.ToString("R", System.Globalization.CultureInfo.InvariantCulture) + " ('" + eps.Name + "' of '" + root.Root!.ConfigType + "')");
                        }
                        var parameters = member.Kind switch
                        {
                            LayerKind.LayerNorm => checked(2 * dims[0]!.Value),
                            LayerKind.RmsNorm => dims[0]!.Value,
                            _ => checked(dims[0]!.Value * dims[1]!.Value),
                        };
                        Layers.Add(new ResolvedLayer(path, member.Kind, instances, parameters, 0, null,
                            member.Trainable || root.Root!.TrainAll, EquatableArray<ResolvedAdapter>.Empty, dims.Select(d => d!.Value).ToEquatableArray()));
                        break;
                }
            }
        }

        private void VisitProjection(ClassSpec type, MemberSpec member, string path, long instances, long inFeatures, long outFeatures)
        {
            // Member-level adapters, then the class's, then (in blocks) the model class's: the first of a name wins.
            var adapters = new List<ResolvedAdapter>();
            var perInstance = checked(inFeatures + outFeatures);
            foreach (var adapter in LoraResolution.ClassAdapters(type, member))
                adapters.Add(new ResolvedAdapter(adapter, checked(adapter.Rank * perInstance), FromModel: false));
            foreach (var adapter in LoraResolution.ModelAdapters(root, type, member))
                adapters.Add(new ResolvedAdapter(adapter, checked(adapter.Rank * perInstance), FromModel: true));
            LoraResolution.CheckRanks(adapters, inFeatures, outFeatures, type.Type.Name + "." + member.Name, root.Type.Name, Diagnostics);

            var quantization = QuantResolution.LayerQuantization(root, type, member);
            var weight = checked(inFeatures * outFeatures);
            // A bias read from the configuration counts for this model as its configuration says (absent when it does not resolve).
            var bias = member.BiasFrom is { } biasFrom ? Resolve(biasFrom, member.Name, type.Type.Name)?.Value == 1 : member.Bias;
            var parameters = checked(weight + (bias ? outFeatures : 0));
            Layers.Add(new ResolvedLayer(path, LayerKind.Linear, instances, parameters, quantization is null ? 0 : weight,
                quantization, member.Trainable || root.Root!.TrainAll, adapters.ToEquatableArray(), new[] { inFeatures, outFeatures }.ToEquatableArray()));
        }
    }
}
