using System;
using System.Threading;

namespace PeftGen;

/// <summary>
/// Chooses, for the calls made inside a scope on the current thread or async flow, which LoRA adapter and which soft
/// prompt a model uses, without changing the model. This is how one shared base serves several tenants at once:
/// each request opens its own scope.
/// </summary>
/// <example><code>
/// using (AdapterContext.Use(adapter: "sql"))
///     logits = model.forward(tokens);
/// </code></example>
public static class AdapterContext
{
    private static readonly AsyncLocal<Selection?> Current = new();

    /// <summary>The adapter chosen by the innermost scope, or null when no scope chose one.</summary>
    public static string? Adapter => Current.Value?.Adapter;

    /// <summary>The soft prompt chosen by the innermost scope, or null when no scope chose one.</summary>
    public static string? SoftPrompt => Current.Value?.SoftPrompt;

    /// <summary>Whether the innermost scope turned adapters off (base model only).</summary>
    public static bool AdaptersDisabled => Current.Value?.Disabled ?? false;

    /// <summary>Uses the named adapter and/or soft prompt until the returned scope is disposed.</summary>
    public static IDisposable Use(string? adapter = null, string? softPrompt = null)
        => Push(new Selection(adapter ?? Adapter, softPrompt ?? SoftPrompt, Disabled: false));

    /// <summary>Runs the base model alone (no LoRA, no soft prompt) until the returned scope is disposed.</summary>
    public static IDisposable BaseOnly() => Push(new Selection(null, null, Disabled: true));

    private static IDisposable Push(Selection selection) => AmbientScope.Push(Current, selection);

    private sealed record Selection(string? Adapter, string? SoftPrompt, bool Disabled);
}
