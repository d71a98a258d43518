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
    private const int Gpt2Tokenizer = 1;

    /// <summary>GPT-2's BPE vocabulary: text-initialised prompts look up its ids in the token embedding.</summary>
    private const long Gpt2Vocabulary = 50257;

    public static ModelSpec Build((ClassSpec Root, EquatableArray<ClassSpec> Modules) input, CancellationToken cancellationToken)
    {
        var root = input.Root;
        var modules = new Dictionary<string, ClassSpec>(System.StringComparer.Ordinal);
        foreach (var module in input.Modules) modules[module.Type.MetadataName] = module;

        var walker = new Walker(root, modules, cancellationToken);
        walker.Visit(root, "", 1, ImmutableStack<string>.Empty.Push(root.Type.MetadataName));

        var rootSpec = root.Root!;
        var constants = walker.Constants;
        var tokenEmbedding = root.Members.FirstOrDefault(m => m.Kind == LayerKind.TokenEmbedding);
        var prompts = new List<AccountedPrompt>();
        var promptNames = new HashSet<string>(System.StringComparer.Ordinal);
        long? context = null;
        if (rootSpec.ContextLength is { } contextSpec) context = walker.Resolve(contextSpec, "ContextLength", root.Type.Name);
        foreach (var prompt in root.ClassSoftPrompts.Concat(root.Members.SelectMany(m => m.SoftPrompts)))
        {
            if (!promptNames.Add(prompt.Name))
            {
                walker.Report(DiagnosticDescriptors.DuplicatePrompt, prompt.Location, prompt.Name, root.Type.Name);
                continue;
            }
            if (tokenEmbedding is null)
            {
                walker.Report(DiagnosticDescriptors.PromptWithoutTokenEmbedding, prompt.Location, prompt.Name, root.Type.Name);
                continue;
            }
            if (context is { } contextLength && prompt.VirtualTokens >= contextLength)
                walker.Report(DiagnosticDescriptors.PromptTooLong, prompt.VirtualTokensLocation, prompt.Name, prompt.VirtualTokens, root.Type.Name, contextLength);
            if (prompt.Init == SoftPromptSpec.TextInit && rootSpec.Tokenizer == 0)
                walker.Report(DiagnosticDescriptors.PromptTextWithoutTokenizer, prompt.InitLocation, prompt.Name, root.Type.Name);
            if (prompt.Init == SoftPromptSpec.TextInit && rootSpec.Tokenizer == Gpt2Tokenizer
                && walker.Resolve(tokenEmbedding.Dimensions[0], tokenEmbedding.Name, root.Type.Name) is { } rows && rows < Gpt2Vocabulary)
                walker.Report(DiagnosticDescriptors.VocabularyTooSmall, prompt.InitLocation, prompt.Name, "GPT-2", Gpt2Vocabulary, root.Type.Name, rows);
            var dim = walker.Resolve(tokenEmbedding.Dimensions[1], tokenEmbedding.Name, root.Type.Name) ?? 0;
            prompts.Add(new AccountedPrompt(prompt.Name, prompt.VirtualTokens * dim));
        }

        var activeAdapter = walker.Layers.SelectMany(l => l.Adapters).Select(a => a.Name).FirstOrDefault();
        var accounting = ParameterAccounting.Compute(new AccountingSpec(
            walker.Layers.ToEquatableArray(),
            prompts.ToEquatableArray(),
            activeAdapter,
            prompts.Select(p => p.Name).FirstOrDefault()));

        var valid = root.IsValid && walker.ReachedValid && !walker.Diagnostics.Any(d => DiagnosticDescriptors.ById(d.Id).DefaultSeverity == Microsoft.CodeAnalysis.DiagnosticSeverity.Error);
        if (valid && accounting.TrainableParameters == 0 && !rootSpec.TrainAll)
            walker.Report(DiagnosticDescriptors.NothingTrainable, root.Location, root.Type.Name);

        return new ModelSpec(
            root,
            accounting,
            activeAdapter,
            tokenEmbedding?.Name ?? "",
            walker.Diagnostics.Distinct().ToEquatableArray(),
            valid);
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

        public List<AccountedLayer> Layers { get; } = new();

        public List<DiagnosticInfo> Diagnostics { get; } = new();

        public bool ReachedValid { get; private set; } = true;

        public void Report(Microsoft.CodeAnalysis.DiagnosticDescriptor descriptor, LocationInfo? location, params object[] arguments)
            => Diagnostics.Add(DiagnosticInfo.Create(descriptor, location, arguments));

        public long? Resolve(DimensionSpec dimension, string member, string owner)
        {
            if (Constants.Count == 0) return null;
            var (value, error, _) = dimension.Expression.Evaluate(Constants);
            if (error is null) return value;
            Report(DiagnosticDescriptors.BadDimension, dimension.Location, dimension.Text, owner + "." + member, error, _root.Root!.ConfigType);
            return null;
        }

        public void Visit(ClassSpec type, string prefix, long instances, ImmutableStack<string> chain)
        {
            _cancellationToken.ThrowIfCancellationRequested();
            if (!type.IsValid) ReachedValid = false;
            foreach (var member in type.Members)
            {
                var dims = member.Dimensions.Select(d => Resolve(d, member.Name, type.Type.Name)).ToList();
                if (dims.Any(d => d is null)) continue;
                var path = prefix + member.CheckpointName;
                switch (member.Kind)
                {
                    case LayerKind.Stack:
                    case LayerKind.Block:
                        if (!_modules.TryGetValue(member.BlockMetadataName, out var block))
                        {
                            ReachedValid = false;
                            continue;
                        }
                        if (chain.Contains(block.Type.MetadataName))
                        {
                            Report(DiagnosticDescriptors.RecursiveBlock, member.Location, type.Type.Name, block.Type.Name);
                            continue;
                        }
                        var count = member.Kind == LayerKind.Stack ? dims[0]!.Value : 1;
                        Visit(block, member.Kind == LayerKind.Stack ? path + ".*." : path + ".", instances * count, chain.Push(block.Type.MetadataName));
                        break;
                    case LayerKind.Linear:
                        VisitProjection(type, member, path, instances, dims[0]!.Value, dims[1]!.Value);
                        break;
                    default:
                        var parameters = member.Kind switch
                        {
                            LayerKind.LayerNorm => 2 * dims[0]!.Value,
                            LayerKind.RmsNorm => dims[0]!.Value,
                            _ => dims[0]!.Value * dims[1]!.Value,
                        };
                        Layers.Add(new AccountedLayer(path, KindName(member.Kind), instances, parameters, 0, 0, false,
                            member.Trainable || _root.Root!.TrainAll, EquatableArray<AccountedAdapter>.Empty));
                        break;
                }
            }
        }

        private void VisitProjection(ClassSpec type, MemberSpec member, string path, long instances, long inFeatures, long outFeatures)
        {
            var adapters = new List<AccountedAdapter>();
            foreach (var adapter in EffectiveAdapters(type, member))
            {
                var limit = System.Math.Min(inFeatures, outFeatures);
                if (adapter.Rank > limit)
                    Report(DiagnosticDescriptors.RankTooLarge, adapter.RankLocation, adapter.Rank, adapter.Name, type.Type.Name + "." + member.Name, limit, _root.Type.Name);
                adapters.Add(new AccountedAdapter(adapter.Name, adapter.Rank * (inFeatures + outFeatures)));
            }

            var quant = EffectiveQuantization(type, member);
            if (quant is not null && _root.Root!.TrainAll)
                Report(DiagnosticDescriptors.QuantizedTrainable, _root.Location, type.Type.Name + "." + member.Name);
            var weight = inFeatures * outFeatures;
            var parameters = weight + (member.Bias ? outFeatures : 0);
            Layers.Add(new AccountedLayer(path, "Projection", instances, parameters,
                quant is null ? 0 : weight, quant?.BlockSize ?? 0, quant?.DoubleQuant ?? false,
                member.Trainable || _root.Root!.TrainAll, adapters.ToEquatableArray()));
        }

        /// <summary>Member-level adapters, then the class's, then (in blocks) the model class's: first name wins.</summary>
        private IEnumerable<AdapterSpec> EffectiveAdapters(ClassSpec type, MemberSpec member)
        {
            if (member.NoLora) return member.Lora;
            var result = member.Lora.ToList();
            var levels = ReferenceEquals(type, _root) ? new[] { type.ClassLora } : new[] { type.ClassLora, _root.ClassLora };
            foreach (var level in levels)
            {
                foreach (var adapter in level)
                {
                    if (adapter.AppliesTo(member.Name, member.CheckpointName) && result.All(a => a.Name != adapter.Name)) result.Add(adapter);
                }
            }
            return result;
        }

        /// <summary>Member-level, else the class's, else the model class's; class-level ones skip [Trainable] members.</summary>
        private QuantSpec? EffectiveQuantization(ClassSpec type, MemberSpec member)
            => member.Quantization ?? (member.Trainable ? null : type.ClassQuantization ?? _root.ClassQuantization);

        private static string KindName(LayerKind kind) => kind switch
        {
            LayerKind.TokenEmbedding => "TokenEmbedding",
            LayerKind.Embedding => "Embedding",
            LayerKind.LayerNorm => "LayerNorm",
            LayerKind.RmsNorm => "RmsNorm",
            _ => "Projection",
        };
    }
}
