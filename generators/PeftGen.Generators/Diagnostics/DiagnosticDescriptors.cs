using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;

namespace PeftGen.Generators.Diagnostics;

/// <summary>
/// Every diagnostic PeftGen reports. IDs by range: PEFT0xx general, PEFT1xx LoRA, PEFT2xx 4-bit quantization,
/// PEFT3xx soft prompts, PEFT4xx memory (16-bit bases, the memory budget),
/// PEFT5xx blocks from referenced assemblies. Each links to its entry in <c>docs/diagnostics.md</c>.
/// </summary>
internal static class DiagnosticDescriptors
{
    private const string General = "PeftGen";
    private const string Lora = "PeftGen.Lora";
    private const string Quantization = "PeftGen.Quantization";
    private const string SoftPrompt = "PeftGen.SoftPrompt";
    private const string Memory = "PeftGen.Memory";
    /// <summary>
    /// Each ID's section of <c>docs/diagnostics.md</c>, by a path relative to the repository root and the package root
    /// (the package ships the file there), so the link never points at a host that does not serve it.
    /// </summary>
    private const string HelpBase = "docs/diagnostics.md#";

    public static readonly DiagnosticDescriptor GeneratorFailure = Error("PEFT000", General,
        "PeftGen failed on a class",
        "PeftGen could not process '{0}' ({1}); nothing was generated for it. Please report this with the class's declaration; other classes are unaffected");

    public static readonly DiagnosticDescriptor NotPartial = Error("PEFT001", General,
        "Type is not partial",
        "'{0}' must be declared partial (add the 'partial' modifier) so the generator can implement its members");

    public static readonly DiagnosticDescriptor GenericType = Error("PEFT002", General,
        "Generic model or module type",
        "'{0}' is generic; a [PeftModel] or [PeftModule] class cannot have type parameters (give each size its own config type instead)");

    public static readonly DiagnosticDescriptor NotPartialProperty = Error("PEFT003", General,
        "Layer member is not a partial get-only instance property",
        "'{0}' must be declared as a partial instance property with only a 'get' accessor, e.g. 'public partial LoraLinear {0} {{ get; }}'");

    public static readonly DiagnosticDescriptor WrongPropertyType = Error("PEFT004", General,
        "Property type does not fit its layer attribute",
        "'{0}' is declared as '{1}' but [{2}] needs {3}");

    public static readonly DiagnosticDescriptor BadDimension = Error("PEFT005", General,
        "Dimension is not positive or does not resolve",
        "Dimension '{0}' of '{1}' {2}; use a positive integer literal or an expression (+ - * / and parentheses) over the integer constants of '{3}'");

    public static readonly DiagnosticDescriptor ConfigWithoutConstants = Error("PEFT006", General,
        "Configuration type has no integer constants",
        "The configuration type '{0}' has no 'const int' or 'const long' fields; declare the model's dimensions there, e.g. 'public const int Width = 768;'");

    public static readonly DiagnosticDescriptor NotAPeftModule = Error("PEFT007", General,
        "Block type is not a [PeftModule]",
        "'{0}' holds '{1}', which is not a partial class marked [PeftModule]; mark it [PeftModule] (for [Stack] the property type is ModuleList<TBlock>)");

    public static readonly DiagnosticDescriptor SeveralLayerAttributes = Error("PEFT008", General,
        "Member has several layer attributes",
        "'{0}' has more than one layer attribute ({1}); keep exactly one of [Linear], [Embedding], [LayerNorm], [RmsNorm], [Stack], [Block]");

    public static readonly DiagnosticDescriptor RecursiveBlock = Error("PEFT009", General,
        "Block contains itself",
        "'{0}' reaches '{1}' again through its blocks; a model must be a finite tree of blocks");

    public static readonly DiagnosticDescriptor NothingTrainable = Warning("PEFT010", General,
        "Model has nothing trainable",
        "Model '{0}' has no LoRA adapter, soft prompt or [Trainable] member, so training would update nothing; add [Lora] to a projection or to the class");

    public static readonly DiagnosticDescriptor ModelAndModule = Error("PEFT011", General,
        "Class is both a model and a module",
        "'{0}' is marked both [PeftModel] and [PeftModule]; keep [PeftModel] on the root and [PeftModule] on blocks");

    public static readonly DiagnosticDescriptor BadCheckpointName = Error("PEFT012", General,
        "Invalid or duplicate checkpoint name",
        "Checkpoint name '{0}' of '{1}' {2}; module names must be non-empty, contain no '.' or '*', and be unique within a class");

    public static readonly DiagnosticDescriptor OwnConstructor = Error("PEFT013", General,
        "Class declares its own constructor",
        "'{0}' declares a constructor, but the generator writes the constructor of a [PeftModel]/[PeftModule] class; move the code into 'partial void OnCreated()'");

    public static readonly DiagnosticDescriptor NullArgument = Error("PEFT014", General,
        "Attribute argument is null",
        "{0} of [{1}] is null; {2}");

    public static readonly DiagnosticDescriptor UndefinedEnumValue = Error("PEFT015", General,
        "Attribute argument is not a defined enum value",
        "{0} = {1} on [{2}] is not a value of {3}; use one of {4}");

    public static readonly DiagnosticDescriptor BadNormEpsilon = Error("PEFT016", General,
        "Norm epsilon is not a positive finite number",
        "Eps of [{0}] on '{1}' is {2}; use a small positive number such as 1e-5 (it is added to the variance)");

    public static readonly DiagnosticDescriptor CountOverflow = Error("PEFT017", General,
        "Parameter count overflows",
        "The parameter count of model '{0}' overflows a 64-bit integer; check the dimensions of its members and the constants of '{1}'");

    public static readonly DiagnosticDescriptor NotANamedModule = Error("PEFT018", General,
        "Class is not a TorchSharp module constructed by name",
        "'{0}' must derive from TorchSharp's nn.Module through a base class with an accessible constructor taking the module's name (a string), such as nn.Module<Tensor, Tensor>: the generated constructor calls base(\"{0}\") and registers the layers");

    public static readonly DiagnosticDescriptor SettingNotFound = Error("PEFT019", General,
        "Configuration setting not found",
        "{0} of '{1}' names '{2}', which is not a constant of '{3}' (reached by model '{4}'); declare 'public const {5} {2} = …;' in '{3}', or name one of its {5} constants: {6}");

    public static readonly DiagnosticDescriptor SettingWrongType = Error("PEFT020", General,
        "Configuration setting has the wrong type",
        "{0} of '{1}' names '{2}' of '{4}' (reached by model '{5}'), which is declared '{3}', but {0} needs a '{6}' constant; declare '{2}' as 'const {6}', or name another constant");

    public static readonly DiagnosticDescriptor SettingGivenTwice = Error("PEFT021", General,
        "Setting given both as a value and from the configuration",
        "'{2}' gives both {0} and {1}; keep {0} to read the value from the model's configuration, or {1} to write it here");

    public static readonly DiagnosticDescriptor ReservedMemberName = Error("PEFT022", General,
        "Member name is taken by generated code",
        "'{1}' declares '{0}', which the generator declares in every {2} class; rename the member (read the generated one instead)");

    public static readonly DiagnosticDescriptor ModelDerivesFromConcreteBlock = Warning("PEFT023", General,
        "Model derives from a block that is not abstract",
        "'{0}' derives from block '{1}', which is not abstract: both have a public Dims, and TorchSharp's Module.to (to a device or a dtype) throws on a module with two public properties of one name; make '{1}' abstract (a head class, whose Dims the generator makes protected), or hold it as a [Block] member");

    public static readonly DiagnosticDescriptor RankNotPositive = Error("PEFT101", Lora,
        "LoRA rank is not positive",
        "LoRA rank of adapter '{0}' is {1}; use a positive rank such as 8");

    public static readonly DiagnosticDescriptor RankTooLarge = Error("PEFT102", Lora,
        "LoRA rank exceeds min(In, Out)",
        "LoRA rank {0} of adapter '{1}' on '{2}' exceeds min(In, Out) = {3} in model '{4}'; use a rank of at most {3}");

    public static readonly DiagnosticDescriptor AlphaNotPositive = Error("PEFT103", Lora,
        "LoRA alpha is not a positive finite number",
        "LoRA alpha of adapter '{0}' is {1}; use a positive finite alpha (PEFT commonly uses 2 × rank)");

    public static readonly DiagnosticDescriptor DropoutOutOfRange = Error("PEFT104", Lora,
        "LoRA dropout outside [0, 1)",
        "LoRA dropout of adapter '{0}' is {1}; use a probability from 0 (inclusive) to 1 (exclusive), e.g. 0.05");

    public static readonly DiagnosticDescriptor LoraOnNonProjection = Error("PEFT105", Lora,
        "[Lora] on a member that is not a projection",
        "[{0}] is on '{1}', which is not a [Linear] projection; LoRA applies to projections only, remove the attribute or put it on a [Linear] member");

    public static readonly DiagnosticDescriptor DuplicateAdapter = Error("PEFT106", Lora,
        "Duplicate LoRA adapter name",
        "Adapter '{0}' is declared more than once on '{1}'; give each [Lora] on one member or class a distinct Adapter name");

    public static readonly DiagnosticDescriptor BadAdapterName = Error("PEFT107", Lora,
        "Invalid LoRA adapter name",
        "Adapter name '{0}' is empty or contains '.'; use a non-empty name without dots (it becomes a module name)");

    public static readonly DiagnosticDescriptor UnmatchedTarget = Error("PEFT108", Lora,
        "LoRA target matches no projection",
        "Target '{0}' of adapter '{1}' matches no projection {2}; {3}");

    public static readonly DiagnosticDescriptor AdapterReachesNothing = Warning("PEFT109", Lora,
        "LoRA adapter reaches no projection",
        "Adapter '{0}' on '{1}' reaches no projection: {2}; remove the [Lora] or point it at a projection");

    public static readonly DiagnosticDescriptor TargetsOnMember = Error("PEFT110", Lora,
        "Targets on a member-level [Lora]",
        "[Lora] on '{0}' sets Targets, which only a class-level [Lora] reads (a member-level adapter applies to its own member); remove Targets, or move the [Lora] to the class");

    public static readonly DiagnosticDescriptor DuplicateTarget = Warning("PEFT111", Lora,
        "LoRA target listed twice",
        "Target '{0}' is listed more than once in adapter '{1}'; remove the repeat (or did you mean another projection?)");

    public static readonly DiagnosticDescriptor BadBlockSize = Error("PEFT201", Quantization,
        "4-bit block size is not a power of two from 32 to 4096",
        "BlockSize {0} is not a power of two from 32 to 4096; use 64 (the default) or another power of two in range");

    public static readonly DiagnosticDescriptor QuantizeNonProjection = Error("PEFT202", Quantization,
        "[Quantize4Bit] on a member that is not a projection",
        "[Quantize4Bit] is on '{0}', which is not a [Linear] projection; embeddings and norms stay in full precision, remove the attribute");

    public static readonly DiagnosticDescriptor QuantizedTrainable = Error("PEFT203", Quantization,
        "4-bit member marked [Trainable]",
        "'{0}' is stored in 4 bits and also marked [Trainable]; a 4-bit base cannot be trained directly, remove one of the two (train it through LoRA instead)");

    public static readonly DiagnosticDescriptor QuantizedWithoutLora = Warning("PEFT204", Quantization,
        "4-bit model without LoRA",
        "Model '{0}' stores projections in 4 bits but no LoRA adapter, soft prompt or [Trainable] member trains; a 4-bit base stays frozen, so add [Lora] to the quantized projections or to the model class (QLoRA)");

    public static readonly DiagnosticDescriptor NoQuantizeNonProjection = Error("PEFT205", Quantization,
        "[NoQuantize] on a member that is not a projection",
        "[NoQuantize] is on '{0}', which is not a [Linear] projection; only projections are stored in 4 bits (embeddings and norms always stay in full precision), remove the attribute");

    public static readonly DiagnosticDescriptor NoQuantizeWithQuantize = Error("PEFT206", Quantization,
        "[NoQuantize] together with [Quantize4Bit] on one member",
        "'{0}' has both [Quantize4Bit] and [NoQuantize]; remove [NoQuantize] to store it in 4 bits, or [Quantize4Bit] to keep it in full precision");

    public static readonly DiagnosticDescriptor QuantizationReachesNothing = Warning("PEFT207", Quantization,
        "[Quantize4Bit] reaches no projection",
        "[Quantize4Bit] on '{0}' stores no projection in 4 bits: each projection it would reach is [Trainable], [NoQuantize], the model's output head 'lm_head' or has its own [Quantize4Bit] (or there is none); remove it, or put it where a projection takes it");

    public static readonly DiagnosticDescriptor PromptLengthNotPositive = Error("PEFT301", SoftPrompt,
        "Soft prompt length is not positive",
        "Soft prompt '{0}' has {1} virtual tokens; use a positive number such as 20");

    public static readonly DiagnosticDescriptor PromptTooLong = Error("PEFT302", SoftPrompt,
        "Soft prompt not shorter than the context",
        "Soft prompt '{0}' has {1} virtual tokens but model '{2}' has a context of {3}; use fewer virtual tokens so real tokens still fit");

    public static readonly DiagnosticDescriptor PromptWithoutTokenEmbedding = Error("PEFT303", SoftPrompt,
        "Soft prompt without a token embedding",
        "Soft prompt '{0}' needs model '{1}' to have one [Embedding] member of type TokenEmbedding, in the model class or in a [Block] it reaches (not inside a [Stack]); put [SoftPrompt] on the model class or on that member of the model class");

    public static readonly DiagnosticDescriptor PromptTextMissing = Error("PEFT304", SoftPrompt,
        "Text initialisation without text",
        "Soft prompt '{0}' uses Init = SoftPromptInit.Text but InitText is empty; set InitText or use another Init");

    public static readonly DiagnosticDescriptor PromptTextWithoutTokenizer = Error("PEFT305", SoftPrompt,
        "Text initialisation without a tokenizer",
        "Soft prompt '{0}' is initialised from text but model '{1}' has no tokenizer; set Tokenizer on [PeftModel] (e.g. PeftTokenizer.Gpt2)");

    public static readonly DiagnosticDescriptor DuplicatePrompt = Error("PEFT306", SoftPrompt,
        "Duplicate soft prompt name",
        "Soft prompt '{0}' is declared more than once on model '{1}'; give each [SoftPrompt] a distinct Name");

    public static readonly DiagnosticDescriptor VocabularyTooSmall = Error("PEFT307", SoftPrompt,
        "Token embedding smaller than the tokenizer's vocabulary",
        "Soft prompt '{0}' is initialised from text with the {1} tokenizer ({2} tokens), but the token embedding of '{3}' has only {4} rows; use a vocabulary of at least {2} or another Init");

    public static readonly DiagnosticDescriptor BadPromptName = Error("PEFT308", SoftPrompt,
        "Invalid soft prompt name",
        "Soft prompt name '{0}' is empty or contains '.'; use a non-empty name without dots (it becomes a module name)");

    public static readonly DiagnosticDescriptor SixteenBitFullFineTuning = Error("PEFT401", Memory,
        "16-bit bases with full fine-tuning",
        "Model '{0}' trains every base weight ([Trainable] on the class) but stores its frozen bases in {1}; a 16-bit base cannot train (training keeps float32 master weights), so remove BaseDType or the class-level [Trainable]");

    public static readonly DiagnosticDescriptor SixteenBitReachesNothing = Warning("PEFT402", Memory,
        "BaseDType reaches no frozen float projection",
        "BaseDType {1} on model '{0}' stores nothing in 16 bits: every projection trains or is 4-bit without a bias (embeddings and norms stay float32); remove BaseDType");

    public static readonly DiagnosticDescriptor MalformedBudget = Error("PEFT403", Memory,
        "MemoryBudget is not a size",
        "MemoryBudget \"{0}\" is not a size; write a positive number, one space and a unit: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), e.g. \"24 GiB\"");

    public static readonly DiagnosticDescriptor BudgetExceeded = Error("PEFT404", Memory,
        "Training memory estimate exceeds MemoryBudget",
        "Model '{0}' needs an estimated {1} to train at Batch = {2} × Sequence = {3}, over its MemoryBudget of {4} ({5}); largest: {6}; {7}");

    public static readonly DiagnosticDescriptor BadBatchOrSequence = Error("PEFT405", Memory,
        "Batch or Sequence out of range",
        "{0} = {1} on [PeftModel] {2}");

    public static readonly DiagnosticDescriptor BudgetWithoutSequence = Error("PEFT406", Memory,
        "MemoryBudget without Sequence",
        "MemoryBudget needs the sequence length its activations are estimated for; add Sequence (tokens per sequence) and, if not 1, Batch to [PeftModel]");

    public static readonly DiagnosticDescriptor ActivationsUnknown = Error("PEFT407", Memory,
        "Activations cannot be estimated",
        "The memory estimate of model '{0}' needs {1}; declare it, or remove Sequence and MemoryBudget");
    public static readonly DiagnosticDescriptor ReferencedBlockWithoutContract = Error("PEFT501", General,
        "Block from a referenced assembly was not built by PeftGen",
        "'{0}' uses '{1}' from assembly '{2}', which lacks the members PeftGen generates for a [PeftModule] ({3}); build '{2}' with PeftGen's generator (the PeftGen package, or an analyzer reference to PeftGen.Generators) of this version");

    public static readonly DiagnosticDescriptor ReferencedBlockNotConstructible = Error("PEFT502", General,
        "Block from a referenced assembly cannot be built here",
        "'{0}' uses '{1}' from assembly '{2}', which this project cannot build: {3}");

    private static readonly Dictionary<string, DiagnosticDescriptor> DescriptorsById = typeof(DiagnosticDescriptors)
        .GetFields()
        .Where(f => f.FieldType == typeof(DiagnosticDescriptor))
        .Select(f => (DiagnosticDescriptor)f.GetValue(null)!)
        .ToDictionary(d => d.Id);

    public static IEnumerable<DiagnosticDescriptor> All => DescriptorsById.Values.OrderBy(d => d.Id, System.StringComparer.Ordinal);

    public static DiagnosticDescriptor ById(string id) => DescriptorsById[id];

    private static DiagnosticDescriptor Error(string id, string category, string title, string message)
        => new(id, title, message, category, DiagnosticSeverity.Error, isEnabledByDefault: true, helpLinkUri: HelpBase + id.ToLowerInvariant());

    private static DiagnosticDescriptor Warning(string id, string category, string title, string message)
        => new(id, title, message, category, DiagnosticSeverity.Warning, isEnabledByDefault: true, helpLinkUri: HelpBase + id.ToLowerInvariant());
}
