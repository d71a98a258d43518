using System;

namespace PeftGen;

/// <summary>
/// Prompt tuning: <see cref="VirtualTokens"/> trainable embeddings prepended to every sequence's token embeddings.
/// Put it on the model class or on its token embedding member. Repeat with different <see cref="Name"/>s for
/// several prompts (one per tenant), chosen per call.
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Property, AllowMultiple = true, Inherited = false)]
public sealed class SoftPromptAttribute : Attribute
{
    /// <summary>Creates the attribute.</summary>
    public SoftPromptAttribute(int virtualTokens) => VirtualTokens = virtualTokens;

    /// <summary>Number of virtual tokens N.</summary>
    public int VirtualTokens { get; }

    /// <summary>How the prompt is initialised. Default <see cref="SoftPromptInit.Random"/>, as in PEFT.</summary>
    public SoftPromptInit Init { get; set; } = SoftPromptInit.Random;

    /// <summary>The text whose token embeddings initialise the prompt, with <see cref="SoftPromptInit.Text"/>.</summary>
    public string InitText { get; set; } = "";

    /// <summary>Prompt name. Default <c>"default"</c>.</summary>
    public string Name { get; set; } = SettingRules.DefaultName;
}

/// <summary>Soft prompt initialisation, as PEFT's <c>PromptTuningInit</c>.</summary>
public enum SoftPromptInit
{
    /// <summary>Normal random values.</summary>
    Random = 0,

    /// <summary>Copies of random rows of the frozen token embedding.</summary>
    SampleVocab = 1,

    /// <summary>The token embeddings of <see cref="SoftPromptAttribute.InitText"/>, repeated or truncated to N tokens.</summary>
    Text = 2,
}
