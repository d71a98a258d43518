using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using PeftGen.Inference;
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
/// by a call is <see cref="AdapterContext.Adapter"/> when a scope chose one, else <see cref="ActiveAdapter"/>; under
/// <see cref="AdapterContext.UsePerRow(IPeftModel, IReadOnlyList{string?}?, IReadOnlyList{string?}?)"/> each row of the
/// batch gets its own (the base runs once for all rows, each adapter on its rows only).
/// The base's storage is its own type (<see cref="Base"/>): a <see cref="FloatBaseWeight"/> (float32, or bfloat16 /
/// float16 for a frozen base) registered as <c>weight</c>, or an <see cref="Nf4BaseWeight"/> in 4 bits; this class
/// keeps the adapters, the forward and merging.
/// </remarks>
public sealed class LoraLinear : nn.Module<Tensor, Tensor>
{
    private readonly Dictionary<string, LoraConfig> configs = new();
    private readonly NamedModules<Linear> loraA = new();
    private readonly NamedModules<Linear> loraB = new();
    private readonly NamedModules<Dropout> loraDropout = new();
    private BaseWeight baseWeight;
    private Parameter? bias;
    private string? mergedAdapter;

    /// <summary>Creates a projection initialised as torch.nn.Linear (Kaiming-uniform weight, uniform bias), frozen.</summary>
    public LoraLinear(long inFeatures, long outFeatures, bool hasBias = true, Device? device = null, ScalarType? dtype = null)
        : this(inFeatures, outFeatures, hasBias, null, device, dtype)
    {
    }

    /// <summary>
    /// Creates a projection whose frozen base is stored in <paramref name="baseDType"/> (bfloat16 or float16: half the
    /// bytes of float32, loaded from a checkpoint of that dtype as stored, never trained), or in 4 bits when
    /// <paramref name="quantization"/> is set (then <paramref name="baseDType"/> is the dtype the base records as its
    /// original one until a checkpoint fills it). The bias has the base's dtype; LoRA adapters are float32.
    /// </summary>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="hasBias">Whether the projection has a bias.</param>
    /// <param name="quantization">How the base is stored in 4 bits; null for a float base.</param>
    /// <param name="baseDType">The dtype of a float base.</param>
    /// <param name="device">Where the base and bias live.</param>
    public LoraLinear(long inFeatures, long outFeatures, bool hasBias, Quant4BitOptions? quantization, BaseDType baseDType, Device? device = null)
        : this(inFeatures, outFeatures, hasBias, quantization, device, baseDType.ToScalarType())
    {
    }

    /// <summary>
    /// Creates a projection whose frozen base is stored in 4 bits from the start when <paramref name="quantization"/> is
    /// set: no float weight is allocated, and the base holds zeros (exactly what quantizing an all-zero weight gives)
    /// until a checkpoint fills it (<see cref="Checkpoints.PretrainedLoader"/>, <see cref="LoadBase"/>,
    /// <see cref="Formats.BitsAndBytes.BitsAndBytesState.Load(LoraLinear, IReadOnlyDictionary{string, Tensor}, string)"/>). A 4-bit base never trains,
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

        if (quantization is null)
        {
            var weight = FloatBaseWeight.Create(outFeatures, inFeatures, dtype ?? get_default_dtype(), device);
            baseWeight = weight;
            register_parameter(BaseWeight.Key, weight.Parameter);
        }
        else
        {
            baseWeight = Nf4BaseWeight.Zeros(outFeatures, inFeatures, quantization, dtype ?? get_default_dtype(), device ?? CPU);
        }
        if (hasBias)
        {
            using var _ = no_grad();
            var bound = 1.0 / Math.Sqrt(inFeatures);
            var b = empty(new[] { outFeatures }, dtype: dtype, device: device);
            nn.init.uniform_(b, -bound, bound);
            bias = new Parameter(b, requires_grad: false);
            register_parameter("bias", bias);
        }

        register_module("lora_A", loraA);
        register_module("lora_B", loraB);
        register_module("lora_dropout", loraDropout);
    }

    /// <summary>Input features.</summary>
    public long InFeatures { get; }

    /// <summary>Output features.</summary>
    public long OutFeatures { get; }

    /// <summary>The base weight and its storage (float or 4-bit).</summary>
    public BaseWeight Base => baseWeight;

    /// <summary>The base weight, <c>Out × In</c>, when it is stored as a float tensor.</summary>
    /// <exception cref="InvalidOperationException">The base is quantized (see <see cref="QuantizedWeight"/>).</exception>
    public Parameter Weight => baseWeight is FloatBaseWeight weight
        ? weight.Parameter
        : throw new InvalidOperationException("The base weight is stored in 4 bits; use QuantizedWeight (or DequantizedWeight) instead of Weight.");

    /// <summary>True when the base weight is stored in 4 bits: built so, or since <see cref="QuantizeBase"/>.</summary>
    public bool IsQuantized => baseWeight is Nf4BaseWeight;

    /// <summary>The 4-bit settings of the base, or null when it is not quantized.</summary>
    public Quant4BitOptions? Quantization => (baseWeight as Nf4BaseWeight)?.Options;

    /// <summary>The 4-bit base weight, or null when it is not quantized.</summary>
    public Nf4Tensor? QuantizedWeight => (baseWeight as Nf4BaseWeight)?.Tensor;

    /// <summary>The dtype the 4-bit base is dequantized to for the matmul (resolves <see cref="ComputeDType.Auto"/>).</summary>
    public ScalarType ComputeScalarType => Nf4BaseWeight.ResolveComputeDType(Quantization?.ComputeDType ?? ComputeDType.Auto, BaseDevice);

    /// <summary>The device of the base weight (quantized or not).</summary>
    public Device BaseDevice => baseWeight.Device;

    /// <summary>The base bias, or null.</summary>
    public Parameter? Bias => bias;

    /// <summary>The adapter used when no <see cref="AdapterContext"/> scope chooses one; null for none.</summary>
    public string? ActiveAdapter { get; private set; }

    /// <summary>When true, calls use the base weight only.</summary>
    public bool AdaptersDisabled { get; set; }

    /// <summary>The adapter whose update is folded into <see cref="Weight"/>, or null.</summary>
    public string? MergedAdapter => mergedAdapter;

    /// <summary>The adapter names, in the order they were added.</summary>
    public IReadOnlyList<string> Adapters => configs.Keys.ToList();

    /// <summary>The settings of an adapter.</summary>
    public LoraConfig AdapterConfig(string adapter) => configs.TryGetValue(adapter, out var c)
        ? c
        : throw UnknownAdapter(adapter);

    /// <summary>The A matrix (<c>Rank × In</c>) of an adapter.</summary>
    public Parameter LoraA(string adapter) => loraA.TryGet(adapter, out var a) ? a.weight! : throw UnknownAdapter(adapter);

    /// <summary>The B matrix (<c>Out × Rank</c>) of an adapter.</summary>
    public Parameter LoraB(string adapter) => loraB.TryGet(adapter, out var b) ? b.weight! : throw UnknownAdapter(adapter);

    /// <summary>Adds an adapter; the first one added becomes active.</summary>
    public void AddAdapter(string adapter, LoraConfig config)
    {
        ArgumentException.ThrowIfNullOrEmpty(adapter);
        ArgumentNullException.ThrowIfNull(config);
        if (!SettingRules.IsValidModuleName(adapter)) throw new ArgumentException($"Adapter name '{adapter}' must not contain '.'.", nameof(adapter));
        if (configs.ContainsKey(adapter)) throw new InvalidOperationException($"Adapter '{adapter}' already exists on this projection.");
        config.Validate(InFeatures, OutFeatures);

        var device = BaseDevice;
        var a = nn.Linear(InFeatures, config.Rank, hasBias: false, device: device);
        var b = nn.Linear(config.Rank, OutFeatures, hasBias: false, device: device);
        using (no_grad())
        {
            nn.init.kaiming_uniform_(a.weight!, a: Math.Sqrt(5));
            nn.init.zeros_(b.weight!);
        }

        loraA.Add(adapter, a);
        loraB.Add(adapter, b);
        loraDropout.Add(adapter, nn.Dropout(config.Dropout));
        configs.Add(adapter, config);
        ActiveAdapter ??= adapter;
    }

    /// <summary>Removes an adapter (it must not be merged).</summary>
    public void DeleteAdapter(string adapter)
    {
        if (!configs.ContainsKey(adapter)) throw UnknownAdapter(adapter);
        if (mergedAdapter == adapter) throw new InvalidOperationException($"Adapter '{adapter}' is merged into the base weight; unmerge it before deleting it.");
        loraA.Remove(adapter);
        loraB.Remove(adapter);
        loraDropout.Remove(adapter);
        configs.Remove(adapter);
        if (ActiveAdapter == adapter) ActiveAdapter = configs.Keys.FirstOrDefault();
    }

    /// <summary>Makes an adapter the active one (null: none).</summary>
    public void SetActiveAdapter(string? adapter)
    {
        if (adapter is not null && !configs.ContainsKey(adapter)) throw UnknownAdapter(adapter);
        ActiveAdapter = adapter;
    }

    /// <summary>Sets whether the base weight and bias take gradients (full fine-tuning of this layer).</summary>
    /// <exception cref="InvalidOperationException">The base is 4-bit or 16-bit and <paramref name="trainable"/> is true.</exception>
    public void SetBaseTrainable(bool trainable)
    {
        if (baseWeight is FloatBaseWeight weight) weight.SetTrainable(trainable);
        else if (trainable)
            throw new InvalidOperationException(
                "The base weight of this projection is quantized to 4 bits and cannot be trained; train LoRA adapters on it (QLoRA) or load a float base instead.");
        if (bias is not null) bias.requires_grad = trainable;
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
        using var scale = config.Scale.ToScalar();
        var delta = LoraB(adapter).matmul(LoraA(adapter)).mul(scale).to(baseWeight.DType);
        return delta.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Folds <c>scale · B·A</c> of the adapter (default: the active one) into the base weight, so inference pays
    /// nothing for it. Calls then skip the LoRA path until <see cref="Unmerge()"/>. A 16-bit base rounds the merged
    /// weight to its dtype, so unmerging does not give it back bit for bit.
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
        if (mergedAdapter is not null)
            throw new InvalidOperationException($"Adapter '{mergedAdapter}' is already merged; unmerge it first.");
        if (IsQuantized && !requantize)
            throw new InvalidOperationException(
                $"Cannot merge adapter '{adapter}' into a 4-bit base exactly. Call Merge(adapter, requantize: true) to dequantize, merge and re-quantize; outputs then change by the 4-bit rounding of the merged weight.");
        using var delta = DeltaWeight(adapter);
        var report = baseWeight.Add(delta, sign: 1);
        mergedAdapter = adapter;
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
        var adapter = mergedAdapter ?? throw new InvalidOperationException("No adapter is merged, so there is nothing to unmerge.");
        if (IsQuantized && !requantize)
            throw new InvalidOperationException(
                $"Cannot unmerge adapter '{adapter}' from a 4-bit base exactly. Call Unmerge(requantize: true) to dequantize, subtract and re-quantize; the base then differs from the original by the 4-bit rounding.");
        using var delta = DeltaWeight(adapter);
        var report = baseWeight.Add(delta, sign: -1);
        mergedAdapter = null;
        return report;
    }

    /// <summary>
    /// Stores the base weight in 4 bits (bitsandbytes' layout) on its current device and frees the float weight.
    /// From then on the forward dequantizes it per call (<see cref="QuantizedLinearFunction"/>), <see cref="Weight"/>
    /// throws, and the module's <c>state_dict()</c> no longer holds <c>weight</c> (bias and adapters stay); the 4-bit
    /// state is saved in transformers + bitsandbytes' key layout (<see cref="Formats.BitsAndBytes.BitsAndBytesState"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">Already quantized, or an adapter is merged.</exception>
    public void QuantizeBase(Quant4BitOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (baseWeight is not FloatBaseWeight weight) throw new InvalidOperationException("The base weight is already quantized.");
        if (mergedAdapter is not null)
            throw new InvalidOperationException($"Unmerge adapter '{mergedAdapter}' before quantizing the base weight.");
        ReplaceBase(Nf4BaseWeight.Quantize(weight.Parameter, options));
        if (bias is not null) bias.requires_grad = false;
    }

    /// <summary>
    /// Stores a float base in <paramref name="dtype"/> from now on: bfloat16 or float16 halve its bytes (the values
    /// are rounded once), float32 widens it again. The bias follows. A 16-bit base is frozen.
    /// </summary>
    /// <exception cref="InvalidOperationException">The base is 4-bit, or it trains and <paramref name="dtype"/> is 16-bit.</exception>
    public void ConvertBase(BaseDType dtype)
    {
        if (baseWeight is not FloatBaseWeight weight) throw new InvalidOperationException("The base weight is stored in 4 bits; only a float base changes dtype.");
        var target = dtype.ToScalarType();
        if (weight.DType == target) return;
        if (dtype != BaseDType.Float32 && weight.Parameter.requires_grad)
            throw new InvalidOperationException($"The base weight trains; a {target} base cannot (training keeps float32 master weights). Freeze it first.");
        ReplaceBase(weight.WithDType(target));
        if (bias is not null)
        {
            using var _ = no_grad();
            var bias = new Parameter(this.bias.detach().to(target).clone(), requires_grad: this.bias.requires_grad && dtype == BaseDType.Float32);
            ConditionallyRegisterParameter("bias", bias);
            this.bias.Dispose();
            this.bias = bias;
        }
    }

    /// <summary>The base weight as a float tensor (dequantized when 4-bit); the caller disposes it.</summary>
    public Tensor DequantizedWeight(ScalarType? dtype = null) => baseWeight.Dequantize(dtype);

    /// <summary>
    /// Replaces the base weight (and bias) with values from a checkpoint, checking shapes. A float base copies (and
    /// converts) them, so a weight stored in the base's own dtype goes in as stored; a 4-bit base quantizes the weight
    /// with its own settings, slice by slice and without a float32 copy, and records the weight's dtype as its original
    /// one (a bfloat16 weight saves back as bfloat16).
    /// </summary>
    public void LoadBase(Tensor weight, Tensor? bias = null)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (mergedAdapter is not null) throw new InvalidOperationException("Unmerge the adapter before replacing the base weight.");
        baseWeight.CheckShape(weight.shape, nameof(weight));
        if (bias is not null)
        {
            if (this.bias is null) throw new ArgumentException("This projection has no bias.", nameof(bias));
            if (!bias.shape.SequenceEqual(this.bias.shape))
                throw new ArgumentException($"Bias shape [{string.Join(", ", bias.shape)}] does not match [{OutFeatures}].", nameof(bias));
        }
        baseWeight.Load(weight);
        if (bias is not null) using (no_grad()) this.bias!.copy_(bias);
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.shape.Length == 0 || input.shape[^1] != InFeatures)
            throw new ArgumentException($"Expected input with last dimension {InFeatures}, got [{string.Join(", ", input.shape)}].", nameof(input));

        using var scope = NewDisposeScope();
        // Under a mixed-precision scope the products run in its compute dtype: the input and the adapter matrices are
        // cast per call (differentiably, so float32 masters receive float32 gradients); the base computes in the
        // input's dtype, using its storage as is when that already has it (see BaseWeight.Linear).
        var x = ComputePrecision.Cast(input);
        var output = baseWeight.Linear(x, bias);
        var rows = AdaptersDisabled || AdapterContext.AdaptersDisabled ? null : AdapterContext.RowAdapters;
        if (rows is not null) output = AddRowUpdates(output, x, rows);
        else if (SelectAdapter() is { } adapter) output = AddUpdate(output, x, adapter);
        return output.MoveToOuterDisposeScope();
    }

    // output + scale · B(A(dropout(x))) for one adapter, on every row of x.
    private Tensor AddUpdate(Tensor output, Tensor x, string adapter)
    {
        var config = configs[adapter];
        if (output.dtype != ScalarType.Float32 && FewRowProduct.IsCpuDecoding(x) && !(loraDropout[adapter].training && config.Dropout > 0)
            && loraA[adapter].weight!.dtype == ScalarType.Float32 && loraB[adapter].weight!.dtype == ScalarType.Float32)
        {
            // Decoding on the CPU in a 16-bit compute dtype: oneDNN spends more on each call (15–40 µs) than a rank-r
            // product of a few rows costs, twice per projection and token. The update runs in float32 from the
            // float32 adapter matrices (MKL, a few µs), is added to the base output in float32 and rounded once.
            var delta = nn.functional.linear(nn.functional.linear(x.to(ScalarType.Float32), loraA[adapter].weight!), loraB[adapter].weight!);
            using var alpha = config.Scale.ToScalar();
            return output.to(ScalarType.Float32).add_(delta, alpha: alpha).to(output.dtype);
        }
        var down = ComputePrecision.Cast(loraA[adapter].weight!);
        var up = ComputePrecision.Cast(loraB[adapter].weight!);
        // The registered nn.Dropout keeps PEFT's module layout and the train/eval switch; the mask comes from
        // LoraDropout, which is several times faster on the CPU.
        var xa = x.to(down.dtype);
        if (loraDropout[adapter].training && config.Dropout > 0) xa = LoraDropout.Apply(xa, config.Dropout);
        var projected = nn.functional.linear(xa, down);
        if (up.dtype == output.dtype && output.dim() >= 1)
        {
            // output + scale · down·Bᵀ in one GEMM that accumulates into the base output in place: no out-sized
            // update tensor, no copy of the output, no separate scale and add passes (forward or backward). The base
            // output is this call's own tensor and its product's backward reads the input and weight, never it.
            long rank = up.shape[1];
            return output.reshape(-1, OutFeatures).addmm_(projected.reshape(-1, rank), up.t(), beta: 1, alpha: (float)config.Scale).view(output.shape);
        }
        using var updateScale = config.Scale.ToScalar();
        var update = nn.functional.linear(projected, up).mul(updateScale);
        return output.add(update.to(output.dtype));
    }

    // A mixed batch (PEFT's _mixed_batch_forward): the base ran once over every row; each adapter's update runs on the
    // rows that name it only, at its own rank and scale, and is added into those rows of the base output in place (the
    // output is this call's own tensor; the base's backward does not read it). A row without an adapter, or whose
    // adapter this projection does not have, keeps the base output, as a whole batch would. Eval mode only: no dropout.
    private Tensor AddRowUpdates(Tensor output, Tensor x, IReadOnlyList<string?> rows)
    {
        CheckRows(x, rows);
        var groups = rows
            .Select((name, row) => (Name: name, Row: (long)row))
            .Where(r => r.Name is not null && configs.ContainsKey(r.Name))
            .GroupBy(r => r.Name!, StringComparer.Ordinal)
            .ToList();
        if (groups.Count == 1 && groups[0].Count() == rows.Count) return AddUpdate(output, x, groups[0].Key);

        foreach (var group in groups)
        {
            var index = tensor(group.Select(r => r.Row).ToArray(), dtype: ScalarType.Int64, device: x.device);
            var down = ComputePrecision.Cast(loraA[group.Key].weight!);
            var up = ComputePrecision.Cast(loraB[group.Key].weight!);
            var update = nn.functional.linear(nn.functional.linear(x.index_select(0, index).to(down.dtype), down), up);
            using var alpha = configs[group.Key].Scale.ToScalar();
            output.index_add_(0, index, update.to(output.dtype), alpha: alpha);
        }
        return output;
    }

    private void CheckRows(Tensor x, IReadOnlyList<string?> rows)
    {
        if (x.dim() < 2 || x.shape[0] != rows.Count)
            throw new ArgumentException(
                $"The per-row selection names {rows.Count} rows, but this projection's input [{string.Join(", ", x.shape)}] has " +
                $"{(x.dim() < 2 ? "no batch dimension" : $"{x.shape[0]} rows")}; give one entry per row of the batch (dimension 0).");
        if (mergedAdapter is not null)
            throw new InvalidOperationException(
                $"Adapter '{mergedAdapter}' is merged into this projection's base weight, so every row would get it: a merged projection cannot serve rows with different adapters. Unmerge it first (UnmergeAdapters).");
        if (training)
            throw new InvalidOperationException(
                "Per-row adapters serve inference, as PEFT's adapter_names do: this projection is in training mode. Call eval() on the model, or train each adapter on batches of its own.");
        if (AdapterContext.RowAdaptersCheckedByModel) return;
        var missing = rows.Select((name, row) => (name, row)).Where(r => r.name is not null && !configs.ContainsKey(r.name)).ToList();
        if (missing.Count > 0)
            throw new KeyNotFoundException(
                $"No LoRA adapter named {string.Join(", ", missing.Select(m => $"'{m.name}' (row {m.row})"))} on this projection; its adapters: " +
                $"{(configs.Count == 0 ? "none" : string.Join(", ", configs.Keys))}. If an adapter targets other projections only, pass the model to AdapterContext.UsePerRow(model, ...).");
    }

    private string? SelectAdapter()
    {
        if (AdaptersDisabled || AdapterContext.AdaptersDisabled) return null;
        var adapter = AdapterContext.Adapter ?? ActiveAdapter;
        if (adapter is null || !configs.ContainsKey(adapter)) return null;
        // A merged adapter already lives in the weight; applying its path again would count it twice.
        return adapter == mergedAdapter ? null : adapter;
    }

    /// <inheritdoc />
    protected override nn.Module _to(DeviceType deviceType, int deviceIndex, bool non_blocking)
    {
        base._to(deviceType, deviceIndex, non_blocking);
        FollowMove(new Device(deviceType, deviceIndex));
        return this;
    }

    /// <inheritdoc />
    protected override nn.Module _to(Device device, ScalarType dtype, bool non_blocking)
    {
        base._to(device, dtype, non_blocking);
        FollowMove(device);
        return this;
    }

    /// <inheritdoc />
    protected override nn.Module _to(ScalarType dtype, bool non_blocking)
    {
        base._to(dtype, non_blocking);
        FollowMove(null);
        return this;
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) baseWeight.Dispose();
        base.Dispose(disposing);
    }

    // TorchSharp moves registered parameters by registering new ones under the same names; a float base and the bias
    // follow them, a 4-bit base (not a parameter) moves itself.
    private void FollowMove(Device? device)
    {
        if (baseWeight is FloatBaseWeight weight) weight.Rebind(RegisteredParameter(BaseWeight.Key));
        else if (device is not null) baseWeight.MoveTo(device);
        if (bias is not null) bias = RegisteredParameter("bias");
    }

    private Parameter RegisteredParameter(string name)
        => named_parameters(recurse: false).Single(p => p.name == name).parameter;

    /// <summary>Makes <paramref name="replacement"/> the base (the old one is disposed); the projection's <c>weight</c> parameter follows.</summary>
    internal void ReplaceBase(BaseWeight replacement)
    {
        var old = baseWeight;
        baseWeight = replacement;
        // A float base is the module's `weight` parameter; a 4-bit one is not a parameter at all (its state is saved in
        // bitsandbytes' keys), so the float weight leaves parameters and state_dict and its memory is freed now.
        ConditionallyRegisterParameter(BaseWeight.Key, (replacement as FloatBaseWeight)?.Parameter);
        old.Dispose();
    }

    /// <inheritdoc />
    protected override void RegisterComponents()
    {
        // Everything is registered explicitly in the constructor and AddAdapter.
    }

    private static KeyNotFoundException UnknownAdapter(string adapter)
        => new($"No LoRA adapter named '{adapter}' on this projection.");
}
