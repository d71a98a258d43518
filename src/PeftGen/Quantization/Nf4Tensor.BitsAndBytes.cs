using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen;

public sealed partial class Nf4Tensor
{
    /// <summary>
    /// The tensors transformers + bitsandbytes write for a 4-bit <c>Params4bit</c> named <paramref name="name"/>
    /// (e.g. <c>model.layers.0.self_attn.q_proj.weight</c>): <c>{name}</c> (packed uint8, shape <c>[ceil(n/2), 1]</c>),
    /// <c>{name}.absmax</c>, <c>{name}.quant_map</c>, with double quantization <c>{name}.nested_absmax</c> and
    /// <c>{name}.nested_quant_map</c>, and <c>{name}.quant_state.bitsandbytes__{nf4|fp4}</c>: the UTF-8 bytes of
    /// <c>json.dumps</c> of quant_type, blocksize, dtype, shape (and nested_blocksize, nested_dtype, nested_offset).
    /// All tensors are new CPU copies owned by the caller.
    /// </summary>
    public Dictionary<string, Tensor> ToBitsAndBytesState(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        using var scope = NewDisposeScope();
        var state = new Dictionary<string, Tensor>
        {
            [name] = Packed.cpu().clone().view(-1, 1),
            [name + ".absmax"] = (Options.DoubleQuant ? _quantizedAbsmax! : _absmax!).cpu().clone(),
            [name + ".quant_map"] = tensor(CodeBooks.Values(Options.QuantType)),
        };
        if (Options.DoubleQuant)
        {
            state[name + ".nested_absmax"] = _nestedAbsmax!.cpu().clone();
            state[name + ".nested_quant_map"] = tensor(CodeBooks.DynamicMap);
        }
        state[name + ".quant_state.bitsandbytes__" + CodeBooks.Name(Options.QuantType)] =
            tensor(Encoding.UTF8.GetBytes(QuantStateJson()), dtype: ScalarType.Byte);
        foreach (var t in state.Values) t.DetachFromDisposeScope();
        return state;
    }

    /// <summary>
    /// Reads the layout written by <see cref="ToBitsAndBytesState"/> (and by transformers + bitsandbytes) strictly:
    /// every expected key, dtype and shape is checked, the code books must be bitsandbytes' exact values, and any
    /// other key under <paramref name="name"/> is an error. The state is copied to <paramref name="device"/>.
    /// </summary>
    /// <exception cref="FormatException">A key is missing or unexpected, or a tensor or field does not fit.</exception>
    public static Nf4Tensor FromBitsAndBytesState(IReadOnlyDictionary<string, Tensor> state, string name, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentException.ThrowIfNullOrEmpty(name);
        device ??= CPU;

        var stateKeys = state.Keys.Where(k => k.StartsWith(name + ".quant_state.", StringComparison.Ordinal)).ToList();
        if (stateKeys.Count != 1)
            throw new FormatException($"Expected exactly one '{name}.quant_state.bitsandbytes__nf4|fp4' tensor, found {stateKeys.Count}.");
        var quantType = stateKeys[0][(name.Length + ".quant_state.".Length)..] switch
        {
            "bitsandbytes__nf4" => QuantType.Nf4,
            "bitsandbytes__fp4" => QuantType.Fp4,
            var other => throw new FormatException($"Unknown quant state '{other}' for '{name}'."),
        };
        var json = ParseQuantState(Require(state, stateKeys[0], ScalarType.Byte), stateKeys[0]);

        var fields = json.RootElement;
        var jsonType = GetString(fields, "quant_type", stateKeys[0]);
        if (jsonType != CodeBooks.Name(quantType))
            throw new FormatException($"'{stateKeys[0]}' says quant_type '{jsonType}' but its key says '{CodeBooks.Name(quantType)}'.");
        var blockSize = GetInt(fields, "blocksize", stateKeys[0]);
        var dtype = ParseDType(GetString(fields, "dtype", stateKeys[0]), stateKeys[0]);
        if (!fields.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw new FormatException($"'{stateKeys[0]}' has no shape list.");
        var shape = shapeElement.EnumerateArray().Select(e => e.GetInt64()).ToArray();
        if (shape.Length == 0 || shape.Any(d => d <= 0)) throw new FormatException($"'{stateKeys[0]}' has an invalid shape.");
        var doubleQuant = fields.TryGetProperty("nested_blocksize", out _);
        var options = new Quant4BitOptions(quantType, blockSize, doubleQuant);
        try { options.Validate(); }
        catch (ArgumentOutOfRangeException e) { throw new FormatException($"'{stateKeys[0]}': {e.Message}"); }

        var count = shape.Aggregate(1L, (a, b) => a * b);
        var blocks = (count + blockSize - 1) / blockSize;
        var expectedKeys = new HashSet<string> { name, name + ".absmax", name + ".quant_map", stateKeys[0] };
        if (doubleQuant)
        {
            expectedKeys.Add(name + ".nested_absmax");
            expectedKeys.Add(name + ".nested_quant_map");
        }
        var unexpected = state.Keys.Where(k => k.StartsWith(name + ".", StringComparison.Ordinal) && !expectedKeys.Contains(k)).ToList();
        if (unexpected.Count > 0) throw new FormatException($"Unexpected tensors for '{name}': {string.Join(", ", unexpected)}.");

        var packed = Require(state, name, ScalarType.Byte);
        if (packed.NumberOfElements != (count + 1) / 2)
            throw new FormatException($"'{name}' holds {packed.NumberOfElements} bytes, expected {(count + 1) / 2} for shape [{string.Join(", ", shape)}].");
        RequireCodeBook(Require(state, name + ".quant_map", ScalarType.Float32), CodeBooks.Values(quantType), name + ".quant_map");

        using var scope = NewDisposeScope();
        Tensor? absmax = null, quantizedAbsmax = null, nestedAbsmax = null;
        var offset = 0f;
        if (doubleQuant)
        {
            if (GetInt(fields, "nested_blocksize", stateKeys[0]) != NestedBlockSize)
                throw new FormatException($"'{stateKeys[0]}': nested_blocksize must be {NestedBlockSize}.");
            if (GetString(fields, "nested_dtype", stateKeys[0]) != "float32")
                throw new FormatException($"'{stateKeys[0]}': nested_dtype must be float32.");
            if (!fields.TryGetProperty("nested_offset", out var offsetElement) || offsetElement.ValueKind != JsonValueKind.Number)
                throw new FormatException($"'{stateKeys[0]}' has no numeric nested_offset.");
            offset = (float)offsetElement.GetDouble();
            quantizedAbsmax = RequireLength(Require(state, name + ".absmax", ScalarType.Byte), blocks, name + ".absmax").to(device);
            nestedAbsmax = RequireLength(Require(state, name + ".nested_absmax", ScalarType.Float32),
                (blocks + NestedBlockSize - 1) / NestedBlockSize, name + ".nested_absmax").to(device);
            RequireCodeBook(Require(state, name + ".nested_quant_map", ScalarType.Float32), CodeBooks.DynamicMap, name + ".nested_quant_map");
        }
        else
        {
            absmax = RequireLength(Require(state, name + ".absmax", ScalarType.Float32), blocks, name + ".absmax").to(device);
        }

        var result = new Nf4Tensor(packed.reshape(-1).to(device).clone(), absmax?.clone(), quantizedAbsmax?.clone(), nestedAbsmax?.clone(),
            offset, shape, dtype, options);
        result.DetachAll();
        return result;
    }

    /// <summary>The JSON bitsandbytes packs into the <c>quant_state</c> tensor (Python <c>json.dumps</c> formatting).</summary>
    internal string QuantStateJson()
    {
        var sb = new StringBuilder();
        sb.Append("{\"quant_type\": \"").Append(CodeBooks.Name(Options.QuantType)).Append('"');
        sb.Append(", \"blocksize\": ").Append(Options.BlockSize.ToString(CultureInfo.InvariantCulture));
        sb.Append(", \"dtype\": \"").Append(DTypeName(OriginalDType)).Append('"');
        sb.Append(", \"shape\": [").Append(string.Join(", ", Shape.Select(d => d.ToString(CultureInfo.InvariantCulture)))).Append(']');
        if (Options.DoubleQuant)
        {
            sb.Append(", \"nested_blocksize\": ").Append(NestedBlockSize.ToString(CultureInfo.InvariantCulture));
            sb.Append(", \"nested_dtype\": \"float32\"");
            sb.Append(", \"nested_offset\": ").Append(PythonFloat(Offset));
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

    private static Tensor RequireLength(Tensor t, long length, string key)
        => t.NumberOfElements == length && t.dim() == 1
            ? t
            : throw new FormatException($"'{key}' has shape [{string.Join(", ", t.shape)}], expected [{length}].");

    private static void RequireCodeBook(Tensor t, float[] expected, string key)
    {
        var values = t.cpu().data<float>().ToArray();
        if (values.Length != expected.Length || values.Where((v, i) => BitConverter.SingleToInt32Bits(v) != BitConverter.SingleToInt32Bits(expected[i])).Any())
            throw new FormatException($"'{key}' is not bitsandbytes' code book (values differ).");
    }
}
