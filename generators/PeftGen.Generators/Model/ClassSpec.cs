using System.Linq;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Lora;
using PeftGen.Generators.Quantization;
using PeftGen.Generators.SoftPrompt;

namespace PeftGen.Generators.Model;

/// <summary>What a layer member is.</summary>
internal enum LayerKind
{
    Linear,
    TokenEmbedding,
    Embedding,
    LayerNorm,
    RmsNorm,
    Stack,
    Block,
}

/// <summary>A dimension argument: its text, parsed expression and the site of the attribute argument.</summary>
internal sealed record DimensionSpec(string Text, DimensionExpression Expression, SourceSite? Site);

/// <summary>
/// A setting a member reads from the model's configuration instead of a literal (<c>BiasFrom = "QkvBias"</c>,
/// <c>EpsFrom = "RmsNormEps"</c>): resolved, and checked, against each model that reaches the member.
/// </summary>
/// <param name="Argument">The attribute argument (<c>BiasFrom</c>, <c>EpsFrom</c>).</param>
/// <param name="Constant">The configuration constant it names.</param>
/// <param name="Kind">The kind of constant it needs.</param>
internal sealed record SettingReference(string Argument, string Constant, ConfigValueKind Kind, SourceSite? Site);

/// <summary>One partial layer property of a model or module class.</summary>
/// <param name="Name">The property name.</param>
/// <param name="CheckpointName">The module name in checkpoints (the member name or [CheckpointName]).</param>
/// <param name="Modifiers">The declaration's modifiers other than <c>partial</c>, repeated by the implementation.</param>
/// <param name="PropertyType">The property's <c>global::</c>-qualified type.</param>
/// <param name="Dimensions">In/Out, Count/Dim, Dim or Count, depending on <paramref name="Kind"/>.</param>
/// <param name="BlockType">For stacks and blocks: the block class's <c>global::</c>-qualified name.</param>
/// <param name="CheckpointLayout">The <c>WeightLayout</c> member name.</param>
/// <param name="BlockMetadataName">For stacks and blocks: the block class's metadata name, to find its spec.</param>
internal sealed record MemberSpec(
    string Name,
    string CheckpointName,
    LayerKind Kind,
    string Modifiers,
    string PropertyType,
    EquatableArray<DimensionSpec> Dimensions,
    bool Bias,
    string CheckpointLayout,
    double Eps,
    string BlockType,
    string BlockMetadataName,
    EquatableArray<AdapterSpec> Lora,
    bool NoLora,
    bool Trainable,
    QuantSpec? Quantization,
    bool NoQuantize,
    EquatableArray<SoftPromptSpec> SoftPrompts,
    SettingReference? BiasFrom,
    SettingReference? EpsFrom,
    SourceSite? Site);

/// <summary>What the <c>[PeftModel]</c> attribute says about a root class.</summary>
/// <param name="ConfigType">The configuration type's display name.</param>
/// <param name="Constants">The configuration's integer, floating-point and bool constants, in declaration order.</param>
/// <param name="ContextLength">The context length dimension, if any.</param>
/// <param name="Tokenizer">The <c>PeftTokenizer</c> member name.</param>
/// <param name="TrainAll">Class-level <c>[Trainable]</c>: full fine-tuning.</param>
/// <param name="BaseDType">The 16-bit dtype of the frozen projection bases; null for float32.</param>
/// <param name="Budget">The memory budget, batch and sequence of the training memory estimate; null when none is declared.</param>
internal sealed record RootSpec(
    string ConfigType,
    EquatableArray<ConfigConstant> Constants,
    DimensionSpec? ContextLength,
    string Tokenizer,
    bool TrainAll,
    SixteenBit.SixteenBitSpec? BaseDType = null,
    PeftGen.Generators.Budget.BudgetSpec? Budget = null)
{
    /// <summary>
    /// The metadata name of the <c>[PeftModule]</c> the model class derives from (an architecture's head class, such as
    /// <c>Qwen2ForCausalLM</c>), whose members come first and are built by its constructor; empty when it derives from none.
    /// </summary>
    public string BaseBlock { get; init; } = "";
}

/// <summary>What kind of value a configuration constant holds.</summary>
internal enum ConfigValueKind
{
    /// <summary><c>const int</c> or <c>const long</c>: a dimension.</summary>
    Integer,

    /// <summary><c>const double</c> or <c>const float</c>: a setting such as a norm epsilon or rope theta.</summary>
    Real,

    /// <summary><c>const bool</c>: a switch such as whether q/k/v projections have a bias.</summary>
    Flag,
}

/// <summary>A named constant of a model's configuration type.</summary>
/// <param name="Value">The value of an integer constant (1 or 0 for a bool); 0 for a floating-point one.</param>
/// <param name="Real">The value of a floating-point constant (a <c>float</c> widened to <c>double</c>); 0 otherwise.</param>
internal sealed record ConfigConstant(string Name, ConfigValueKind Kind, long Value, double Real)
{
    /// <summary>How the kind is named to users: the C# type that declares it (<c>int</c>, <c>double</c>, <c>bool</c>).</summary>
    public static string Describe(ConfigValueKind kind) => kind switch
    {
        ConfigValueKind.Integer => "int",
        ConfigValueKind.Real => "double",
        _ => "bool",
    };
}

/// <summary>
/// One <c>[PeftModel]</c> or <c>[PeftModule]</c> class, as parsed from its own declaration.
/// </summary>
/// <param name="ProjectionNames">The member and checkpoint names of every [Linear] property, valid or not: what
/// <c>Targets</c> entries are matched against.</param>
/// <remarks>
/// Holds only primitives, strings, enums and <see cref="EquatableArray{T}"/>: no symbol, syntax node, compilation or
/// location survives the first transform, so the incremental pipeline can compare specs and cache. Diagnostics and
/// the members they point at name <see cref="SourceSite"/>s, not locations, so an edit that only moves text leaves the
/// spec equal; where the sites are travels beside it in <see cref="ParsedClass"/>.
/// </remarks>
/// <param name="Site">The class's identifier.</param>
/// <param name="ExternalBlocks">The blocks of referenced assemblies this class reaches, read from their metadata
/// (transitively): a model's resolution finds them here, since no step of this compilation parses them.</param>
internal sealed record ClassSpec(
    TypeHierarchy Type,
    SourceSite? Site,
    RootSpec? Root,
    EquatableArray<AdapterSpec> ClassLora,
    QuantSpec? ClassQuantization,
    EquatableArray<SoftPromptSpec> ClassSoftPrompts,
    EquatableArray<MemberSpec> Members,
    EquatableArray<string> ProjectionNames,
    EquatableArray<DiagnosticInfo> Diagnostics,
    EquatableArray<ClassSpec> ExternalBlocks)
{
    /// <summary>
    /// An abstract block: a model class can only derive from it (an architecture's head class), so its members are the
    /// model's own, and its <c>lm_head</c> is the model's output head.
    /// </summary>
    public bool IsHeadClass { get; init; }

    /// <summary>False when the class has an error: nothing is emitted for it (nor for a model that reaches it).</summary>
    public bool IsValid => Diagnostics.All(d => DiagnosticDescriptors.ById(d.Id).DefaultSeverity != Microsoft.CodeAnalysis.DiagnosticSeverity.Error);
}

/// <summary>
/// What the parse of one class yields: its spec, which feeds the source outputs and holds no locations, and where each
/// of its sites is in this compilation, which only the reporting of diagnostics reads.
/// </summary>
internal sealed record ParsedClass(ClassSpec Spec, EquatableArray<SiteLocation> Sites);
