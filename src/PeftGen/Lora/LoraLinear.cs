using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftGen;

/// <summary>
/// A linear projection with a frozen base weight and zero or more named LoRA adapters beside it:
/// <c>y = x·Wᵀ + b + scale · B(A(dropout(x)))</c>. Parameter names follow PEFT's in-memory layout
/// (<c>weight</c>, <c>bias</c>, <c>lora_A.{adapter}.weight</c>, <c>lora_B.{adapter}.weight</c>), so checkpoints of the
/// base model load into it unchanged.
/// </summary>
/// <remarks>
/// A is <c>Rank × In</c>, Kaiming-uniform initialised (a = √5); B is <c>Out × Rank</c>, zeros, so a new adapter
/// starts as the identity update. Dropout applies to the LoRA path only, in training mode only. The adapter used
/// by a call is <see cref="AdapterContext.Adapter"/> when a scope chose one, else <see cref="ActiveAdapter"/>.
/// </remarks>
public sealed class LoraLinear : nn.Module<Tensor, Tensor>
{
    private readonly Dictionary<string, LoraConfig> _configs = new();
    private readonly NamedModules<Linear> _loraA = new();
    private readonly NamedModules<Linear> _loraB = new();
    private readonly NamedModules<Dropout> _loraDropout = new();
    private Parameter _weight;
    private Parameter? _bias;
    private string? _mergedAdapter;

    /// <summary>Creates a projection initialised as torch.nn.Linear (Kaiming-uniform weight, uniform bias), frozen.</summary>
    public LoraLinear(long inFeatures, long outFeatures, bool hasBias = true, Device? device = null, ScalarType? dtype = null)
        : base(nameof(LoraLinear))
    {
        if (inFeatures <= 0) throw new ArgumentOutOfRangeException(nameof(inFeatures), inFeatures, "In features must be positive.");
        if (outFeatures <= 0) throw new ArgumentOutOfRangeException(nameof(outFeatures), outFeatures, "Out features must be positive.");
        InFeatures = inFeatures;
        OutFeatures = outFeatures;

        using (no_grad())
        {
            var w = empty(new[] { outFeatures, inFeatures }, dtype: dtype, device: device);
            nn.init.kaiming_uniform_(w, a: Math.Sqrt(5));
            _weight = new Parameter(w, requires_grad: false);
            register_parameter("weight", _weight);
            if (hasBias)
            {
                var bound = 1.0 / Math.Sqrt(inFeatures);
                var b = empty(new[] { outFeatures }, dtype: dtype, device: device);
                nn.init.uniform_(b, -bound, bound);
                _bias = new Parameter(b, requires_grad: false);
                register_parameter("bias", _bias);
            }
        }

        register_module("lora_A", _loraA);
        register_module("lora_B", _loraB);
        register_module("lora_dropout", _loraDropout);
    }

    /// <summary>Input features.</summary>
    public long InFeatures { get; }

    /// <summary>Output features.</summary>
    public long OutFeatures { get; }

    /// <summary>The base weight, <c>Out × In</c>.</summary>
    public Parameter Weight => _weight;

    /// <summary>The base bias, or null.</summary>
    public Parameter? Bias => _bias;

    /// <summary>The adapter used when no <see cref="AdapterContext"/> scope chooses one; null for none.</summary>
    public string? ActiveAdapter { get; private set; }

    /// <summary>When true, calls use the base weight only.</summary>
    public bool AdaptersDisabled { get; set; }

    /// <summary>The adapter whose update is folded into <see cref="Weight"/>, or null.</summary>
    public string? MergedAdapter => _mergedAdapter;

    /// <summary>The adapter names, in the order they were added.</summary>
    public IReadOnlyList<string> Adapters => _configs.Keys.ToList();

    /// <summary>The settings of an adapter.</summary>
    public LoraConfig AdapterConfig(string adapter) => _configs.TryGetValue(adapter, out var c)
        ? c
        : throw UnknownAdapter(adapter);

    /// <summary>The A matrix (<c>Rank × In</c>) of an adapter.</summary>
    public Parameter LoraA(string adapter) => _loraA.TryGet(adapter, out var a) ? a.weight! : throw UnknownAdapter(adapter);

    /// <summary>The B matrix (<c>Out × Rank</c>) of an adapter.</summary>
    public Parameter LoraB(string adapter) => _loraB.TryGet(adapter, out var b) ? b.weight! : throw UnknownAdapter(adapter);

    /// <summary>Adds an adapter; the first one added becomes active.</summary>
    public void AddAdapter(string adapter, LoraConfig config)
    {
        ArgumentException.ThrowIfNullOrEmpty(adapter);
        ArgumentNullException.ThrowIfNull(config);
        if (adapter.Contains('.')) throw new ArgumentException($"Adapter name '{adapter}' must not contain '.'.", nameof(adapter));
        if (_configs.ContainsKey(adapter)) throw new InvalidOperationException($"Adapter '{adapter}' already exists on this projection.");
        config.Validate(InFeatures, OutFeatures);

        var device = _weight.device;
        var a = nn.Linear(InFeatures, config.Rank, hasBias: false, device: device);
        var b = nn.Linear(config.Rank, OutFeatures, hasBias: false, device: device);
        using (no_grad())
        {
            nn.init.kaiming_uniform_(a.weight!, a: Math.Sqrt(5));
            nn.init.zeros_(b.weight!);
        }

        _loraA.Add(adapter, a);
        _loraB.Add(adapter, b);
        _loraDropout.Add(adapter, nn.Dropout(config.Dropout));
        _configs.Add(adapter, config);
        ActiveAdapter ??= adapter;
    }

    /// <summary>Removes an adapter (it must not be merged).</summary>
    public void DeleteAdapter(string adapter)
    {
        if (!_configs.ContainsKey(adapter)) throw UnknownAdapter(adapter);
        if (_mergedAdapter == adapter) throw new InvalidOperationException($"Adapter '{adapter}' is merged into the base weight; unmerge it before deleting it.");
        _loraA.Remove(adapter);
        _loraB.Remove(adapter);
        _loraDropout.Remove(adapter);
        _configs.Remove(adapter);
        if (ActiveAdapter == adapter) ActiveAdapter = _configs.Keys.FirstOrDefault();
    }

    /// <summary>Makes an adapter the active one (null: none).</summary>
    public void SetActiveAdapter(string? adapter)
    {
        if (adapter is not null && !_configs.ContainsKey(adapter)) throw UnknownAdapter(adapter);
        ActiveAdapter = adapter;
    }

    /// <summary>Sets whether the base weight and bias take gradients (full fine-tuning of this layer).</summary>
    public void SetBaseTrainable(bool trainable)
    {
        _weight.requires_grad = trainable;
        if (_bias is not null) _bias.requires_grad = trainable;
    }

    /// <summary>Sets whether an adapter's A and B take gradients.</summary>
    public void SetAdapterTrainable(string adapter, bool trainable)
    {
        LoraA(adapter).requires_grad = trainable;
        LoraB(adapter).requires_grad = trainable;
    }

    /// <summary>The adapter's update <c>scale · B·A</c> (<c>Out × In</c>), in the base weight's dtype.</summary>
    public Tensor DeltaWeight(string adapter)
    {
        var config = AdapterConfig(adapter);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var delta = LoraB(adapter).matmul(LoraA(adapter)).mul(config.Scale).to(_weight.dtype);
        return delta.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Folds <c>scale · B·A</c> of the adapter (default: the active one) into the base weight, so inference pays
    /// nothing for it. Calls then skip the LoRA path until <see cref="Unmerge"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">An adapter is already merged, or there is none to merge.</exception>
    public void Merge(string? adapter = null)
    {
        adapter ??= ActiveAdapter ?? throw new InvalidOperationException("No active adapter to merge.");
        if (_mergedAdapter is not null)
            throw new InvalidOperationException($"Adapter '{_mergedAdapter}' is already merged; unmerge it first.");
        using var delta = DeltaWeight(adapter);
        using (no_grad()) _weight.add_(delta);
        _mergedAdapter = adapter;
    }

    /// <summary>Subtracts the merged adapter's update from the base weight again.</summary>
    /// <exception cref="InvalidOperationException">Nothing is merged.</exception>
    public void Unmerge()
    {
        var adapter = _mergedAdapter ?? throw new InvalidOperationException("No adapter is merged, so there is nothing to unmerge.");
        using var delta = DeltaWeight(adapter);
        using (no_grad()) _weight.sub_(delta);
        _mergedAdapter = null;
    }

    /// <summary>Replaces the base weight (and bias) with values from a checkpoint, checking shapes.</summary>
    public void LoadBase(Tensor weight, Tensor? bias = null)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (_mergedAdapter is not null) throw new InvalidOperationException("Unmerge the adapter before replacing the base weight.");
        if (!weight.shape.SequenceEqual(_weight.shape))
            throw new ArgumentException($"Weight shape [{string.Join(", ", weight.shape)}] does not match [{OutFeatures}, {InFeatures}].", nameof(weight));
        using (no_grad()) _weight.copy_(weight);
        if (bias is not null)
        {
            if (_bias is null) throw new ArgumentException("This projection has no bias.", nameof(bias));
            if (!bias.shape.SequenceEqual(_bias.shape))
                throw new ArgumentException($"Bias shape [{string.Join(", ", bias.shape)}] does not match [{OutFeatures}].", nameof(bias));
            using (no_grad()) _bias.copy_(bias);
        }
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.shape.Length == 0 || input.shape[^1] != InFeatures)
            throw new ArgumentException($"Expected input with last dimension {InFeatures}, got [{string.Join(", ", input.shape)}].", nameof(input));

        using var scope = NewDisposeScope();
        var output = nn.functional.linear(input, _weight, _bias);
        var adapter = SelectAdapter();
        if (adapter is not null)
        {
            var config = _configs[adapter];
            var x = _loraDropout[adapter].forward(input.to(_loraA[adapter].weight!.dtype));
            var update = _loraB[adapter].forward(_loraA[adapter].forward(x)).mul(config.Scale);
            output = output.add(update.to(output.dtype));
        }
        return output.MoveToOuterDisposeScope();
    }

    private string? SelectAdapter()
    {
        if (AdaptersDisabled || AdapterContext.AdaptersDisabled) return null;
        var adapter = AdapterContext.Adapter ?? ActiveAdapter;
        if (adapter is null || !_configs.ContainsKey(adapter)) return null;
        // A merged adapter already lives in the weight; applying its path again would count it twice.
        return adapter == _mergedAdapter ? null : adapter;
    }

    /// <inheritdoc />
    protected override void RegisterComponents()
    {
        // Everything is registered explicitly in the constructor and AddAdapter.
    }

    private static KeyNotFoundException UnknownAdapter(string adapter)
        => new($"No LoRA adapter named '{adapter}' on this projection.");
}
