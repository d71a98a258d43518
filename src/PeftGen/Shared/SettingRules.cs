namespace PeftGen;

/// <summary>
/// The defaults and valid ranges of PeftGen's settings, stated once. This file is compiled into the runtime (the
/// attributes' defaults, the <c>Validate</c> methods) and, as a linked source file, into the source generator (its
/// compile-time checks and the values it emits), so what the compiler accepts and what the runtime accepts cannot
/// drift apart.
/// </summary>
/// <remarks>
/// It builds for netstandard2.0 (the generator) and the runtime's target alike, so it uses only what both offer.
/// Enum defaults are given by member name: the generator reads enum members from the runtime's enum types themselves.
/// </remarks>
internal static class SettingRules
{
    /// <summary>The adapter and soft prompt name when none is given, as in PEFT.</summary>
    public const string DefaultName = "default";

    /// <summary>LoRA rank r when none is given.</summary>
    public const int LoraRank = 8;

    /// <summary>LoRA alpha when none is given.</summary>
    public const double LoraAlpha = 8;

    /// <summary>LoRA dropout when none is given.</summary>
    public const double LoraDropout = 0;

    /// <summary>Whether a projection has a bias when not said.</summary>
    public const bool LinearBias = true;

    /// <summary>Default <c>[LayerNorm]</c> epsilon (torch.nn.LayerNorm's).</summary>
    public const double LayerNormEps = 1e-5;

    /// <summary>Default <c>[RmsNorm]</c> epsilon (Llama's).</summary>
    public const double RmsNormEps = 1e-6;

    /// <summary>Values per 4-bit absmax block when none is given.</summary>
    public const int QuantBlockSize = 64;

    /// <summary>Whether 4-bit absmax values are quantized again when not said.</summary>
    public const bool QuantDoubleQuant = true;

    /// <summary>
    /// The checkpoint name of a causal language model's output head (transformers' <c>lm_head</c>): a class-level or
    /// model-level <c>[Quantize4Bit]</c> leaves the model class's own projection of this name in full precision, as
    /// transformers' bitsandbytes integration does by default.
    /// </summary>
    public const string OutputHeadName = "lm_head";

    /// <summary>The smallest and largest 4-bit block sizes bitsandbytes supports.</summary>
    public const int MinQuantBlockSize = 32, MaxQuantBlockSize = 4096;

    /// <summary>Default member names of the settings' enums.</summary>
    public const string DefaultQuantType = "Nf4", DefaultComputeDType = "Auto", DefaultWeightLayout = "OutIn",
        DefaultSoftPromptInit = "Random", DefaultTokenizer = "None";

    /// <summary>A LoRA rank must be positive (and, per projection, at most min(In, Out)).</summary>
    public static bool IsValidRank(int rank) => rank > 0;

    /// <summary>LoRA alpha: positive and finite, so that <c>scale = Alpha / Rank</c> is.</summary>
    public static bool IsValidAlpha(double alpha) => alpha > 0 && !double.IsInfinity(alpha);

    /// <summary>LoRA dropout is a probability in [0, 1) (NaN is not).</summary>
    public static bool IsValidDropout(double dropout) => dropout >= 0 && dropout < 1;

    /// <summary>bitsandbytes' block sizes: a power of two from 32 to 4096.</summary>
    public static bool IsValidQuantBlockSize(int blockSize)
        => blockSize >= MinQuantBlockSize && blockSize <= MaxQuantBlockSize && (blockSize & (blockSize - 1)) == 0;

    /// <summary>A norm epsilon: positive and finite.</summary>
    public static bool IsValidEps(double eps) => eps > 0 && !double.IsInfinity(eps);

    /// <summary>A soft prompt needs at least one virtual token.</summary>
    public static bool IsValidVirtualTokens(int virtualTokens) => virtualTokens > 0;

    /// <summary>Adapter and soft prompt names become module names (<c>lora_A.{name}</c>): non-empty, without '.'.</summary>
    public static bool IsValidModuleName(string? name) => !string.IsNullOrEmpty(name) && name!.IndexOf('.') < 0;
}
