using System;
using System.Collections.Generic;
using System.Linq;
using PeftGen.Inference;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftGen;

/// <summary>
/// A model's token embedding table (<c>Count × Dim</c>, frozen unless trained in full). Declare the token embedding
/// member with this type; soft prompts attach here, because they are prepended to its output.
/// </summary>
/// <remarks>
/// <para>
/// With a soft prompt selected, <see cref="forward"/> returns <c>[prompt ; token embeddings]</c>
/// (<c>batch × (N + T) × Dim</c>). A model that derives positions from the embedded length and masks causally over
/// it is then right as it stands; padding masks and labels are lengthened with <see cref="ExtendAttentionMask"/> and
/// <see cref="ExtendLabels"/>, and outputs for the virtual positions dropped with <see cref="DropVirtualTokens"/>.
/// </para>
/// <para>
/// The prompt used by a call is <see cref="AdapterContext.SoftPrompt"/> when a scope chose one, else
/// <see cref="ActiveSoftPrompt"/>; <see cref="AdapterContext.BaseOnly"/> and <see cref="SoftPromptsDisabled"/> turn
/// prompts off. Under <see cref="AdapterContext.UsePerRow(IPeftModel, IReadOnlyList{string?}?, IReadOnlyList{string?}?)"/>
/// each row gets its own prompt, when all rows' prompts have the same number of virtual tokens (rows with and without a
/// prompt, or with prompts of different lengths, are refused: their sequences would differ in length). Prompts live
/// under <c>soft_prompts.{name}.prompt_embeddings</c>.
/// </para>
/// </remarks>
public sealed class TokenEmbedding : nn.Module<Tensor, Tensor>
{
    /// <summary>Label value that loss functions ignore (PyTorch's <c>ignore_index</c> default).</summary>
    public const long IgnoreLabel = -100;

    private readonly Parameter weight;
    private readonly NamedModules<SoftPrompt> soft_prompts = new();

    /// <summary>Creates a table initialised as torch.nn.Embedding (standard normal), frozen.</summary>
    public TokenEmbedding(long count, long dim, Device? device = null, ScalarType? dtype = null) : base(nameof(TokenEmbedding))
    {
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), count, "Embedding count must be positive.");
        if (dim <= 0) throw new ArgumentOutOfRangeException(nameof(dim), dim, "Embedding dimension must be positive.");
        Count = count;
        Dim = dim;
        weight = new Parameter(randn(new[] { count, dim }, dtype: dtype, device: device), requires_grad: false);
        register_parameter(nameof(weight), weight);
        register_module(nameof(soft_prompts), soft_prompts);
    }

    /// <summary>Rows (vocabulary size).</summary>
    public long Count { get; }

    /// <summary>Width of a row.</summary>
    public long Dim { get; }

    /// <summary>The table, <c>Count × Dim</c>.</summary>
    public Parameter Weight => weight;

    /// <summary>The soft prompt names, in the order they were added.</summary>
    public IReadOnlyList<string> SoftPrompts => soft_prompts.Names.ToList();

    /// <summary>The soft prompt used when no <see cref="AdapterContext"/> scope chooses one; null for none.</summary>
    public string? ActiveSoftPrompt { get; private set; }

    /// <summary>When true, calls use the token embeddings alone.</summary>
    public bool SoftPromptsDisabled { get; set; }

    /// <summary>The number of virtual tokens the current call prepends (0 when no prompt is selected).</summary>
    public int VirtualTokens => SelectRowSoftPrompts() is { } rows ? rows[0]?.VirtualTokens ?? 0 : SelectSoftPrompt()?.VirtualTokens ?? 0;

    /// <summary>The soft prompt of that name.</summary>
    /// <exception cref="KeyNotFoundException">There is no prompt of that name.</exception>
    public SoftPrompt SoftPrompt(string name)
        => soft_prompts.TryGet(name, out var prompt) ? prompt : throw UnknownSoftPrompt(name);

    /// <summary>Whether a soft prompt of that name exists.</summary>
    public bool HasSoftPrompt(string name) => soft_prompts.Contains(name);

    /// <summary>
    /// Adds a trainable soft prompt initialised as <paramref name="config"/> says; the first one added becomes
    /// active. Only the prompt trains: the table stays as it was.
    /// </summary>
    /// <param name="name">The prompt's name (no '.'), for example <c>"default"</c> or a tenant's name.</param>
    /// <param name="config">How many virtual tokens and how they start.</param>
    /// <param name="generator">The random source for random and sampled inits; null for torch's default generator.</param>
    public SoftPrompt AddSoftPrompt(string name, SoftPromptConfig config, Generator? generator = null)
    {
        CheckNewSoftPromptName(name);
        ArgumentNullException.ThrowIfNull(config);
        var prompt = global::PeftGen.SoftPrompt.Create(config, this, generator);
        Attach(name, prompt);
        return prompt;
    }

    /// <summary>Adds an existing prompt (for example one read from a file) under a name; the first one added becomes active.</summary>
    public void AddSoftPrompt(string name, SoftPrompt prompt)
    {
        CheckNewSoftPromptName(name);
        ArgumentNullException.ThrowIfNull(prompt);
        if (prompt.Dim != Dim)
            throw new ArgumentException($"Soft prompt width {prompt.Dim} does not match the embedding width {Dim}.", nameof(prompt));
        Attach(name, prompt);
    }

    /// <summary>Removes and disposes a soft prompt. If it was active, the first remaining prompt (or none) becomes active.</summary>
    /// <exception cref="KeyNotFoundException">There is no prompt of that name.</exception>
    public void RemoveSoftPrompt(string name)
    {
        if (!soft_prompts.Remove(name)) throw UnknownSoftPrompt(name);
        if (ActiveSoftPrompt == name) ActiveSoftPrompt = soft_prompts.Names.FirstOrDefault();
    }

    /// <summary>Makes a soft prompt the active one (null: none).</summary>
    /// <exception cref="KeyNotFoundException">There is no prompt of that name.</exception>
    public void SetActiveSoftPrompt(string? name)
    {
        if (name is not null && !soft_prompts.Contains(name)) throw UnknownSoftPrompt(name);
        ActiveSoftPrompt = name;
    }

    /// <summary>Sets whether a soft prompt takes gradients.</summary>
    /// <exception cref="KeyNotFoundException">There is no prompt of that name.</exception>
    public void SetSoftPromptTrainable(string name, bool trainable) => SoftPrompt(name).Embeddings.requires_grad = trainable;

    /// <summary>
    /// Looks up the embeddings of token ids (<c>batch × T</c> → <c>batch × T × Dim</c>), with the selected soft
    /// prompt prepended (<c>batch × (N + T) × Dim</c>).
    /// </summary>
    public override Tensor forward(Tensor tokenIds)
    {
        ArgumentNullException.ThrowIfNull(tokenIds);
        if (tokenIds.dtype != ScalarType.Int64 && tokenIds.dtype != ScalarType.Int32)
            throw new ArgumentException($"Token ids must be int64 or int32, not {tokenIds.dtype}.", nameof(tokenIds));
        // With a KV cache holding earlier positions the prompt is already among them.
        var rowPrompts = KeyValueCache.PastLength == 0 ? SelectRowSoftPrompts() : null;
        var prompt = KeyValueCache.PastLength == 0 && rowPrompts is null ? SelectSoftPrompt() : null;
        if ((prompt is not null || rowPrompts?[0] is not null) && tokenIds.dim() != 2)
            throw new ArgumentException(
                $"With a soft prompt, token ids must be batch × sequence, got [{string.Join(", ", tokenIds.shape)}].", nameof(tokenIds));
        if (rowPrompts is not null && (tokenIds.dim() == 0 || tokenIds.shape[0] != rowPrompts.Count))
            throw new ArgumentException(
                $"The per-row selection names {rowPrompts.Count} soft prompts, but the token ids [{string.Join(", ", tokenIds.shape)}] have " +
                $"{(tokenIds.dim() == 0 ? "no rows" : $"{tokenIds.shape[0]} rows")}; give one entry per row of the batch.", nameof(tokenIds));

        using var scope = NewDisposeScope();
        var tokens = TokenRowsFunction.Lookup(weight, tokenIds.flatten()).reshape(AppendDim(tokenIds.shape));
        long prepended = 0;
        if (prompt is not null)
        {
            tokens = cat(new[] { prompt.ForBatch(tokenIds.shape[0], weight.dtype), tokens }, 1);
            prepended = prompt.VirtualTokens;
        }
        else if (rowPrompts?[0] is { } first)
        {
            tokens = cat(new[] { cat(rowPrompts.Select(p => p!.ForBatch(1, weight.dtype)).ToArray(), 0), tokens }, 1);
            prepended = first.VirtualTokens;
        }
        // A left-padded batch in a KV cache: the virtual tokens are real positions before each row's padding.
        if (prepended > 0) KeyValueCache.PrependRealPositions(prepended);
        return tokens.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Drops the outputs of the virtual positions (the first <see cref="VirtualTokens"/> along dimension 1), so the
    /// caller gets one output per real token. Without a prompt it returns the same values.
    /// </summary>
    public Tensor DropVirtualTokens(Tensor hidden)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        var n = KeyValueCache.PastLength == 0 ? VirtualTokens : 0;
        if (n == 0) return hidden.alias();
        if (hidden.dim() < 2 || hidden.shape[1] < n)
            throw new ArgumentException(
                $"Expected at least {n} positions along dimension 1, got [{string.Join(", ", hidden.shape)}].", nameof(hidden));
        return hidden.narrow(1, n, hidden.shape[1] - n);
    }

    /// <summary>Prepends <see cref="VirtualTokens"/> ones to a <c>batch × T</c> padding mask: virtual tokens are always attended.</summary>
    public Tensor ExtendAttentionMask(Tensor mask) => Prepend(mask, 1, nameof(mask));

    /// <summary>Prepends <see cref="VirtualTokens"/> × <see cref="IgnoreLabel"/> to <c>batch × T</c> labels: virtual positions add no loss.</summary>
    public Tensor ExtendLabels(Tensor labels) => Prepend(labels, IgnoreLabel, nameof(labels));

    private Tensor Prepend(Tensor values, long fill, string parameter)
    {
        ArgumentNullException.ThrowIfNull(values, parameter);
        var n = VirtualTokens;
        if (n == 0) return values.alias();
        if (values.dim() != 2)
            throw new ArgumentException($"Expected batch × sequence, got [{string.Join(", ", values.shape)}].", parameter);
        using var scope = NewDisposeScope();
        using var value = fill.ToScalar();
        var head = full(new[] { values.shape[0], (long)n }, value, dtype: values.dtype, device: values.device);
        return cat(new[] { head, values }, 1).MoveToOuterDisposeScope();
    }

    private SoftPrompt? SelectSoftPrompt()
    {
        if (SoftPromptsDisabled || AdapterContext.AdaptersDisabled) return null;
        var name = AdapterContext.SoftPrompt ?? ActiveSoftPrompt;
        if (name is null) return null;
        return soft_prompts.TryGet(name, out var prompt) ? prompt : throw UnknownSoftPrompt(name);
    }

    // The prompt of each row under a per-row scope (null entries: no prompt), or null when the batch shares one choice.
    // Rows must agree on the number of virtual tokens: positions and causal masks are per sequence, not per row.
    private IReadOnlyList<SoftPrompt?>? SelectRowSoftPrompts()
    {
        if (SoftPromptsDisabled || AdapterContext.AdaptersDisabled || AdapterContext.RowSoftPrompts is not { } names) return null;
        var prompts = names.Select(name => name is null ? null : SoftPrompt(name)).ToList();
        var lengths = prompts.Select(p => p?.VirtualTokens ?? 0).Distinct().ToList();
        if (lengths.Count > 1)
            throw new NotSupportedException(
                $"The rows' soft prompts have different lengths ({string.Join(", ", names.Select((n, row) => $"row {row}: {(n is null ? "none" : $"'{n}'")} = {prompts[row]?.VirtualTokens ?? 0}"))} virtual tokens), " +
                "so their sequences would differ in length, which needs padding and attention masks this forward does not take. " +
                "Serve rows with prompts of one length per batch.");
        return prompts;
    }

    internal void CheckNewSoftPromptName(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (!SettingRules.IsValidModuleName(name)) throw new ArgumentException($"Soft prompt name '{name}' must not contain '.'.", nameof(name));
        if (soft_prompts.Contains(name)) throw new InvalidOperationException($"Soft prompt '{name}' already exists on this embedding.");
    }

    private void Attach(string name, SoftPrompt prompt)
    {
        soft_prompts.Add(name, prompt);
        ActiveSoftPrompt ??= name;
    }

    private KeyNotFoundException UnknownSoftPrompt(string name)
        => new($"No soft prompt named '{name}' on this embedding. Soft prompts: {(soft_prompts.Names.Any() ? string.Join(", ", soft_prompts.Names) : "none")}.");

    private long[] AppendDim(long[] shape)
    {
        var result = new long[shape.Length + 1];
        shape.CopyTo(result, 0);
        result[^1] = Dim;
        return result;
    }

    /// <inheritdoc />
    protected override void RegisterComponents()
    {
    }
}
