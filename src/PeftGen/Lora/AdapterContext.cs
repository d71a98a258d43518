using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;

namespace PeftGen;

/// <summary>
/// Chooses, for the calls made inside a scope on the current thread or async flow, which LoRA adapter and which soft
/// prompt a model uses, without changing the model. This is how one shared base serves several tenants at once:
/// each request opens its own scope, or one batch names an adapter per row (<see cref="UsePerRow(IPeftModel, IReadOnlyList{string?}?, IReadOnlyList{string?}?)"/>).
/// </summary>
/// <example><code>
/// using (AdapterContext.Use(adapter: "sql"))
///     logits = model.forward(tokens);
///
/// using (AdapterContext.UsePerRow(model, adapters: ["sql", "chat", null, "sql"]))   // null: the base alone for that row
///     logits = model.forward(fourRows);
/// </code></example>
public static class AdapterContext
{
    private static readonly AsyncLocal<Selection?> Current = new();

    /// <summary>The adapter chosen by the innermost scope, or null when no scope chose one (or it chose per row).</summary>
    public static string? Adapter => Current.Value?.Adapter;

    /// <summary>The soft prompt chosen by the innermost scope, or null when no scope chose one (or it chose per row).</summary>
    public static string? SoftPrompt => Current.Value?.SoftPrompt;

    /// <summary>Whether the innermost scope turned adapters off (base model only).</summary>
    public static bool AdaptersDisabled => Current.Value?.Disabled ?? false;

    /// <summary>
    /// The LoRA adapter of each row of the batch (dimension 0 of a projection's input) when a
    /// <see cref="UsePerRow(IReadOnlyList{string?}?, IReadOnlyList{string?}?)"/> scope chose them, else null. A null
    /// entry means no adapter for that row.
    /// </summary>
    public static IReadOnlyList<string?>? RowAdapters => Current.Value?.RowAdapters;

    /// <summary>The soft prompt of each row when a per-row scope chose them, else null. A null entry means no prompt for that row.</summary>
    public static IReadOnlyList<string?>? RowSoftPrompts => Current.Value?.RowSoftPrompts;

    /// <summary>
    /// Whether the per-row adapter names were checked against a whole model, so a projection that lacks one of them
    /// leaves those rows to its base (the adapter targets other projections) instead of refusing the name.
    /// </summary>
    internal static bool RowAdaptersCheckedByModel => Current.Value?.CheckedByModel ?? false;

    /// <summary>Uses the named adapter and/or soft prompt until the returned scope is disposed.</summary>
    /// <remarks>A name given here replaces, for every row, a per-row choice of the enclosing scope.</remarks>
    public static IDisposable Use(string? adapter = null, string? softPrompt = null)
    {
        var outer = Current.Value;
        return Push(new Selection(
            adapter ?? Adapter,
            softPrompt ?? SoftPrompt,
            Disabled: false,
            adapter is null ? outer?.RowAdapters : null,
            softPrompt is null ? outer?.RowSoftPrompts : null,
            adapter is null && (outer?.CheckedByModel ?? false)));
    }

    /// <summary>Runs the base model alone (no LoRA, no soft prompt) until the returned scope is disposed.</summary>
    public static IDisposable BaseOnly() => Push(new Selection(null, null, Disabled: true, null, null, false));

    /// <summary>
    /// Gives each row of the batches run in the scope its own LoRA adapter and/or soft prompt (PEFT's
    /// <c>adapter_names=[...]</c>): one forward pass serves rows of several tenants, unmerged. Every name is checked
    /// against the model first; an adapter that targets only some projections leaves the rows that name it to the base
    /// of the others, exactly as <see cref="Use"/> does for a whole batch.
    /// </summary>
    /// <param name="model">The model the batches run through; names are checked against its adapters and soft prompts.</param>
    /// <param name="adapters">The adapter of each row, null for none (the base alone); null for the list leaves the
    /// adapter to the enclosing scope or the active one, for every row.</param>
    /// <param name="softPrompts">The soft prompt of each row, null for none; null for the list leaves the prompt to the
    /// enclosing scope or the active one, for every row. Rows must agree on the prompt length (see remarks).</param>
    /// <remarks>
    /// A projection refuses per-row adapters while an adapter is merged into it and while it is in training mode (PEFT
    /// refuses both); a batch whose row count differs from the list's is refused. Soft prompts of several names serve
    /// one batch when they have the same number of virtual tokens; rows with and without a prompt, or with prompts of
    /// different lengths, would give sequences of different lengths and are refused: serve them as separate batches.
    /// </remarks>
    /// <exception cref="ArgumentException">The lists are empty or of different lengths, or name an adapter or soft prompt the model does not have.</exception>
    public static IDisposable UsePerRow(IPeftModel model, IReadOnlyList<string?>? adapters = null, IReadOnlyList<string?>? softPrompts = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        CheckRowLists(adapters, softPrompts);
        CheckNames(adapters, model.AdapterNames(), "LoRA adapter", nameof(adapters));
        CheckNames(softPrompts, model.SoftPromptNames(), "soft prompt", nameof(softPrompts));
        return PushRows(adapters, softPrompts, checkedByModel: true);
    }

    /// <summary>
    /// As <see cref="UsePerRow(IPeftModel, IReadOnlyList{string?}?, IReadOnlyList{string?}?)"/> without a model to check
    /// the names against: each projection (and the token embedding) checks them against its own adapters (prompts)
    /// and refuses a name it does not have. Use it on single layers; on a model whose adapters target different
    /// projections, pass the model.
    /// </summary>
    /// <exception cref="ArgumentException">The lists are empty or of different lengths.</exception>
    public static IDisposable UsePerRow(IReadOnlyList<string?>? adapters = null, IReadOnlyList<string?>? softPrompts = null)
    {
        CheckRowLists(adapters, softPrompts);
        return PushRows(adapters, softPrompts, checkedByModel: false);
    }

    private static IDisposable PushRows(IReadOnlyList<string?>? adapters, IReadOnlyList<string?>? softPrompts, bool checkedByModel)
    {
        // The lists are copied: the caller may reuse its own while the scope is open.
        var outer = Current.Value;
        return Push(new Selection(
            adapters is null ? Adapter : null,
            softPrompts is null ? SoftPrompt : null,
            Disabled: false,
            adapters?.ToArray() ?? outer?.RowAdapters,
            softPrompts?.ToArray() ?? outer?.RowSoftPrompts,
            adapters is null ? outer?.CheckedByModel ?? false : checkedByModel));
    }

    private static void CheckRowLists(IReadOnlyList<string?>? adapters, IReadOnlyList<string?>? softPrompts)
    {
        if (adapters is null && softPrompts is null)
            throw new ArgumentException("Name an adapter or a soft prompt per row: both lists are null.", nameof(adapters));
        if (adapters is { Count: 0 }) throw new ArgumentException("The per-row adapter list is empty; a batch has at least one row.", nameof(adapters));
        if (softPrompts is { Count: 0 }) throw new ArgumentException("The per-row soft prompt list is empty; a batch has at least one row.", nameof(softPrompts));
        if (adapters is not null && softPrompts is not null && adapters.Count != softPrompts.Count)
            throw new ArgumentException(
                $"The per-row lists differ in length: {adapters.Count} adapters, {softPrompts.Count} soft prompts; give one entry per row in each.", nameof(softPrompts));
    }

    private static void CheckNames(IReadOnlyList<string?>? rows, IReadOnlyList<string> known, string kind, string parameter)
    {
        if (rows is null) return;
        var unknown = rows.Select((name, row) => (name, row)).Where(r => r.name is not null && !known.Contains(r.name, StringComparer.Ordinal)).ToList();
        if (unknown.Count == 0) return;
        throw new ArgumentException(
            $"The model has no {kind} named {string.Join(", ", unknown.Select(u => $"'{u.name}' (row {u.row})"))}. " +
            $"Its {kind}s: {(known.Count == 0 ? "none" : string.Join(", ", known))}; use null for a row without one.", parameter);
    }

    private static IDisposable Push(Selection selection) => AmbientScope.Push(Current, selection);

    private sealed record Selection(
        string? Adapter,
        string? SoftPrompt,
        bool Disabled,
        IReadOnlyList<string?>? RowAdapters,
        IReadOnlyList<string?>? RowSoftPrompts,
        bool CheckedByModel);
}
