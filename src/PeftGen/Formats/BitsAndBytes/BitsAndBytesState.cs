using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen.Formats.BitsAndBytes;

/// <summary>
/// bitsandbytes' serialized 4-bit weights, as transformers + bitsandbytes save a <c>Params4bit</c>: the packed codes and
/// quantization state of an <see cref="Nf4Tensor"/> under one name, and a 4-bit projection (<see cref="LoraLinear"/>)
/// under its module path. Written exactly, read strictly.
/// </summary>
public static class BitsAndBytesState
{
    /// <summary>
    /// The tensors transformers + bitsandbytes write for a 4-bit <c>Params4bit</c> named <paramref name="name"/>
    /// (e.g. <c>model.layers.0.self_attn.q_proj.weight</c>): <c>{name}</c> (packed uint8, shape <c>[ceil(n/2), 1]</c>),
    /// <c>{name}.absmax</c>, <c>{name}.quant_map</c>, with double quantization <c>{name}.nested_absmax</c> and
    /// <c>{name}.nested_quant_map</c>, and <c>{name}.quant_state.bitsandbytes__{nf4|fp4}</c>: the UTF-8 bytes of
    /// <c>json.dumps</c> of quant_type, blocksize, dtype, shape (and nested_blocksize, nested_dtype, nested_offset).
    /// All tensors are new CPU copies owned by the caller.
    /// </summary>
    public static Dictionary<string, Tensor> Write(Nf4Tensor weight, string name)
    {
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentException.ThrowIfNullOrEmpty(name);
        using var scope = NewDisposeScope();
        var state = new Dictionary<string, Tensor>
        {
            [name] = weight.Packed.cpu().clone().view(-1, 1),
            [name + ".absmax"] = (weight.Options.DoubleQuant ? weight.QuantizedAbsmax! : weight.Absmax!).cpu().clone(),
            [name + ".quant_map"] = tensor(CodeBooks.Values(weight.Options.QuantType)),
        };
        if (weight.Options.DoubleQuant)
        {
            state[name + ".nested_absmax"] = weight.NestedAbsmax!.cpu().clone();
            state[name + ".nested_quant_map"] = weight.NestedMap!.cpu().clone();
        }
        state[name + ".quant_state.bitsandbytes__" + CodeBooks.Name(weight.Options.QuantType)] =
            tensor(Encoding.UTF8.GetBytes(QuantStateJson(weight)), dtype: ScalarType.Byte);
        foreach (var t in state.Values) t.DetachFromDisposeScope();
        return state;
    }

    /// <summary>
    /// Reads the layout written by <see cref="Write(Nf4Tensor, string)"/> (and by transformers + bitsandbytes) strictly:
    /// every expected key, dtype and shape is checked, the 4-bit code book must be bitsandbytes' exact values (its
    /// kernels hard-code them), and any other key under <paramref name="name"/> is an error. The nested map
    /// (<c>nested_quant_map</c>) is the file's own, as bitsandbytes dequantizes with it: torch builds differ in its last
    /// bits, so it is checked for shape [256], float32, finite and strictly ascending values, and kept
    /// (<see cref="Nf4Tensor.NestedMap"/>). The state is copied to <paramref name="device"/>.
    /// </summary>
    /// <exception cref="FormatException">A key is missing or unexpected, or a tensor or field does not fit.</exception>
    public static Nf4Tensor Read(IReadOnlyDictionary<string, Tensor> state, string name, Device? device = null)
        => Read(state, name, device, ComputeDType.Auto);

    /// <summary>As the public overload, with the compute dtype the projection holding the weight uses.</summary>
    internal static Nf4Tensor Read(IReadOnlyDictionary<string, Tensor> state, string name, Device? device, ComputeDType computeDType)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentException.ThrowIfNullOrEmpty(name);
        device ??= CPU;
        var packed = Require(state, name, ScalarType.Byte);
        var layout = ReadLayout(state.Keys, name, key => state[key], packed.dtype, packed.NumberOfElements);

        using var scope = NewDisposeScope();
        Tensor? absmax = null, quantizedAbsmax = null, nestedAbsmax = null, nestedMap = null;
        if (layout.Options.DoubleQuant)
        {
            quantizedAbsmax = state[name + ".absmax"].to(device).clone();
            nestedAbsmax = state[name + ".nested_absmax"].to(device).clone();
            var map = state[name + ".nested_quant_map"];
            // Our own map is shared; another build's is kept by this tensor.
            if (!SameBits(map, CodeBooks.DynamicMap)) nestedMap = map.to(device).clone();
        }
        else
        {
            absmax = state[name + ".absmax"].to(device).clone();
        }

        var result = new Nf4Tensor(packed.reshape(-1).to(device).clone(), absmax, quantizedAbsmax, nestedAbsmax, nestedMap,
            layout.Offset, layout.Shape, layout.DType, layout.Options with { ComputeDType = computeDType });
        result.DetachAll();
        return result;
    }

    /// <summary>
    /// A 4-bit projection in transformers + bitsandbytes' layout under <paramref name="prefix"/> (its module path and a
    /// dot, e.g. <c>model.layers.0.mlp.up_proj.</c>): the weight's state under <c>{prefix}weight</c> (see
    /// <see cref="Write(Nf4Tensor, string)"/>) and <c>{prefix}bias</c> when there is one. Tensors are new CPU copies.
    /// </summary>
    /// <exception cref="InvalidOperationException">The projection's base is not 4-bit.</exception>
    public static Dictionary<string, Tensor> Write(LoraLinear projection, string prefix = "")
    {
        ArgumentNullException.ThrowIfNull(projection);
        var state = Write(projection.QuantizedWeight ?? throw new InvalidOperationException("The base weight is not quantized."), prefix + BaseWeight.Key);
        if (projection.Bias is { } bias)
        {
            using var _ = no_grad();
            state[prefix + "bias"] = bias.detach().cpu().clone();
        }
        return state;
    }

    /// <summary>
    /// Loads a 4-bit base into <paramref name="projection"/> from the layout <see cref="Write(LoraLinear, string)"/>
    /// writes, strictly. The file decides code book, block size and double quantization; a projection that was 4-bit
    /// keeps its compute dtype, a float one becomes 4-bit (its float weight is freed) and computes in
    /// <see cref="ComputeDType.Auto"/>. Nothing changes when anything does not fit.
    /// </summary>
    /// <exception cref="FormatException">The state is malformed.</exception>
    /// <exception cref="ArgumentException">The weight's shape or the bias does not fit the projection.</exception>
    public static void Load(LoraLinear projection, IReadOnlyDictionary<string, Tensor> state, string prefix = "")
        => Load(projection, state, prefix, ComputeDType.Auto);

    /// <summary>As the public overload; <paramref name="computeDType"/> applies when the projection becomes 4-bit.</summary>
    internal static void Load(LoraLinear projection, IReadOnlyDictionary<string, Tensor> state, string prefix, ComputeDType computeDType)
    {
        ArgumentNullException.ThrowIfNull(projection);
        ArgumentNullException.ThrowIfNull(state);
        if (projection.MergedAdapter is not null) throw new InvalidOperationException("Unmerge the adapter before replacing the base weight.");
        var loaded = new Nf4BaseWeight(Read(state, prefix + BaseWeight.Key, projection.BaseDevice, projection.Quantization?.ComputeDType ?? computeDType));
        try
        {
            if (loaded.OutFeatures != projection.OutFeatures || loaded.InFeatures != projection.InFeatures)
                throw new ArgumentException($"Quantized weight shape [{loaded.OutFeatures}, {loaded.InFeatures}] does not match [{projection.OutFeatures}, {projection.InFeatures}].", nameof(state));
            if (projection.Bias is { } bias)
            {
                if (!state.TryGetValue(prefix + "bias", out var stored))
                    throw new ArgumentException($"Missing '{prefix}bias'.", nameof(state));
                if (!stored.shape.SequenceEqual(bias.shape))
                    throw new ArgumentException($"Bias shape [{string.Join(", ", stored.shape)}] does not match [{projection.OutFeatures}].", nameof(state));
                using (no_grad()) bias.copy_(stored);
            }
        }
        catch
        {
            loaded.Dispose();
            throw;
        }
        projection.ReplaceBase(loaded);
    }

    /// <summary>What the quant state of one 4-bit weight says, every key and tensor checked.</summary>
    /// <param name="Options">Code book, block size and double quantization (compute dtype left at its default).</param>
    /// <param name="Shape">The weight's logical shape.</param>
    /// <param name="DType">The dtype the weight had before quantization.</param>
    /// <param name="Offset">The nested offset (0 without double quantization).</param>
    /// <param name="Keys">Every key of the weight's state, <c>{name}</c> included.</param>
    internal sealed record BitsAndBytesLayout(Quant4BitOptions Options, long[] Shape, ScalarType DType, float Offset, IReadOnlyList<string> Keys);

    /// <summary>
    /// Checks the state of the 4-bit weight <paramref name="name"/> among <paramref name="keys"/>: the packed codes by
    /// their dtype and count only (they need not be read), every other tensor through <paramref name="read"/>.
    /// </summary>
    /// <exception cref="FormatException">A key is missing or unexpected, or a tensor or field does not fit.</exception>
    internal static BitsAndBytesLayout ReadLayout(
        IEnumerable<string> keys, string name, Func<string, Tensor> read, ScalarType packedDType, long packedCount)
    {
        var names = keys.ToHashSet(StringComparer.Ordinal);
        var stateKeys = names.Where(k => k.StartsWith(name + ".quant_state.", StringComparison.Ordinal)).ToList();
        if (stateKeys.Count != 1)
            throw new FormatException($"Expected exactly one '{name}.quant_state.bitsandbytes__nf4|fp4' tensor, found {stateKeys.Count}.");
        var stateKey = stateKeys[0];
        var quantType = stateKey[(name.Length + ".quant_state.".Length)..] switch
        {
            "bitsandbytes__nf4" => QuantType.Nf4,
            "bitsandbytes__fp4" => QuantType.Fp4,
            var other => throw new FormatException($"Unknown quant state '{other}' for '{name}'."),
        };
        using var json = ParseQuantState(Require(names, read, stateKey, ScalarType.Byte), stateKey);

        var fields = json.RootElement;
        var jsonType = GetString(fields, "quant_type", stateKey);
        if (jsonType != CodeBooks.Name(quantType))
            throw new FormatException($"'{stateKey}' says quant_type '{jsonType}' but its key says '{CodeBooks.Name(quantType)}'.");
        var blockSize = GetInt(fields, "blocksize", stateKey);
        var dtype = ParseDType(GetString(fields, "dtype", stateKey), stateKey);
        if (!fields.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw new FormatException($"'{stateKey}' has no shape list.");
        var shape = shapeElement.EnumerateArray().Select(e => e.TryGetInt64(out var d) ? d : 0).ToArray();
        if (shape.Length == 0 || shape.Any(d => d <= 0)) throw new FormatException($"'{stateKey}' has an invalid shape.");
        var doubleQuant = fields.TryGetProperty("nested_blocksize", out _);
        var options = new Quant4BitOptions(quantType, blockSize, doubleQuant);
        try { options.Validate(); }
        catch (ArgumentOutOfRangeException e) { throw new FormatException($"'{stateKey}': {e.Message}"); }

        long count;
        try { count = shape.Aggregate(1L, (a, b) => checked(a * b)); }
        catch (OverflowException) { throw new FormatException($"'{stateKey}': shape [{string.Join(", ", shape)}] has more values than a tensor can hold."); }
        var blocks = (count + blockSize - 1) / blockSize;
        var expectedKeys = new List<string> { name, name + ".absmax", name + ".quant_map", stateKey };
        if (doubleQuant)
        {
            expectedKeys.Add(name + ".nested_absmax");
            expectedKeys.Add(name + ".nested_quant_map");
        }
        var unexpected = names.Where(k => k.StartsWith(name + ".", StringComparison.Ordinal) && !expectedKeys.Contains(k)).Order(StringComparer.Ordinal).ToList();
        if (unexpected.Count > 0) throw new FormatException($"Unexpected tensors for '{name}': {string.Join(", ", unexpected)}.");

        if (!names.Contains(name)) throw new FormatException($"Missing tensor '{name}'.");
        if (packedDType != ScalarType.Byte)
            throw new FormatException($"'{name}' is {packedDType}; only uint8 storage (bnb_4bit_quant_storage \"uint8\") is read.");
        if (packedCount != (count + 1) / 2)
            throw new FormatException($"'{name}' holds {packedCount} bytes, expected {(count + 1) / 2} for shape [{string.Join(", ", shape)}].");
        RequireCodeBook(Require(names, read, name + ".quant_map", ScalarType.Float32), CodeBooks.Values(quantType), name + ".quant_map");

        var offset = 0f;
        if (doubleQuant)
        {
            if (GetInt(fields, "nested_blocksize", stateKey) != Nf4Tensor.NestedBlockSize)
                throw new FormatException($"'{stateKey}': nested_blocksize must be {Nf4Tensor.NestedBlockSize}.");
            if (GetString(fields, "nested_dtype", stateKey) != "float32")
                throw new FormatException($"'{stateKey}': nested_dtype must be float32.");
            if (!fields.TryGetProperty("nested_offset", out var offsetElement) || offsetElement.ValueKind != JsonValueKind.Number)
                throw new FormatException($"'{stateKey}' has no numeric nested_offset.");
            offset = (float)offsetElement.GetDouble();
            if (!float.IsFinite(offset)) throw new FormatException($"'{stateKey}': nested_offset {offsetElement.GetRawText()} is not a finite float32.");
            RequireLength(Require(names, read, name + ".absmax", ScalarType.Byte), blocks, name + ".absmax");
            RequireLength(Require(names, read, name + ".nested_absmax", ScalarType.Float32),
                (blocks + Nf4Tensor.NestedBlockSize - 1) / Nf4Tensor.NestedBlockSize, name + ".nested_absmax");
            RequireDynamicMap(Require(names, read, name + ".nested_quant_map", ScalarType.Float32), name + ".nested_quant_map");
        }
        else
        {
            RequireLength(Require(names, read, name + ".absmax", ScalarType.Float32), blocks, name + ".absmax");
        }
        return new BitsAndBytesLayout(options, shape, dtype, offset, expectedKeys);
    }

    /// <summary>The JSON bitsandbytes packs into the <c>quant_state</c> tensor (Python <c>json.dumps</c> formatting).</summary>
    internal static string QuantStateJson(Nf4Tensor weight)
    {
        var sb = new StringBuilder();
        sb.Append("{\"quant_type\": \"").Append(CodeBooks.Name(weight.Options.QuantType)).Append('"');
        sb.Append(", \"blocksize\": ").Append(weight.Options.BlockSize.ToString(CultureInfo.InvariantCulture));
        sb.Append(", \"dtype\": \"").Append(DTypeName(weight.OriginalDType)).Append('"');
        sb.Append(", \"shape\": [").Append(string.Join(", ", weight.Shape.Select(d => d.ToString(CultureInfo.InvariantCulture)))).Append(']');
        if (weight.Options.DoubleQuant)
        {
            sb.Append(", \"nested_blocksize\": ").Append(Nf4Tensor.NestedBlockSize.ToString(CultureInfo.InvariantCulture));
            sb.Append(", \"nested_dtype\": \"float32\"");
            sb.Append(", \"nested_offset\": ").Append(PythonFloat(weight.Offset));
        }
        return sb.Append('}').ToString();
    }

    /// <summary>Python's <c>repr</c> of a float32 value widened to a double (what <c>tensor.item()</c> gives).</summary>
    internal static string PythonFloat(float value)
    {
        double d = value;
        if (double.IsNaN(d)) return "NaN";
        if (double.IsInfinity(d)) return d > 0 ? "Infinity" : "-Infinity";
        // Shortest round-trip digits and decimal exponent, then Python's layout: scientific below 1e-4 or from 1e16.
        var shortest = d.ToString("R", CultureInfo.InvariantCulture);
        var negative = shortest.StartsWith('-');
        var mantissa = shortest.TrimStart('-');
        int exponent;
        string digits;
        var ePos = mantissa.IndexOfAny(['E', 'e']);
        if (ePos >= 0)
        {
            exponent = int.Parse(mantissa[(ePos + 1)..], CultureInfo.InvariantCulture);
            mantissa = mantissa[..ePos];
        }
        else
        {
            exponent = 0;
        }
        var dot = mantissa.IndexOf('.');
        var intPart = dot >= 0 ? mantissa[..dot] : mantissa;
        var fracPart = dot >= 0 ? mantissa[(dot + 1)..] : "";
        digits = (intPart + fracPart).TrimStart('0');
        var leadingZeros = (intPart + fracPart).Length - (intPart + fracPart).TrimStart('0').Length;
        // Value = 0.digits × 10^pointPos
        var pointPos = intPart.Length + exponent - leadingZeros;
        digits = digits.TrimEnd('0');
        if (digits.Length == 0) return negative ? "-0.0" : "0.0";
        var sci = pointPos - 1;
        string body;
        if (sci < -4 || sci >= 16)
        {
            body = digits[..1] + (digits.Length > 1 ? "." + digits[1..] : "") + "e" + (sci < 0 ? "-" : "+") + Math.Abs(sci).ToString("00", CultureInfo.InvariantCulture);
        }
        else if (pointPos <= 0)
        {
            body = "0." + new string('0', -pointPos) + digits;
        }
        else if (pointPos >= digits.Length)
        {
            body = digits + new string('0', pointPos - digits.Length) + ".0";
        }
        else
        {
            body = digits[..pointPos] + "." + digits[pointPos..];
        }
        return negative ? "-" + body : body;
    }

    private static string DTypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.Float16 => "float16",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float64 => "float64",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Not a floating-point dtype bitsandbytes records."),
    };

    private static ScalarType ParseDType(string name, string key) => name switch
    {
        "float32" => ScalarType.Float32,
        "float16" => ScalarType.Float16,
        "bfloat16" => ScalarType.BFloat16,
        "float64" => ScalarType.Float64,
        _ => throw new FormatException($"'{key}': unknown dtype '{name}'."),
    };

    private static JsonDocument ParseQuantState(Tensor bytes, string key)
    {
        try
        {
            var data = bytes.cpu().data<byte>().ToArray();
            return JsonDocument.Parse(new UTF8Encoding(false, true).GetString(data));
        }
        catch (Exception e) when (e is JsonException or ArgumentException)
        {
            throw new FormatException($"'{key}' is not UTF-8 JSON: {e.Message}", e);
        }
    }

    private static string GetString(JsonElement fields, string field, string key)
        => fields.TryGetProperty(field, out var e) && e.ValueKind == JsonValueKind.String
            ? e.GetString()!
            : throw new FormatException($"'{key}' has no string '{field}'.");

    private static int GetInt(JsonElement fields, string field, string key)
        => fields.TryGetProperty(field, out var e) && e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out var v)
            ? v
            : throw new FormatException($"'{key}' has no integer '{field}'.");

    private static Tensor Require(IReadOnlyDictionary<string, Tensor> state, string key, ScalarType dtype)
    {
        if (!state.TryGetValue(key, out var t)) throw new FormatException($"Missing tensor '{key}'.");
        if (t.dtype != dtype) throw new FormatException($"'{key}' is {t.dtype}, expected {dtype}.");
        return t;
    }

    private static Tensor Require(HashSet<string> names, Func<string, Tensor> read, string key, ScalarType dtype)
    {
        if (!names.Contains(key)) throw new FormatException($"Missing tensor '{key}'.");
        var t = read(key);
        if (t.dtype != dtype) throw new FormatException($"'{key}' is {t.dtype}, expected {dtype}.");
        return t;
    }

    private static void RequireLength(Tensor t, long length, string key)
    {
        if (t.NumberOfElements != length || t.dim() != 1)
            throw new FormatException($"'{key}' has shape [{string.Join(", ", t.shape)}], expected [{length}].");
    }

    private static void RequireCodeBook(Tensor t, float[] expected, string key)
    {
        if (t.NumberOfElements != expected.Length || !SameBits(t, expected))
            throw new FormatException($"'{key}' is not bitsandbytes' code book (values differ).");
    }

    /// <summary>A dynamic map from any torch build: 256 finite float32 values in strictly ascending order.</summary>
    private static void RequireDynamicMap(Tensor t, string key)
    {
        RequireLength(t, 256, key);
        var values = t.cpu().contiguous().data<float>().ToArray();
        var bad = Array.FindIndex(values, v => !float.IsFinite(v));
        if (bad >= 0) throw new FormatException($"'{key}'[{bad}] is {values[bad]}; the dynamic map must be finite.");
        for (var i = 1; i < values.Length; i++)
        {
            if (!(values[i - 1] < values[i]))
                throw new FormatException($"'{key}' is not strictly ascending at [{i}] ({values[i - 1]:R}, then {values[i]:R}).");
        }
    }

    private static bool SameBits(Tensor t, float[] expected)
    {
        var values = t.cpu().contiguous().data<float>().ToArray();
        return values.Length == expected.Length
               && values.Select(BitConverter.SingleToInt32Bits).SequenceEqual(expected.Select(BitConverter.SingleToInt32Bits));
    }
}
