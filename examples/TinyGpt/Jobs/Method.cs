using System;

namespace TinyGpt.Jobs;

/// <summary>The four ways the main job fine-tunes the same base.</summary>
public enum Method
{
    /// <summary>Every weight trains.</summary>
    Full,

    /// <summary>LoRA adapters on every projection; the base is frozen.</summary>
    Lora,

    /// <summary>LoRA adapters on a frozen NF4 base.</summary>
    QLora,

    /// <summary>A 20-token soft prompt; the whole model is frozen.</summary>
    Prompt,
}

/// <summary>Names of methods as the command line and reports spell them.</summary>
public static class MethodNames
{
    /// <summary>The command-line name.</summary>
    public static string Cli(this Method method) => method switch
    {
        Method.Full => "full",
        Method.Lora => "lora",
        Method.QLora => "qlora",
        Method.Prompt => "prompt",
        _ => throw new ArgumentOutOfRangeException(nameof(method), method, null),
    };

    /// <summary>The name in tables.</summary>
    public static string Display(this Method method) => method switch
    {
        Method.Full => "Full fine-tuning",
        Method.Lora => "LoRA",
        Method.QLora => "QLoRA (NF4)",
        Method.Prompt => "Prompt tuning",
        _ => throw new ArgumentOutOfRangeException(nameof(method), method, null),
    };

    /// <summary>Parses a command-line name (case-insensitive).</summary>
    /// <returns>False when <paramref name="name"/> names no method.</returns>
    public static bool TryParse(string name, out Method method)
    {
        foreach (var candidate in Enum.GetValues<Method>())
        {
            if (string.Equals(candidate.Cli(), name, StringComparison.OrdinalIgnoreCase))
            {
                method = candidate;
                return true;
            }
        }
        method = default;
        return false;
    }
}
