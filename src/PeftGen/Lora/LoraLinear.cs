using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using PeftGen.Precision;
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
    // Null when the base is stored in 4 bits (_quantized).
    private Parameter? _weight;
    private Parameter? _bias;
    private string? _mergedAdapter;
    private Nf4Tensor? _quantized;

    /// <summary>Creates a projection initialised as torch.nn.Linear (Kaiming-uniform weight, uniform bias), frozen.</summary>
    public LoraLinear(long inFeatures, long outFeatures, bool hasBias = true, Device? device = null, ScalarType? dtype = null)
        : this(inFeatures, outFeatures, hasBias, null, device, dtype)
    {
    }

    /// <summary>
    /// Creates a projection whose frozen base is stored in 4 bits from the start when <paramref name="quantization"/> is
    /// set: no float weight is allocated, and the base holds zeros (exactly what quantizing an all-zero weight gives)
    /// until a checkpoint fills it (<see cref="Checkpoints.PretrainedLoader"/>, <see cref="LoadBase"/>,
    /// <see cref="LoadBitsAndBytesState(IReadOnlyDictionary{string, Tensor}, string)"/>). A 4-bit base never trains,
    /// so there is nothing to initialise randomly. Without <paramref name="quantization"/> this is the float constructor.
    /// </summary>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="hasBias">Whether the projection has a (float) bias.</param>
    /// <param name="quantization">How the base is stored in 4 bits; null for a float base.</param>
    /// <param name="device">Where the base and bias live.</param>
    /// <param name="dtype">The float dtype of the base (or, when 4-bit, the dtype it records as its original one) and bias.</param>
    public LoraLinear(long inFeatures, long outFeatures, bool hasBias, Quant4BitOptions? quantization, Device? device = null, ScalarType? dtype = null)
        : base(nameof(LoraLinear))
    {
        if (inFeatures <= 0) throw new ArgumentOutOfRangeException(nameof(inFeatures), inFeatures, "In features must be positive.");
        if (outFeatures <= 0) throw new ArgumentOutOfRangeException(nameof(outFeatures), outFeatures, "Out features must be positive.");
        quantization?.Validate();
        InFeatures = inFeatures;
        OutFeatures = outFeatures;

        using (no_grad())
        {
            if (quantization is null)
            {
                var w = empty(new[] { outFeatures, inFeatures }, dtype: dtype, device: device);
                nn.init.kaiming_uniform_(w, a: Math.Sqrt(5));
                _weight = new Parameter(w, requires_grad: false);
                register_parameter("weight", _weight);
            }
            else
            {
                _quantized = Nf4Tensor.Zeros(new[] { outFeatures, inFeatures }, quantization, dtype ?? get_default_dtype(), device ?? CPU);
            }
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
    /// <exception cref="InvalidOperationException">The base is quantized (see <see cref="QuantizedWeight"/>).</exception>
    public Parameter Weight => _quantized is null
        ? FloatWeight
        : throw new InvalidOperationException("The base weight is stored in 4 bits; use QuantizedWeight (or DequantizedWeight) instead of Weight.");

    /// <summary>True when the base weight is stored in 4 bits: built so, or since <see cref="QuantizeBase"/>.</summary>
    public bool IsQuantized => _quantized is not null;

    /// <summary>The 4-bit settings of the base, or null when it is not quantized.</summary>
    public Quant4BitOptions? Quantization => _quantized?.Options;

    /// <summary>The 4-bit base weight, or null when it is not quantized.</summary>
    public Nf4Tensor? QuantizedWeight => _quantized;

    /// <summary>The dtype the 4-bit base is dequantized to for the matmul (resolves <see cref="ComputeDType.Auto"/>).</summary>
    public ScalarType ComputeScalarType => ResolveComputeDType(_quantized?.Options.ComputeDType ?? ComputeDType.Auto, BaseDevice);

    /// <summary>The device of the base weight (quantized or not).</summary>
    public Device BaseDevice => _quantized?.Device ?? FloatWeight.device;

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
        if (!SettingRules.IsValidModuleName(adapter)) throw new ArgumentException($"Adapter name '{adapter}' must not contain '.'.", nameof(adapter));
        if (_configs.ContainsKey(adapter)) throw new InvalidOperationException($"Adapter '{adapter}' already exists on this projection.");
        config.Validate(InFeatures, OutFeatures);

        var device = BaseDevice;
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
    /// <exception cref="InvalidOperationException">The base is quantized and <paramref name="trainable"/> is true.</exception>
    public void SetBaseTrainable(bool trainable)
    {
        if (_quantized is not null)
        {
            if (trainable)
                throw new InvalidOperationException(
                    "The base weight of this projection is quantized to 4 bits and cannot be trained; train LoRA adapters on it (QLoRA) or load a float base instead.");
            if (_bias is not null) _bias.requires_grad = false;
            return;
        }
        FloatWeight.requires_grad = trainable;
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
        var dtype = _quantized?.OriginalDType ?? FloatWeight.dtype;
        var delta = LoraB(adapter).matmul(LoraA(adapter)).mul(config.Scale).to(dtype);
        return delta.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Folds <c>scale · B·A</c> of the adapter (default: the active one) into the base weight, so inference pays
    /// nothing for it. Calls then skip the LoRA path until <see cref="Unmerge()"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">An adapter is already merged, there is none to merge, or the base is
    /// quantized (use <see cref="Merge(string?, bool)"/> with <c>requantize: true</c>).</exception>
    public void Merge(string? adapter = null) => Merge(adapter, requantize: false);

    /// <summary>
    /// As <see cref="Merge(string?)"/>; on a 4-bit base, <paramref name="requantize"/> must be true: the base is
    /// dequantized, the update added and the sum quantized again, so outputs change by that rounding (returned).
    /// </summary>
    /// <returns>On a 4-bit base, how far the re-quantized weight is from the exact merged weight; null otherwise.</returns>
    public RequantizationReport? Merge(string? adapter, bool requantize)
    {
        adapter ??= ActiveAdapter ?? throw new InvalidOperationException("No active adapter to merge.");
        if (_mergedAdapter is not null)
            throw new InvalidOperationException($"Adapter '{_mergedAdapter}' is already merged; unmerge it first.");
        using var delta = DeltaWeight(adapter);
        RequantizationReport? report = null;
        if (_quantized is not null)
        {
            if (!requantize)
                throw new InvalidOperationException(
                    $"Cannot merge adapter '{adapter}' into a 4-bit base exactly. Call Merge(adapter, requantize: true) to dequantize, merge and re-quantize; outputs then change by the 4-bit rounding of the merged weight.");
            report = Requantize(delta, sign: 1);
        }
        else
        {
            using (no_grad()) FloatWeight.add_(delta);
        }
        _mergedAdapter = adapter;
        return report;
    }

    /// <summary>Subtracts the merged adapter's update from the base weight again.</summary>
    /// <exception cref="InvalidOperationException">Nothing is merged, or the base is quantized (use <see cref="Unmerge(bool)"/>).</exception>
    public void Unmerge() => Unmerge(requantize: false);

    /// <summary>
    /// As <see cref="Unmerge()"/>; on a 4-bit base, <paramref name="requantize"/> must be true and the base does not
    /// come back bit-identical: it is the re-quantization of (dequantized merged base − update).
    /// </summary>
    /// <returns>On a 4-bit base, the rounding of the re-quantization; null otherwise.</returns>
    public RequantizationReport? Unmerge(bool requantize)
    {
        var adapter = _mergedAdapter ?? throw new InvalidOperationException("No adapter is merged, so there is nothing to unmerge.");
        using var delta = DeltaWeight(adapter);
        RequantizationReport? report = null;
        if (_quantized is not null)
        {
            if (!requantize)
                throw new InvalidOperationException(
                    $"Cannot unmerge adapter '{adapter}' from a 4-bit base exactly. Call Unmerge(requantize: true) to dequantize, subtract and re-quantize; the base then differs from the original by the 4-bit rounding.");
            report = Requantize(delta, sign: -1);
        }
        else
        {
            using (no_grad()) FloatWeight.sub_(delta);
        }
        _mergedAdapter = null;
        return report;
    }

    /// <summary>
    /// Stores the base weight in 4 bits (bitsandbytes' layout) on its current device and frees the float weight.
    /// From then on the forward dequantizes it per call (<see cref="QuantizedLinearFunction"/>), <see cref="Weight"/>
    /// throws, and the module's <c>state_dict()</c> no longer holds <c>weight</c> (bias and adapters stay); the 4-bit
    /// state is saved with <see cref="ToBitsAndBytesState"/> in transformers + bitsandbytes' key layout.
    /// </summary>
    /// <exception cref="InvalidOperationException">Already quantized, or an adapter is merged.</exception>
    public void QuantizeBase(Quant4BitOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (_quantized is not null) throw new InvalidOperationException("The base weight is already quantized.");
        if (_mergedAdapter is not null)
            throw new InvalidOperationException($"Unmerge adapter '{_mergedAdapter}' before quantizing the base weight.");
        var quantized = Nf4Tensor.Quantize(FloatWeight, options);
        ReplaceFloatWeight(quantized);
        if (_bias is not null) _bias.requires_grad = false;
    }

    /// <summary>The base weight as a float tensor (dequantized when 4-bit); the caller disposes it.</summary>
    public Tensor DequantizedWeight(ScalarType? dtype = null)
    {
        if (_quantized is null)
        {
            using var _ = no_grad();
            return FloatWeight.detach().to(dtype ?? FloatWeight.dtype).clone();
        }
        return _quantized.Dequantize(dtype ?? _quantized.OriginalDType);
    }

    /// <summary>
    /// The 4-bit base in transformers + bitsandbytes' serialized layout: <c>{prefix}weight</c> (packed uint8,
    /// <c>[ceil(n/2), 1]</c>), <c>weight.absmax</c>, <c>weight.quant_map</c>, with double quantization
    /// <c>weight.nested_absmax</c> and <c>weight.nested_quant_map</c>, and <c>weight.quant_state.bitsandbytes__nf4</c>
    /// (or <c>__fp4</c>); plus <c>{prefix}bias</c> when there is one. Tensors are new copies on the CPU.
    /// </summary>
    public Dictionary<string, Tensor> ToBitsAndBytesState(string prefix = "")
    {
        var state = (_quantized ?? throw new InvalidOperationException("The base weight is not quantized.")).ToBitsAndBytesState(prefix + "weight");
        if (_bias is not null)
        {
            using var _ = no_grad();
            state[prefix + "bias"] = _bias.detach().cpu().clone();
        }
        return state;
    }

    /// <summary>
    /// Loads a 4-bit base from transformers + bitsandbytes' layout (see <see cref="ToBitsAndBytesState"/>), strictly.
    /// The file decides code book, block size and double quantization; a projection that was 4-bit keeps its compute
    /// dtype, a float one becomes 4-bit (its float weight is freed) and computes in <see cref="ComputeDType.Auto"/>.
    /// </summary>
    public void LoadBitsAndBytesState(IReadOnlyDictionary<string, Tensor> state, string prefix = "")
        => LoadBitsAndBytesState(state, prefix, ComputeDType.Auto);

    /// <summary>As the public overload; <paramref name="computeDType"/> applies when this projection becomes 4-bit.</summary>
    internal void LoadBitsAndBytesState(IReadOnlyDictionary<string, Tensor> state, string prefix, ComputeDType computeDType)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (_mergedAdapter is not null) throw new InvalidOperationException("Unmerge the adapter before replacing the base weight.");
        var quantized = Nf4Tensor.FromBitsAndBytesState(state, prefix + "weight", BaseDevice, _quantized?.Options.ComputeDType ?? computeDType);
        try
        {
            if (!quantized.Shape.SequenceEqual(new[] { OutFeatures, InFeatures }))
                throw new ArgumentException($"Quantized weight shape [{string.Join(", ", quantized.Shape)}] does not match [{OutFeatures}, {InFeatures}].", nameof(state));
            Tensor? bias = null;
            if (_bias is not null)
            {
                if (!state.TryGetValue(prefix + "bias", out bias))
                    throw new ArgumentException($"Missing '{prefix}bias'.", nameof(state));
                if (!bias.shape.SequenceEqual(_bias.shape))
                    throw new ArgumentException($"Bias shape [{string.Join(", ", bias.shape)}] does not match [{OutFeatures}].", nameof(state));
            }
            if (bias is not null) using (no_grad()) _bias!.copy_(bias);
        }
        catch
        {
            quantized.Dispose();
            throw;
        }
        if (_quantized is null) ReplaceFloatWeight(quantized);
        else
        {
            _quantized.Dispose();
            _quantized = quantized;
        }
    }

    /// <summary>
    /// Replaces the base weight (and bias) with values from a checkpoint, checking shapes. A float base copies (and
    /// converts) them; a 4-bit base quantizes the weight with its own settings, slice by slice and without a float32
    /// copy, and records the weight's dtype as its original one (a bfloat16 weight saves back as bfloat16).
    /// </summary>
    public void LoadBase(Tensor weight, Tensor? bias = null)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (_mergedAdapter is not null) throw new InvalidOperationException("Unmerge the adapter before replacing the base weight.");
        if (!weight.shape.SequenceEqual(new[] { OutFeatures, InFeatures }))
            throw new ArgumentException($"Weight shape [{string.Join(", ", weight.shape)}] does not match [{OutFeatures}, {InFeatures}].", nameof(weight));
        if (_quantized is not null)
        {
            // A 4-bit base quantizes what it loads, on its own device, with its own settings, from the dtype it arrives
            // in (recorded as the original dtype); the old state goes only once the new one exists.
            using var onDevice = weight.to(BaseDevice);
            var quantized = Nf4Tensor.Quantize(onDevice, _quantized.Options);
            _quantized.Dispose();
            _quantized = quantized;
        }
        else
        {
            using (no_grad()) FloatWeight.copy_(weight);
        }
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
        // Under a mixed-precision scope the products run in its compute dtype: the input, base weight and adapter
        // matrices are cast per call (differentiably, so float32 masters receive float32 gradients).
        var x = ComputePrecision.Cast(input);
        Tensor output;
        if (_quantized is not null)
        {
            // As bitsandbytes' Linear4bit: compute in the compute dtype, answer in the input's dtype.
            output = QuantizedLinearFunction.Apply(x, _quantized, ComputeScalarType);
            if (_bias is not null) output = output.add(_bias.to(output.dtype));
            output = output.to(x.dtype);
        }
        else
        {
            output = nn.functional.linear(x, ComputePrecision.Cast(FloatWeight), _bias is null ? null : ComputePrecision.Cast(_bias));
        }
        var adapter = SelectAdapter();
        if (adapter is not null)
        {
            var config = _configs[adapter];
            var down = ComputePrecision.Cast(_loraA[adapter].weight!);
            var up = ComputePrecision.Cast(_loraB[adapter].weight!);
            // The registered nn.Dropout keeps PEFT's module layout and the train/eval switch; the mask comes from
            // LoraDropout, which is several times faster on the CPU.
            var xa = x.to(down.dtype);
            if (_loraDropout[adapter].training && config.Dropout > 0) xa = LoraDropout.Apply(xa, config.Dropout);
            var projected = nn.functional.linear(xa, down);
            if (up.dtype == output.dtype && output.dim() >= 1)
            {
                // output + scale · down·Bᵀ in one GEMM that accumulates into the base output: no out-sized update
                // tensor, no separate scale and add passes (forward or backward).
                long rank = up.shape[1];
                output = output.reshape(-1, OutFeatures).addmm(projected.reshape(-1, rank), up.t(), beta: 1, alpha: (float)config.Scale).view(output.shape);
            }
            else
            {
                var update = nn.functional.linear(projected, up).mul(config.Scale);
                output = output.add(update.to(output.dtype));
            }
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
    protected override nn.Module _to(DeviceType deviceType, int deviceIndex, bool non_blocking)
    {
        base._to(deviceType, deviceIndex, non_blocking);
        MoveQuantized(new Device(deviceType, deviceIndex));
        return this;
    }

    /// <inheritdoc />
    protected override nn.Module _to(Device device, ScalarType dtype, bool non_blocking)
    {
        base._to(device, dtype, non_blocking);
        MoveQuantized(device);
        return this;
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _quantized?.Dispose();
            _quantized = null;
        }
        base.Dispose(disposing);
    }

    private void MoveQuantized(Device device)
    {
        if (_quantized is null || _quantized.Device.ToString() == device.ToString()) return;
        var moved = _quantized.To(device);
        _quantized.Dispose();
        _quantized = moved;
    }

    private void ReplaceFloatWeight(Nf4Tensor quantized)
    {
        _quantized = quantized;
        // The float weight leaves the module (parameters, state_dict) and its memory is freed now, not by a finalizer.
        ConditionallyRegisterParameter("weight", (Parameter?)null);
        _weight?.Dispose();
        _weight = null;
    }

    // Only reached on a float base: every caller checks _quantized first.
    private Parameter FloatWeight => _weight ?? throw new InvalidOperationException("The base weight is stored in 4 bits.");

    private RequantizationReport Requantize(Tensor delta, int sign)
    {
        var current = _quantized!;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var exact = current.Dequantize(ScalarType.Float32).add(delta.to(ScalarType.Float32), alpha: sign);
        // Quantized from the weight's own dtype, so the state still records the dtype the checkpoint had.
        var requantized = Nf4Tensor.Quantize(exact.to(current.OriginalDType), current.Options);
        var rounded = requantized.Dequantize(ScalarType.Float32);
        var error = rounded.sub(exact).abs();
        var report = new RequantizationReport(error.max().item<float>(), error.mean().item<float>());
        current.Dispose();
        _quantized = requantized;
        return report;
    }

    internal static ScalarType ResolveComputeDType(ComputeDType computeDType, Device device) => computeDType switch
    {
        ComputeDType.Float32 => ScalarType.Float32,
        ComputeDType.BFloat16 => ScalarType.BFloat16,
        ComputeDType.Float16 => ScalarType.Float16,
        _ => ComputePrecision.Current ?? (device.type == DeviceType.CUDA ? ScalarType.BFloat16 : ScalarType.Float32),
    };

    /// <inheritdoc />
    protected override void RegisterComponents()
    {
        // Everything is registered explicitly in the constructor and AddAdapter.
    }

    private static KeyNotFoundException UnknownAdapter(string adapter)
        => new($"No LoRA adapter named '{adapter}' on this projection.");
}
