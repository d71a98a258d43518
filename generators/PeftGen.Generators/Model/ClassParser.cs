using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Lora;
using PeftGen.Generators.Quantization;
using PeftGen.Generators.SoftPrompt;

namespace PeftGen.Generators.Model;

/// <summary>
/// The first transform: turns one <c>[PeftModel]</c> or <c>[PeftModule]</c> class into a <see cref="ClassSpec"/>,
/// checking everything that the class alone decides. Rules that depend on a model's configuration (dimensions,
/// rank against them, soft prompt length) are checked later by <see cref="ModelBuilder"/>, once per model.
/// </summary>
internal static class ClassParser
{
    public const string PeftModelAttributeName = "PeftGen.PeftModelAttribute";
    public const string PeftModuleAttributeName = "PeftGen.PeftModuleAttribute";
    private const string TrainableAttributeName = "PeftGen.TrainableAttribute";
    private const string CheckpointNameAttributeName = "PeftGen.CheckpointNameAttribute";
    private const string ModuleListName = "global::TorchSharp.Modules.ModuleList<T>";
    private const string TorchModuleName = "TorchSharp.torch.nn.Module";

    private static readonly Dictionary<string, string> LayerAttributes = new()
    {
        ["PeftGen.LinearAttribute"] = "Linear",
        ["PeftGen.EmbeddingAttribute"] = "Embedding",
        ["PeftGen.LayerNormAttribute"] = "LayerNorm",
        ["PeftGen.RmsNormAttribute"] = "RmsNorm",
        ["PeftGen.StackAttribute"] = "Stack",
        ["PeftGen.BlockAttribute"] = "Block",
    };

    /// <summary>Members the generated code declares in every block class.</summary>
    private static readonly HashSet<string> BlockMembers = new(StringComparer.Ordinal) { "Dims", "Dimensions", "CollectPeftLayers" };

    /// <summary>Members the generated code declares in every model class.</summary>
    private static readonly HashSet<string> ModelMembers = new(StringComparer.Ordinal)
    {
        "Dims", "Dimensions", "CollectPeftLayers", "Layers", "Accounting", "PrintTrainableParameters", "Adapters", "SoftPrompts", "TrainingPlan",
    };

    public static bool IsCandidate(SyntaxNode node, CancellationToken cancellationToken) => node is ClassDeclarationSyntax;

    public static ParsedClass ParseModel(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken)
        => ParseTotal(context, isRoot: true, cancellationToken)!;

    /// <summary>Null for a class that is also a [PeftModel]: the model's parse reports that, and nothing is emitted.</summary>
    public static ParsedClass? ParseModule(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken)
        => ParseTotal(context, isRoot: false, cancellationToken);

    /// <summary>
    /// Parses one class; an exception becomes PEFT000 on that class (a spec that emits nothing) instead of failing the
    /// generator, which would drop the generated code of every model in the project.
    /// </summary>
    private static ParsedClass? ParseTotal(GeneratorAttributeSyntaxContext context, bool isRoot, CancellationToken cancellationToken)
    {
        try
        {
            if (!isRoot && context.TargetSymbol.GetAttributes().Any(a => NameOf(a.AttributeClass) == PeftModelAttributeName)) return null;
            return Parse(context, isRoot, cancellationToken);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            return Failed(context, isRoot, exception);
        }
    }

    /// <summary>A spec that carries only the failure: invalid, so neither it nor a model reaching it is emitted.</summary>
    private static ParsedClass Failed(GeneratorAttributeSyntaxContext context, bool isRoot, Exception exception)
    {
        var type = (INamedTypeSymbol)context.TargetSymbol;
        var hierarchy = TypeHierarchy.From(type);
        var sites = new SiteRecorder();
        var site = sites.Record(hierarchy.MetadataName, context.TargetNode is ClassDeclarationSyntax syntax ? LocationInfo.From(syntax.Identifier.GetLocation()) : null);
        var failure = DiagnosticInfo.Create(DiagnosticDescriptors.GeneratorFailure, site, type.Name, exception.GetType().Name + ": " + exception.Message);
        return new ParsedClass(new ClassSpec(
            hierarchy,
            site,
            isRoot ? new RootSpec("?", EquatableArray<ConfigConstant>.Empty, null, SettingRules.DefaultTokenizer, false) : null,
            EquatableArray<AdapterSpec>.Empty,
            null,
            EquatableArray<SoftPromptSpec>.Empty,
            EquatableArray<MemberSpec>.Empty,
            EquatableArray<string>.Empty,
            new[] { failure }.ToEquatableArray(),
            EquatableArray<ClassSpec>.Empty), sites.ToTable());
    }

    private static ParsedClass Parse(GeneratorAttributeSyntaxContext context, bool isRoot, CancellationToken cancellationToken)
    {
        var type = (INamedTypeSymbol)context.TargetSymbol;
        var syntax = (ClassDeclarationSyntax)context.TargetNode;
        var sites = new SiteRecorder();
        var references = new ReferencedBlocks(context.SemanticModel.Compilation, TypeHierarchy.From(type).MetadataName, cancellationToken);
        var spec = ParseClass(type, LocationInfo.From(syntax.Identifier.GetLocation()), isRoot, external: false, sites, references, cancellationToken);
        if (references.Blocks.Count == 0) return new ParsedClass(spec, sites.ToTable());
        // A referenced block's problems (PEFT501, or one the block was built with) are this class's: it cannot be built.
        var diagnostics = spec.Diagnostics.Concat(references.Blocks.SelectMany(b => b.Diagnostics)).ToEquatableArray();
        return new ParsedClass(spec with { Diagnostics = diagnostics, ExternalBlocks = references.Blocks.ToEquatableArray() }, sites.ToTable());
    }

    /// <summary>
    /// Parses one class: a class of this compilation, or with <paramref name="external"/> a block of a referenced
    /// assembly, read from its metadata (the attributes on its properties are the same contract) and built there.
    /// </summary>
    /// <param name="location">The class's identifier; null for an external block (its sites fall back to where it is referenced).</param>
    private static ClassSpec ParseClass(INamedTypeSymbol type, LocationInfo? location, bool isRoot, bool external, SiteRecorder sites, ReferencedBlocks references, CancellationToken cancellationToken)
    {
        var hierarchy = TypeHierarchy.From(type);
        // An external block's sites are named after the class that reached it, so two classes reaching it keep their own locations.
        var key = external ? references.Referrer + ">" + hierarchy.MetadataName : hierarchy.MetadataName;
        var diagnostics = new List<DiagnosticInfo>();
        var typeSite = sites.Record(key, location);
        var compilation = references.Compilation;

        // A model class may derive from a [PeftModule] (an architecture's head class): its members come first, built by its constructor.
        var baseBlock = "";
        var derivesFromBlock = isRoot && type.BaseType is { } baseType && HasModuleAttribute(baseType);
        if (derivesFromBlock)
        {
            baseBlock = references.Reach(type.BaseType!, typeSite, sites, asMember: false, type.Name, diagnostics) ?? "";
            // The model's Dims hides the block's; only a head class (abstract) keeps its own protected.
            if (baseBlock.Length > 0 && !type.BaseType!.IsAbstract)
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ModelDerivesFromConcreteBlock, typeSite, type.Name, type.BaseType.ToDisplayString()));
        }

        if (!external)
        {
            if (!IsPartial(type, cancellationToken)) diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NotPartial, typeSite, type.Name));
            for (var current = type.ContainingType; current is not null; current = current.ContainingType)
            {
                if (!IsPartial(current, cancellationToken))
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NotPartial, sites.Record(key + "^" + current.Name, LocationInfo.From(current.Locations.FirstOrDefault() ?? Location.None)), current.Name));
            }
        }
        if (type.TypeParameters.Length > 0) diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.GenericType, typeSite, type.Name));
        if (!external && !derivesFromBlock && !IsNamedModule(type, compilation)) diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NotANamedModule, typeSite, type.Name));
        // An external block's constructor and reserved members are the ones its generated code declared.
        var constructors = external ? new List<IMethodSymbol>() : type.InstanceConstructors.Where(c => !c.IsImplicitlyDeclared).ToList();
        for (var i = 0; i < constructors.Count; i++)
        {
            var constructorSite = sites.Record(key + "#ctor" + i, LocationInfo.From(constructors[i].Locations.FirstOrDefault() ?? Location.None));
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.OwnConstructor, constructorSite, type.Name));
        }
        foreach (var member in type.GetMembers().Where(m => !external && !m.IsImplicitlyDeclared && (isRoot ? ModelMembers : BlockMembers).Contains(m.Name)))
        {
            var memberSite = sites.Record(key + "!" + member.Name, LocationInfo.From(member.Locations.FirstOrDefault() ?? Location.None));
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ReservedMemberName, memberSite, member.Name, type.Name, isRoot ? "model" : "block"));
        }

        var attributes = ReadAttributes(type, sites, key, cancellationToken);
        CheckArguments(attributes, diagnostics);
        if (isRoot && attributes.Any(a => a.Name == PeftModuleAttributeName))
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ModelAndModule, typeSite, type.Name));

        RootSpec? root = null;
        if (isRoot) root = ParseRoot(Readers(attributes, PeftModelAttributeName).First(), attributes.Any(a => a.Name == TrainableAttributeName), diagnostics) with { BaseBlock = baseBlock };

        var classLora = LoraParser.Parse(Readers(attributes, LoraParser.AttributeName), type.Name, onMember: false, diagnostics);
        var classQuant = QuantParser.Parse(Readers(attributes, QuantParser.AttributeName).FirstOrDefault(), diagnostics);
        var classPrompts = Readers(attributes, SoftPromptParser.AttributeName).ToList();
        // Prompts belong to the model class; on a block they are reported, not parsed.
        var classPromptSpecs = SoftPromptParser.CheckPlacement(classPrompts, onModel: isRoot, type.Name, diagnostics)
            ? SoftPromptParser.Parse(classPrompts, diagnostics)
            : EquatableArray<SoftPromptSpec>.Empty;

        var members = new List<MemberSpec>();
        var projectionNames = new List<string>();
        foreach (var property in type.GetMembers().OfType<IPropertySymbol>())
        {
            cancellationToken.ThrowIfCancellationRequested();
            var memberAttributes = ReadAttributes(property, sites, key + "." + property.Name, cancellationToken);
            projectionNames.AddRange(ProjectionNames(property, memberAttributes));
            var member = ParseMember(property, memberAttributes, sites, key, isRoot, classTrainable: !isRoot && attributes.Any(a => a.Name == TrainableAttributeName), external, references, diagnostics, cancellationToken);
            if (member is not null) members.Add(member);
        }
        // A block class's adapters reach its own projections only, so the class alone decides; the model class's
        // adapters reach into blocks and are checked per model (ModelBuilder).
        if (!isRoot) LoraResolution.CheckBlock(type.Name, classLora, members, projectionNames, diagnostics);

        var checkpointNames = new HashSet<string>(System.StringComparer.Ordinal);
        foreach (var member in members)
        {
            if (!checkpointNames.Add(member.CheckpointName))
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.BadCheckpointName, member.Site, member.CheckpointName, member.Name, "is used by another member"));
        }

        var spec = new ClassSpec(
            hierarchy,
            typeSite,
            root,
            classLora,
            classQuant,
            classPromptSpecs,
            members.ToEquatableArray(),
            projectionNames.Distinct(StringComparer.Ordinal).ToEquatableArray(),
            EquatableArray<DiagnosticInfo>.Empty,
            EquatableArray<ClassSpec>.Empty)
        {
            IsHeadClass = !isRoot && type.IsAbstract,
        };
        // Like its adapters, a block class's [Quantize4Bit] reaches its own projections only; the model class's is
        // checked per model (ModelBuilder).
        if (!isRoot) QuantResolution.CheckBlock(spec, diagnostics);
        return spec with { Diagnostics = diagnostics.ToEquatableArray() };
    }

    /// <summary>The names a [Linear] property answers to in Targets, whether or not the rest of its declaration is valid.</summary>
    private static IEnumerable<string> ProjectionNames(IPropertySymbol property, List<(string Name, AttributeReader Reader)> attributes)
    {
        if (!attributes.Any(a => a.Name == "PeftGen.LinearAttribute")) yield break;
        yield return property.Name;
        if (Readers(attributes, CheckpointNameAttributeName).FirstOrDefault()?.PositionalText(0) is { Length: > 0 } checkpointName)
            yield return checkpointName;
    }

    /// <summary>Null arguments and undefined enum values, for every PeftGen attribute (see <see cref="ArgumentRules"/>).</summary>
    private static void CheckArguments(List<(string Name, AttributeReader Reader)> attributes, List<DiagnosticInfo> diagnostics)
    {
        foreach (var attribute in attributes) ArgumentRules.Check(attribute.Reader, diagnostics);
    }

    private static RootSpec ParseRoot(AttributeReader model, bool trainAll, List<DiagnosticInfo> diagnostics)
    {
        var config = model.PositionalType(0);
        var constants = config is null
            ? new List<ConfigConstant>()
            : config.GetMembers().OfType<IFieldSymbol>().Where(f => f.IsConst && f.HasConstantValue).Select(Constant).OfType<ConfigConstant>().ToList();
        var configName = config?.ToDisplayString() ?? "?";
        // A null configuration type is reported by ArgumentRules; there is no type to look for constants in.
        if (!constants.Any(c => c.Kind == ConfigValueKind.Integer) && config is not null)
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ConfigWithoutConstants, model.PositionalSite(0), configName));

        var contextText = model.IsNull("ContextLength") ? "" : model.Named("ContextLength", "");
        var context = contextText.Length == 0
            ? null
            : new DimensionSpec(contextText, DimensionExpression.Parse(contextText), model.NamedSite("ContextLength"));
        return new RootSpec(configName, constants.ToEquatableArray(), context, model.NamedEnum("Tokenizer", SettingRules.DefaultTokenizer), trainAll,
            SixteenBit.SixteenBitResolution.Parse(model), Budget.BudgetParser.Parse(model, diagnostics));
    }

    /// <summary>An integer, floating-point or bool constant of a configuration type; null for other constants (strings, chars …).</summary>
    private static ConfigConstant? Constant(IFieldSymbol field) => field.ConstantValue switch
    {
        int i => new ConfigConstant(field.Name, ConfigValueKind.Integer, i, 0),
        long l => new ConfigConstant(field.Name, ConfigValueKind.Integer, l, 0),
        double d => new ConfigConstant(field.Name, ConfigValueKind.Real, 0, d),
        float f => new ConfigConstant(field.Name, ConfigValueKind.Real, 0, f),
        bool b => new ConfigConstant(field.Name, ConfigValueKind.Flag, b ? 1 : 0, 0),
        _ => null,
    };

    /// <summary>
    /// A setting read from the configuration (<c>BiasFrom</c>, <c>EpsFrom</c>), resolved per model; null when the
    /// argument is absent or empty. Giving the literal (<c>Bias</c>, <c>Eps</c>) as well is PEFT021.
    /// </summary>
    /// <returns>False when both are given.</returns>
    private static bool ReadSetting(AttributeReader layer, string argument, string literal, ConfigValueKind kind, string member, List<DiagnosticInfo> diagnostics, out SettingReference? setting)
    {
        var constant = layer.IsNull(argument) ? "" : layer.Named(argument, "");
        setting = constant.Length == 0 ? null : new SettingReference(argument, constant, kind, layer.NamedSite(argument));
        if (setting is null || !layer.HasNamed(literal)) return true;
        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SettingGivenTwice, layer.NamedSite(argument), argument, literal, member));
        return false;
    }

    /// <param name="classTrainable">A [Trainable] block class: every member of the block trains.</param>
    /// <param name="external">A property of a block from a referenced assembly: its generated implementation is there.</param>
    private static MemberSpec? ParseMember(IPropertySymbol property, List<(string Name, AttributeReader Reader)> attributes, SiteRecorder sites, string typeKey,
        bool isRoot, bool classTrainable, bool external, ReferencedBlocks references, List<DiagnosticInfo> diagnostics, CancellationToken cancellationToken)
    {
        CheckArguments(attributes, diagnostics);
        var layers = attributes.Where(a => LayerAttributes.ContainsKey(a.Name)).ToList();
        var loraReaders = Readers(attributes, LoraParser.AttributeName).ToList();
        var noLora = Readers(attributes, LoraParser.NoLoraAttributeName).FirstOrDefault();
        var quantReader = Readers(attributes, QuantParser.AttributeName).FirstOrDefault();
        var noQuantize = Readers(attributes, QuantParser.NoQuantizeAttributeName).FirstOrDefault();
        var trainable = Readers(attributes, TrainableAttributeName).FirstOrDefault();
        var promptReaders = Readers(attributes, SoftPromptParser.AttributeName).ToList();
        var memberSite = sites.Record(typeKey + "." + property.Name, LocationInfo.From(property.Locations.FirstOrDefault() ?? Location.None));

        if (layers.Count == 0)
        {
            // PEFT attributes without a layer attribute: the member is no projection (nor any layer).
            LoraParser.CheckPlacement(loraReaders, noLora, onProjection: false, property.Name, diagnostics);
            QuantParser.CheckPlacement(quantReader, noQuantize, onProjection: false, trainable, classTrainable, property.Name, diagnostics);
            return null;
        }

        if (layers.Count > 1)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SeveralLayerAttributes, memberSite, property.Name,
                string.Join(", ", layers.Select(l => "[" + LayerAttributes[l.Name] + "]"))));
            return null;
        }

        var layer = layers[0].Reader;
        var layerName = LayerAttributes[layers[0].Name];
        var declaration = external ? null : property.DeclaringSyntaxReferences.FirstOrDefault()?.GetSyntax(cancellationToken) as PropertyDeclarationSyntax;
        if (property.IsStatic || property.SetMethod is not null || property.GetMethod is null
            || !external && (declaration is null || !property.IsPartialDefinition || property.PartialImplementationPart is not null))
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NotPartialProperty, memberSite, property.Name));
            return null;
        }

        var propertyType = property.Type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat);
        var kind = LayerKindOf(layerName, property.Type, propertyType, out var expected);
        if (kind is null)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.WrongPropertyType, memberSite, property.Name, property.Type.ToDisplayString(), layerName, expected));
            return null;
        }

        var blockType = "";
        var blockMetadataName = "";
        if (kind is LayerKind.Stack or LayerKind.Block)
        {
            var block = kind == LayerKind.Stack ? ((INamedTypeSymbol)property.Type).TypeArguments[0] : property.Type;
            if (block is not INamedTypeSymbol named || named.TypeKind != TypeKind.Class || !HasModuleAttribute(named))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NotAPeftModule, layer.Site, property.Name, block.ToDisplayString()));
                return null;
            }
            // A block of this compilation is parsed by its own step; one from a referenced assembly is read here.
            if (named.DeclaringSyntaxReferences.Length == 0 && references.Reach(named, layer.Site, sites, asMember: true, property.Name, diagnostics) is null) return null;
            blockType = named.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat);
            blockMetadataName = TypeHierarchy.From(named).MetadataName;
        }

        var valid = true;
        var dimensions = new List<DimensionSpec>();
        var positionalCount = kind switch
        {
            LayerKind.Linear or LayerKind.TokenEmbedding or LayerKind.Embedding => 2,
            LayerKind.LayerNorm or LayerKind.RmsNorm or LayerKind.Stack => 1,
            _ => 0,
        };
        for (var i = 0; i < positionalCount; i++)
        {
            var text = layer.PositionalText(i);
            var dimension = new DimensionSpec(text, DimensionExpression.Parse(text), layer.PositionalSite(i));
            if (dimension.Expression.SyntaxError is { } error)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.BadDimension, dimension.Site, text, property.Name, error, "the model configuration"));
                valid = false;
            }
            dimensions.Add(dimension);
        }

        var owner = property.ContainingType.Name + "." + property.Name;
        var lora = LoraParser.Parse(loraReaders, owner, onMember: true, diagnostics);
        valid &= LoraParser.CheckPlacement(loraReaders, noLora, onProjection: kind == LayerKind.Linear, property.Name, diagnostics);
        var quant = QuantParser.Parse(quantReader, diagnostics);
        valid &= QuantParser.CheckPlacement(quantReader, noQuantize, onProjection: kind == LayerKind.Linear, trainable, classTrainable, property.Name, diagnostics);

        var eps = layer.Named("Eps", kind == LayerKind.RmsNorm ? SettingRules.RmsNormEps : SettingRules.LayerNormEps);
        if (!SettingRules.IsValidEps(eps))
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.BadNormEpsilon, layer.NamedSite("Eps"), layerName, property.Name, eps));
            valid = false;
        }

        SettingReference? biasFrom = null, epsFrom = null;
        if (kind == LayerKind.Linear) valid &= ReadSetting(layer, "BiasFrom", "Bias", ConfigValueKind.Flag, property.Name, diagnostics, out biasFrom);
        if (kind is LayerKind.LayerNorm or LayerKind.RmsNorm) valid &= ReadSetting(layer, "EpsFrom", "Eps", ConfigValueKind.Real, property.Name, diagnostics, out epsFrom);

        var prompts = SoftPromptParser.Parse(promptReaders, diagnostics);
        valid &= SoftPromptParser.CheckPlacement(promptReaders, onModel: kind == LayerKind.TokenEmbedding && isRoot, property.ContainingType.Name, diagnostics);

        if (!valid) return null;

        var checkpointReader = Readers(attributes, CheckpointNameAttributeName).FirstOrDefault();
        var checkpointName = checkpointReader?.PositionalText(0) ?? property.Name;
        // '.' separates path segments and '*' stands for a stack index in them (PeftLayers.Projections).
        if (checkpointName.Length == 0 || checkpointName.IndexOf('.') >= 0 || checkpointName.IndexOf('*') >= 0)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.BadCheckpointName, checkpointReader?.PositionalSite(0), checkpointName, property.Name, "is empty or contains '.' or '*'"));
            return null;
        }
        var modifiers = declaration is null ? "" : string.Join(" ", declaration.Modifiers.Where(m => !m.IsKind(SyntaxKind.PartialKeyword)).Select(m => m.Text));

        return new MemberSpec(
            property.Name,
            checkpointName,
            kind.Value,
            modifiers,
            propertyType,
            dimensions.ToEquatableArray(),
            layer.Named("Bias", SettingRules.LinearBias),
            layer.NamedEnum("CheckpointLayout", SettingRules.DefaultWeightLayout),
            eps,
            blockType,
            blockMetadataName,
            lora,
            noLora is not null,
            trainable is not null || classTrainable,
            quant,
            noQuantize is not null,
            prompts,
            biasFrom,
            epsFrom,
            memberSite);
    }

    /// <param name="name">The type's fully qualified name (<c>global::…</c>).</param>
    private static LayerKind? LayerKindOf(string layerName, ITypeSymbol type, string name, out string expected)
    {
        switch (layerName)
        {
            case "Linear":
                expected = "PeftGen.LoraLinear";
                return name == "global::PeftGen.LoraLinear" ? LayerKind.Linear : null;
            case "Embedding":
                expected = "PeftGen.TokenEmbedding (token embedding) or TorchSharp.Modules.Embedding";
                return name == "global::PeftGen.TokenEmbedding" ? LayerKind.TokenEmbedding
                    : name == "global::TorchSharp.Modules.Embedding" ? LayerKind.Embedding : null;
            case "LayerNorm":
                expected = "TorchSharp.Modules.LayerNorm";
                return name == "global::TorchSharp.Modules.LayerNorm" ? LayerKind.LayerNorm : null;
            case "RmsNorm":
                expected = "PeftGen.RmsNorm";
                return name == "global::PeftGen.RmsNorm" ? LayerKind.RmsNorm : null;
            case "Stack":
                expected = "TorchSharp.Modules.ModuleList<TBlock>";
                return type is INamedTypeSymbol { IsGenericType: true } generic
                    && generic.OriginalDefinition.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat) == ModuleListName
                    ? LayerKind.Stack : null;
            default:
                expected = "a [PeftModule] class";
                return LayerKind.Block;
        }
    }

    /// <summary>
    /// <c>PeftGen.X</c> for a (non-generic, non-nested) type <c>X</c> of namespace <c>PeftGen</c>, else empty: the only
    /// attribute names the parser compares with. Cheaper than formatting every attribute's display name, which the
    /// parse does again in each new compilation.
    /// </summary>
    private static string NameOf(INamedTypeSymbol? type)
        => type is { ContainingType: null, IsGenericType: false, ContainingNamespace: { Name: "PeftGen", ContainingNamespace.IsGlobalNamespace: true } }
            ? "PeftGen." + type.Name
            : "";

    /// <summary>
    /// Whether the generated constructor's <c>base(name)</c>, <c>register_module</c> and <c>RegisterComponents</c>
    /// compile: the class derives from TorchSharp's <c>nn.Module</c>, and its base has an accessible constructor whose
    /// only required parameter is the name.
    /// </summary>
    private static bool IsNamedModule(INamedTypeSymbol type, Compilation compilation)
    {
        var isModule = false;
        for (var current = type.BaseType; current is not null && !isModule; current = current.BaseType)
            isModule = current.OriginalDefinition.ToDisplayString() == TorchModuleName;
        return isModule && type.BaseType!.InstanceConstructors.Any(c =>
            c.Parameters.Length > 0 && c.Parameters[0].Type.SpecialType == SpecialType.System_String
            && c.Parameters.Skip(1).All(p => p.IsOptional || p.IsParams)
            && compilation.IsSymbolAccessibleWithin(c, type));
    }

    private static bool HasModuleAttribute(INamedTypeSymbol type) => type.GetAttributes().Any(a => NameOf(a.AttributeClass) == PeftModuleAttributeName);

    /// <summary>
    /// The blocks one parse reaches in referenced assemblies: each checked to carry the generated members the model's
    /// code calls (its constructor and <c>CollectPeftLayers</c>), then read from its metadata once, blocks it holds included.
    /// </summary>
    private sealed class ReferencedBlocks
    {
        private readonly HashSet<string> reached = new(StringComparer.Ordinal);
        private readonly CancellationToken cancellationToken;

        public ReferencedBlocks(Compilation compilation, string referrer, CancellationToken cancellationToken)
        {
            Compilation = compilation;
            Referrer = referrer;
            this.cancellationToken = cancellationToken;
        }

        public Compilation Compilation { get; }

        /// <summary>The metadata name of the class whose parse this is.</summary>
        public string Referrer { get; }

        /// <summary>Every external block read, in first-reached order.</summary>
        public List<ClassSpec> Blocks { get; } = new();

        /// <summary>
        /// The block's metadata name when a model can use it, else null after reporting why at <paramref name="site"/>.
        /// A block of this compilation is only named here: its own parse checks it.
        /// </summary>
        /// <param name="asMember">Held by a [Block] or [Stack] member (the model's code creates it), not derived from.</param>
        public string? Reach(INamedTypeSymbol block, SourceSite? site, SiteRecorder sites, bool asMember, string owner, List<DiagnosticInfo> diagnostics)
        {
            var name = TypeHierarchy.From(block).MetadataName;
            if (block.DeclaringSyntaxReferences.Length > 0) return name;
            var assembly = block.ContainingAssembly?.Name ?? "?";
            var problem = !Compilation.IsSymbolAccessibleWithin(block, Compilation.Assembly) ? $"it is not public; make it public in '{assembly}'"
                : asMember && block.IsAbstract ? "it is abstract; derive the model class from it, or hold a block class that is not abstract"
                : null;
            if (problem is not null)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ReferencedBlockNotConstructible, site, owner, block.ToDisplayString(), assembly, problem));
                return null;
            }
            if (MissingContract(block) is { } missing)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ReferencedBlockWithoutContract, site, owner, block.ToDisplayString(), assembly, missing));
                return null;
            }
            if (reached.Add(name))
                Blocks.Add(ParseClass(block, null, isRoot: false, external: true, sites.WithFallback(sites.LocationOf(site)), this, cancellationToken));
            return name;
        }

        /// <summary>What the block lacks of the generated members a model's code calls, or null.</summary>
        private static string? MissingContract(INamedTypeSymbol block)
        {
            var constructor = block.InstanceConstructors.Any(c => c.DeclaredAccessibility == Accessibility.Public && c.Parameters.Length == 3
                && c.Parameters[0].Type.ToDisplayString() == "PeftGen.ModelDims" && c.Parameters[1].Type.ToDisplayString().TrimEnd('?') == "PeftGen.Quant4BitOptions"
                && c.Parameters[2].Type.ToDisplayString() == "PeftGen.BaseDType");
            var collect = block.GetMembers("CollectPeftLayers").OfType<IMethodSymbol>().Any(m => m.DeclaredAccessibility == Accessibility.Public && !m.IsStatic && m.Parameters.Length == 3);
            if (constructor && collect) return null;
            return !constructor && !collect ? "its generated constructor and CollectPeftLayers"
                : !constructor ? "its generated constructor (ModelDims, Quant4BitOptions?, BaseDType)"
                : "a public CollectPeftLayers";
        }
    }

    private static bool IsPartial(INamedTypeSymbol type, CancellationToken cancellationToken)
        => type.DeclaringSyntaxReferences.Any(r => r.GetSyntax(cancellationToken) is TypeDeclarationSyntax t && t.Modifiers.Any(SyntaxKind.PartialKeyword));

    /// <summary>
    /// The PeftGen attributes on a class or member, each with a reader whose site is its owner's and its occurrence
    /// among attributes of its kind (<c>Demo.Block.proj[Lora1]</c>).
    /// </summary>
    private static List<(string Name, AttributeReader Reader)> ReadAttributes(ISymbol owner, SiteRecorder sites, string ownerKey, CancellationToken cancellationToken)
    {
        var result = new List<(string Name, AttributeReader Reader)>();
        var occurrences = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var data in owner.GetAttributes())
        {
            var name = NameOf(data.AttributeClass);
            if (name.Length == 0) continue;
            occurrences.TryGetValue(name, out var occurrence);
            occurrences[name] = occurrence + 1;
            var site = ownerKey + "[" + data.AttributeClass!.Name + occurrence.ToString(System.Globalization.CultureInfo.InvariantCulture) + "]";
            result.Add((name, new AttributeReader(data, sites, site, cancellationToken)));
        }
        return result;
    }

    private static IEnumerable<AttributeReader> Readers(List<(string Name, AttributeReader Reader)> attributes, string name)
        => attributes.Where(a => a.Name == name).Select(a => a.Reader);
}
