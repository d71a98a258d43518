using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Threading;
using PeftGen.Generators.Accounting;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Lora;
using PeftGen.Generators.Quantization;
using PeftGen.Generators.SoftPrompt;

namespace PeftGen.Generators.Model;

/// <summary>
/// Resolves one model: walks the root and every block it reaches (through [Stack] and [Block]) with the root's
/// configuration, checks the rules that depend on it, decides every projection's adapters, and computes the accounting.
/// </summary>
internal static class ModelBuilder
{
    /// <summary><c>PeftTokenizer</c> members the soft prompt rules read.</summary>
    private const string NoTokenizer = "None", Gpt2Tokenizer = "Gpt2";

    /// <summary>GPT-2's BPE vocabulary: text-initialised prompts look up its ids in the token embedding.</summary>
    private const long Gpt2Vocabulary = 50257;

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
            null, "", new[] { diagnostic }.ToEquatableArray(), IsValid: false);

    private static ModelSpec Resolve(ClassSpec root, EquatableArray<ClassSpec> allModules, CancellationToken cancellationToken)
    {
        var modules = new Dictionary<string, ClassSpec>(System.StringComparer.Ordinal);
        foreach (var module in allModules) modules[module.Type.MetadataName] = module;

        var walker = new Walker(root, modules, cancellationToken);
        walker.Visit(root, "", 1, ImmutableStack<string>.Empty.Push(root.Type.MetadataName));

        var rootSpec = root.Root!;
        var constants = walker.Constants;
        // The token embedding may sit in the model class or in a block it reaches once (GPT-2's transformer.wte).
        var found = walker.TokenEmbeddings.FirstOrDefault(t => t.Instances == 1);
        var tokenEmbedding = found.Member;
        var prompts = new List<AccountedPrompt>();
        var promptNames = new HashSet<string>(System.StringComparer.Ordinal);
        long? context = null;
        if (rootSpec.ContextLength is { } contextSpec) context = walker.Resolve(contextSpec, "ContextLength", root.Type.Name);
        foreach (var prompt in root.ClassSoftPrompts.Concat(root.Members.SelectMany(m => m.SoftPrompts)))
        {
            if (!promptNames.Add(prompt.Name))
            {
                walker.Report(DiagnosticDescriptors.DuplicatePrompt, prompt.Site, prompt.Name, root.Type.Name);
                continue;
            }
            if (tokenEmbedding is null)
            {
                walker.Report(DiagnosticDescriptors.PromptWithoutTokenEmbedding, prompt.Site, prompt.Name, root.Type.Name);
                continue;
            }
            if (context is { } contextLength && prompt.VirtualTokens >= contextLength)
                walker.Report(DiagnosticDescriptors.PromptTooLong, prompt.VirtualTokensSite, prompt.Name, prompt.VirtualTokens, root.Type.Name, contextLength);
            if (prompt.Init == SoftPromptSpec.TextInit && rootSpec.Tokenizer == NoTokenizer)
                walker.Report(DiagnosticDescriptors.PromptTextWithoutTokenizer, prompt.InitSite, prompt.Name, root.Type.Name);
            if (prompt.Init == SoftPromptSpec.TextInit && rootSpec.Tokenizer == Gpt2Tokenizer
                && walker.Resolve(tokenEmbedding.Dimensions[0], tokenEmbedding.Name, root.Type.Name) is { } rows && rows < Gpt2Vocabulary)
                walker.Report(DiagnosticDescriptors.VocabularyTooSmall, prompt.InitSite, prompt.Name, "GPT-2", Gpt2Vocabulary, root.Type.Name, rows);
            var dim = walker.Resolve(tokenEmbedding.Dimensions[1], tokenEmbedding.Name, root.Type.Name) ?? 0;
            prompts.Add(new AccountedPrompt(prompt.Name, checked(prompt.VirtualTokens * dim)));
        }

        CheckModelTargets(root, walker);

        var layers = walker.Layers.ToEquatableArray();
        var activeAdapter = layers.SelectMany(l => l.Adapters).Select(a => a.Name).FirstOrDefault();
        var accounting = ParameterAccounting.Compute(new AccountingSpec(
            layers,
            prompts.ToEquatableArray(),
            activeAdapter,
            prompts.Select(p => p.Name).FirstOrDefault()));

        var valid = root.IsValid && walker.ReachedValid && !walker.Diagnostics.Any(d => DiagnosticDescriptors.ById(d.Id).DefaultSeverity == Microsoft.CodeAnalysis.DiagnosticSeverity.Error);
        if (valid && accounting.TrainableParameters == 0 && !rootSpec.TrainAll)
        {
            // A 4-bit base cannot train, so a quantized model without adapters is most likely a QLoRA setup missing its [Lora].
            if (layers.Select(l => l.Quantization).FirstOrDefault(q => q is not null) is { } quantization)
                walker.Report(DiagnosticDescriptors.QuantizedWithoutLora, quantization.Site, root.Type.Name);
            else
                walker.Report(DiagnosticDescriptors.NothingTrainable, root.Site, root.Type.Name);
        }

        return new ModelSpec(
            root,
            layers,
            accounting,
            activeAdapter,
            found.Path ?? "",
            walker.Diagnostics.Distinct().ToEquatableArray(),
            valid);
    }

    /// <summary>
    /// The model class's adapters reach into every block, so their targets are matched against every projection the
    /// model reaches (known only when every block resolved), and each must reach at least one projection.
    /// </summary>
    private static void CheckModelTargets(ClassSpec root, Walker walker)
    {
        if (!walker.Complete) return;
        var scope = $"in model '{root.Type.Name}' (its own projections and those of every block it reaches)";
        var matched = LoraTargets.CheckTargets(root.ClassLora, walker.ProjectionNames, scope, walker.Diagnostics);
        // Whether an adapter reaches something is known once every class it reaches is valid.
        if (!root.IsValid || !walker.ReachedValid) return;
        foreach (var adapter in matched)
        {
            if (walker.Layers.Any(l => l.Adapters.Any(a => ReferenceEquals(a.Adapter, adapter)))) continue;
            var reason = walker.ProjectionNames.Count > 0
                ? "each projection it would reach is marked [NoLora] or has its own [Lora] of that name"
                : $"model '{root.Type.Name}' has no [Linear] projection";
            walker.Report(DiagnosticDescriptors.AdapterReachesNothing, adapter.Site, adapter.Name, root.Type.Name, reason);
        }
    }

    private sealed class Walker
    {
        private readonly ClassSpec _root;
        private readonly Dictionary<string, ClassSpec> _modules;
        private readonly CancellationToken _cancellationToken;

        public Walker(ClassSpec root, Dictionary<string, ClassSpec> modules, CancellationToken cancellationToken)
        {
            _root = root;
            _modules = modules;
            _cancellationToken = cancellationToken;
            Constants = new Dictionary<string, long>(System.StringComparer.Ordinal);
            foreach (var constant in root.Root!.Constants) Constants[constant.Name] = constant.Value;
        }

        public Dictionary<string, long> Constants { get; }

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
            Report(DiagnosticDescriptors.BadDimension, dimension.Site, dimension.Text, owner + "." + member, error, _root.Root!.ConfigType);
            return null;
        }

        public void Visit(ClassSpec type, string prefix, long instances, ImmutableStack<string> chain)
        {
            _cancellationToken.ThrowIfCancellationRequested();
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
                        if (!_modules.TryGetValue(member.BlockMetadataName, out var block))
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
                        var count = member.Kind == LayerKind.Stack ? dims[0]!.Value : 1;
                        Visit(block, member.Kind == LayerKind.Stack ? path + ".*." : path + ".", checked(instances * count), chain.Push(block.Type.MetadataName));
                        break;
                    case LayerKind.Linear:
                        VisitProjection(type, member, path, instances, dims[0]!.Value, dims[1]!.Value);
                        break;
                    default:
                        if (member.Kind == LayerKind.TokenEmbedding) TokenEmbeddings.Add((member, path, instances));
                        var parameters = member.Kind switch
                        {
                            LayerKind.LayerNorm => checked(2 * dims[0]!.Value),
                            LayerKind.RmsNorm => dims[0]!.Value,
                            _ => checked(dims[0]!.Value * dims[1]!.Value),
                        };
                        Layers.Add(new ResolvedLayer(path, member.Kind, instances, parameters, 0, null, false,
                            member.Trainable || _root.Root!.TrainAll, EquatableArray<ResolvedAdapter>.Empty));
                        break;
                }
            }
        }

        private void VisitProjection(ClassSpec type, MemberSpec member, string path, long instances, long inFeatures, long outFeatures)
        {
            // Member-level adapters, then the class's, then (in blocks) the model class's: the first of a name wins.
            var adapters = new List<ResolvedAdapter>();
            var perInstance = checked(inFeatures + outFeatures);
            foreach (var adapter in LoraTargets.ClassAdapters(type, member))
                adapters.Add(new ResolvedAdapter(adapter, checked(adapter.Rank * perInstance), FromModel: false));
            foreach (var adapter in LoraTargets.ModelAdapters(_root, type, member))
                adapters.Add(new ResolvedAdapter(adapter, checked(adapter.Rank * perInstance), FromModel: true));
            foreach (var adapter in adapters)
            {
                var limit = Math.Min(inFeatures, outFeatures);
                if (adapter.Adapter.Rank > limit)
                    Report(DiagnosticDescriptors.RankTooLarge, adapter.Adapter.RankSite, adapter.Adapter.Rank, adapter.Name, type.Type.Name + "." + member.Name, limit, _root.Type.Name);
            }

            var classQuantization = QuantResolution.ClassQuantization(type, member);
            var quantization = classQuantization ?? QuantResolution.ModelQuantization(_root, type, member);
            if (quantization is not null && _root.Root!.TrainAll)
                Report(DiagnosticDescriptors.QuantizedTrainable, _root.Site, type.Type.Name + "." + member.Name);
            var weight = checked(inFeatures * outFeatures);
            var parameters = checked(weight + (member.Bias ? outFeatures : 0));
            Layers.Add(new ResolvedLayer(path, LayerKind.Linear, instances, parameters, quantization is null ? 0 : weight,
                quantization, QuantizationFromModel: classQuantization is null && quantization is not null,
                member.Trainable || _root.Root!.TrainAll, adapters.ToEquatableArray()));
        }
    }
}
