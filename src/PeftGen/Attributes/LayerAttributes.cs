using System;

namespace PeftGen;

/// <summary>
/// A linear projection <c>y = x·Wᵀ + b</c> from <see cref="In"/> to <see cref="Out"/> features. Declare it on a
/// partial property of type <see cref="LoraLinear"/>. Dimensions are integer literals or expressions over the model's
/// configuration constants, such as <c>"Width"</c> or <c>"3 * Width"</c>.
/// </summary>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false, Inherited = false)]
public sealed class LinearAttribute : Attribute
{
    /// <summary>Creates a projection with dimensions given as expressions over the configuration.</summary>
    public LinearAttribute(string inFeatures, string outFeatures)
    {
        In = inFeatures;
        Out = outFeatures;
    }

    /// <summary>Creates a projection with literal dimensions.</summary>
    public LinearAttribute(int inFeatures, int outFeatures)
        : this(inFeatures.ToString(System.Globalization.CultureInfo.InvariantCulture), outFeatures.ToString(System.Globalization.CultureInfo.InvariantCulture))
    {
    }

    /// <summary>Input features.</summary>
    public string In { get; }

    /// <summary>Output features.</summary>
    public string Out { get; }

    /// <summary>Whether the projection has a bias. Default true.</summary>
    public bool Bias { get; set; } = SettingRules.LinearBias;

    /// <summary>
    /// The name of a <c>const bool</c> of the model's configuration that says whether the projection has a bias, instead
    /// of <see cref="Bias"/> (<c>BiasFrom = "QkvBias"</c>: Qwen2's q/k/v projections have one, Llama's do not), so one
    /// block serves both. Empty (the default): <see cref="Bias"/> decides.
    /// </summary>
    public string BiasFrom { get; set; } = "";

    /// <summary>
    /// How checkpoints store the weight: <see cref="WeightLayout.OutIn"/> (torch.nn.Linear) or
    /// <see cref="WeightLayout.InOut"/> (GPT-2's Conv1D). The module always computes with <c>Out × In</c>.
    /// </summary>
    public WeightLayout CheckpointLayout { get; set; } = WeightLayout.OutIn;
}

/// <summary>How a checkpoint stores a projection's weight matrix.</summary>
public enum WeightLayout
{
    /// <summary><c>Out × In</c>, as torch.nn.Linear.</summary>
    OutIn = 0,

    /// <summary><c>In × Out</c>, as GPT-2's Conv1D.</summary>
    InOut = 1,
}

/// <summary>
/// An embedding table of <see cref="Count"/> rows of <see cref="Dim"/> values. Declare the token embedding as a
/// <see cref="TokenEmbedding"/> property (soft prompts attach to it) and other tables (learned positions) as
/// TorchSharp <c>Embedding</c>.
/// </summary>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false, Inherited = false)]
public sealed class EmbeddingAttribute : Attribute
{
    /// <summary>Creates the attribute.</summary>
    public EmbeddingAttribute(string count, string dim)
    {
        Count = count;
        Dim = dim;
    }

    /// <summary>Number of rows (vocabulary size or positions).</summary>
    public string Count { get; }

    /// <summary>Width of each row.</summary>
    public string Dim { get; }
}

/// <summary>Layer normalisation over <see cref="Dim"/> features (TorchSharp <c>LayerNorm</c>).</summary>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false, Inherited = false)]
public sealed class LayerNormAttribute : Attribute
{
    /// <summary>Creates the attribute.</summary>
    public LayerNormAttribute(string dim) => Dim = dim;

    /// <summary>Normalised features.</summary>
    public string Dim { get; }

    /// <summary>Added to the variance for numerical stability.</summary>
    public double Eps { get; set; } = SettingRules.LayerNormEps;

    /// <summary>
    /// The name of a <c>const double</c> (or <c>float</c>) of the model's configuration to use as the epsilon instead of
    /// <see cref="Eps"/> (<c>EpsFrom = "LayerNormEps"</c>). Empty (the default): <see cref="Eps"/> decides.
    /// </summary>
    public string EpsFrom { get; set; } = "";
}

/// <summary>Root-mean-square normalisation over <see cref="Dim"/> features (<see cref="RmsNorm"/>).</summary>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false, Inherited = false)]
public sealed class RmsNormAttribute : Attribute
{
    /// <summary>Creates the attribute.</summary>
    public RmsNormAttribute(string dim) => Dim = dim;

    /// <summary>Normalised features.</summary>
    public string Dim { get; }

    /// <summary>Added to the mean square for numerical stability.</summary>
    public double Eps { get; set; } = SettingRules.RmsNormEps;

    /// <summary>
    /// The name of a <c>const double</c> (or <c>float</c>) of the model's configuration to use as the epsilon instead of
    /// <see cref="Eps"/> (<c>EpsFrom = "RmsNormEps"</c>: Llama-2 uses 1e-5, Qwen2 1e-6). Empty (the default):
    /// <see cref="Eps"/> decides.
    /// </summary>
    public string EpsFrom { get; set; } = "";
}

/// <summary>
/// A stack of <see cref="Count"/> identical blocks: a partial property of type <c>ModuleList&lt;TBlock&gt;</c> whose
/// <c>TBlock</c> is a <see cref="PeftModuleAttribute"/> class. Checkpoint paths are <c>name.0</c>, <c>name.1</c>, ….
/// </summary>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false, Inherited = false)]
public sealed class StackAttribute : Attribute
{
    /// <summary>Creates the attribute.</summary>
    public StackAttribute(string count) => Count = count;

    /// <summary>Number of blocks.</summary>
    public string Count { get; }
}

/// <summary>A single nested <see cref="PeftModuleAttribute"/> block (for example GPT-2's <c>attn</c> inside <c>h.N</c>).</summary>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false, Inherited = false)]
public sealed class BlockAttribute : Attribute
{
}

/// <summary>
/// Overrides the name of a member's segment in checkpoint and adapter keys (by default the member's name), for
/// checkpoints whose module names are not valid or wanted C# names.
/// </summary>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false, Inherited = false)]
public sealed class CheckpointNameAttribute : Attribute
{
    /// <summary>Creates the attribute.</summary>
    public CheckpointNameAttribute(string name) => Name = name;

    /// <summary>The key segment.</summary>
    public string Name { get; }
}
