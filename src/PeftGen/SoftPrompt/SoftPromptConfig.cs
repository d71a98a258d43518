using System;

namespace PeftGen;

/// <summary>The settings of one soft prompt (PEFT's <c>PromptTuningConfig</c> for a causal LM).</summary>
/// <param name="VirtualTokens">Number of virtual tokens N prepended to every sequence.</param>
/// <param name="Init">How the prompt's values start (PEFT's <c>prompt_tuning_init</c>).</param>
/// <param name="InitText">The text whose token embeddings initialise the prompt, with <see cref="SoftPromptInit.Text"/>.</param>
/// <param name="Tokenizer">The tokenizer that turns <paramref name="InitText"/> into token ids.</param>
public sealed record SoftPromptConfig(
    int VirtualTokens,
    SoftPromptInit Init = SoftPromptInit.Random,
    string InitText = "",
    PeftTokenizer Tokenizer = PeftTokenizer.None)
{
    /// <summary>Throws when a setting is out of range (the generator rejects these at compile time too).</summary>
    public void Validate()
    {
        if (!SettingRules.IsValidVirtualTokens(VirtualTokens))
            throw new ArgumentOutOfRangeException(nameof(VirtualTokens), VirtualTokens, "A soft prompt needs at least one virtual token.");
        if (!Enum.IsDefined(Init))
            throw new ArgumentOutOfRangeException(nameof(Init), Init, "Unknown soft prompt initialisation.");
        if (!Enum.IsDefined(Tokenizer))
            throw new ArgumentOutOfRangeException(nameof(Tokenizer), Tokenizer, "Unknown tokenizer.");
        if (InitText is null) throw new ArgumentNullException(nameof(InitText));
        if (Init != SoftPromptInit.Text) return;
        if (string.IsNullOrWhiteSpace(InitText))
            throw new ArgumentException("Text initialisation needs a non-empty InitText.", nameof(InitText));
        if (Tokenizer == PeftTokenizer.None)
            throw new ArgumentException("Text initialisation needs a tokenizer; set Tokenizer (for example PeftTokenizer.Gpt2).", nameof(Tokenizer));
    }
}
