using System;
using System.Collections.Generic;
using System.Linq;

namespace PeftGen.Tests.Quantization;

/// <summary>
/// A deliberately simple, slow, scalar implementation of bitsandbytes' 4-bit blockwise quantization, written from the
/// algorithm's description (not from the library code it checks): per-block float32 absmax, values multiplied by the
/// float32 reciprocal, codes chosen with float32 decision thresholds and strict <c>&gt;</c>, two codes per byte (high
/// nibble first), the 8-bit dynamic-map binary search of <c>dQuantize&lt;0&gt;</c> for double quantization.
/// </summary>
internal static class BitsAndBytesReference
{
    public static readonly float[] Nf4Code =
    [
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
        -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
        0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
        0.7229568362236023f, 1.0f,
    ];

    /// <summary>FP4 magnitudes by code (low three bits): E2M1 values {0, 0.0625, 8, 12, 4, 6, 2, 3} / 12.</summary>
    public static readonly float[] Fp4Magnitude = [0f, 0.0625f / 12f, 8f / 12f, 1f, 4f / 12f, 6f / 12f, 2f / 12f, 3f / 12f];

    public static float Fp4Value(int code) => (code & 8) != 0 ? -Fp4Magnitude[code & 7] : Fp4Magnitude[code & 7];

    /// <summary>
    /// NF4 decision thresholds exactly as bitsandbytes' kernel spells them in <c>dQuantizeNF4</c>: decimal literals
    /// with an <c>f</c> suffix (midpoints of neighbouring codes, computed in double and printed to 16–17 digits).
    /// </summary>
    public static readonly string[] Nf4KernelThresholdDecimals =
    [
        "-0.8480964004993439", "-0.6106329262256622", "-0.4599952697753906", "-0.33967943489551544",
        "-0.23460740596055984", "-0.13791173323988914", "-0.045525018125772476", "0.03979014977812767",
        "0.1202552504837513", "0.2035212516784668", "0.2920137718319893", "0.3893125355243683",
        "0.5016634166240692", "0.6427869200706482", "0.8614784181118011",
    ];

    /// <summary>
    /// The kernel's thresholds as float32: an <c>f</c>-suffixed literal is rounded by the compiler straight from the
    /// decimal to the nearest float32, as <see cref="float.Parse(string, IFormatProvider)"/> does. Four of them (0, 8,
    /// 12, 14) would come out one ulp away through a double first; the kernel's constants are the contract.
    /// </summary>
    public static readonly float[] Nf4KernelThresholds =
        Nf4KernelThresholdDecimals.Select(s => float.Parse(s, System.Globalization.CultureInfo.InvariantCulture)).ToArray();

    /// <summary>NF4: the number of kernel thresholds x is strictly above (a value on a threshold takes the lower code).</summary>
    public static int EncodeNf4(float x)
    {
        var code = 0;
        for (var i = 0; i < 15; i++)
            if (x > Nf4KernelThresholds[i]) code = i + 1;
        return code;
    }

    /// <summary>FP4 as bitsandbytes' kernel decides it: sign bit, then |x| against its (rounded) midpoints.</summary>
    public static int EncodeFp4(float x)
    {
        var sign = x < 0 ? 8 : 0;
        var a = Math.Abs(x);
        int magnitude;
        if (a > 0.29166667f)
            magnitude = a > 0.583333f ? (a > 0.8333333f ? 3 : 2) : (a > 0.4166667f ? 5 : 4);
        else if (a > 0.0859375f)
            magnitude = a > 0.20833333f ? 7 : 6;
        else
            magnitude = a > 0.00260417f ? 1 : 0;
        return sign + magnitude;
    }

    public sealed record Result(byte[] Packed, float[] Absmax, byte[]? QuantizedAbsmax, float[]? NestedAbsmax);

    /// <summary>Quantizes a row-major weight. <paramref name="offset"/> is the mean of the absmax values to use.</summary>
    public static Result Quantize(float[] weight, int blockSize, bool fp4, bool doubleQuant, Func<float[], float> offset, float[] dynamicMap)
    {
        var n = weight.Length;
        var blocks = (n + blockSize - 1) / blockSize;
        var absmax = new float[blocks];
        var codes = new int[n + 1];
        for (var b = 0; b < blocks; b++)
        {
            var start = b * blockSize;
            var end = Math.Min(n, start + blockSize);
            var max = 0f;
            for (var i = start; i < end; i++) max = Math.Max(max, Math.Abs(weight[i]));
            absmax[b] = max;
            var inverse = 1f / max;
            for (var i = start; i < end; i++)
            {
                var scaled = weight[i] * inverse;
                codes[i] = fp4 ? EncodeFp4(scaled) : EncodeNf4(scaled);
            }
            if (end == n && n % 2 == 1)
            {
                // The kernel quantizes a 0.0 past the end into the last byte's low nibble.
                var pad = 0f * inverse;
                codes[n] = fp4 ? EncodeFp4(pad) : EncodeNf4(pad);
            }
        }

        var packed = new byte[(n + 1) / 2];
        for (var k = 0; k < packed.Length; k++)
            packed[k] = (byte)((codes[2 * k] << 4) | codes[2 * k + 1]);

        if (!doubleQuant) return new Result(packed, absmax, null, null);

        var mean = offset(absmax);
        var centered = absmax.Select(a => a - mean).ToArray();
        var (q, nested) = QuantizeDynamic(centered, dynamicMap);
        return new Result(packed, absmax, q, nested);
    }

    /// <summary>8-bit blockwise (256) quantization with the signed dynamic map, the kernel's binary search.</summary>
    public static (byte[] Codes, float[] Absmax) QuantizeDynamic(float[] values, float[] map)
    {
        var blocks = (values.Length + 255) / 256;
        var absmax = new float[blocks];
        var codes = new byte[values.Length];
        for (var b = 0; b < blocks; b++)
        {
            var start = b * 256;
            var end = Math.Min(values.Length, start + 256);
            var max = 0f;
            for (var i = start; i < end; i++) max = Math.Max(max, Math.Abs(values[i]));
            absmax[b] = max;
            var inverse = 1f / max;
            for (var i = start; i < end; i++) codes[i] = (byte)NearestDynamic(map, values[i] * inverse);
        }
        return (codes, absmax);
    }

    /// <summary>
    /// The 8-bit code of <paramref name="x"/> (already divided by its block's absmax) as bitsandbytes' kernel
    /// <c>dQuantize&lt;0&gt;</c> (csrc/kernels.cu) chooses it, restated from the kernel's algorithm:
    /// <list type="number">
    /// <item>Seven probes halve the search range: the first at index 127, then ±64, ±32, …, ±1. A probe whose value
    /// <paramref name="x"/> is strictly above becomes the lower bound, any other the upper bound. The last step moves
    /// to an even index (the final pivot), which is never probed in the loop.</item>
    /// <item>The bounds start at indices 0 and 255 (so a value below every probe keeps index 0 as its lower bound).</item>
    /// <item>The code is one of three candidates: lower bound, final pivot, upper bound. Above the final pivot's value,
    /// <paramref name="x"/> takes the upper bound only when strictly above the float32 midpoint
    /// <c>(upper + pivot) × 0.5</c>; at or below it, <paramref name="x"/> takes the lower bound only when strictly
    /// below <c>(lower + pivot) × 0.5</c>. Anything else (a midpoint itself included) stays on the final pivot.</item>
    /// </list>
    /// A NaN compares false everywhere, so it walks down to index 0 and stays there.
    /// </summary>
    public static int NearestDynamic(float[] map, float x)
    {
        var (below, above) = (0, 255);
        var probe = 127;
        for (var halfWidth = 64; halfWidth >= 1; halfWidth /= 2)
        {
            var probeIsBelowX = x > map[probe];
            if (probeIsBelowX) below = probe;
            else above = probe;
            probe = probeIsBelowX ? probe + halfWidth : probe - halfWidth;
        }

        var finalPivot = probe;
        var pivotValue = map[finalPivot];
        if (x > pivotValue)
        {
            var upperMidpoint = (map[above] + pivotValue) * 0.5f;
            return x > upperMidpoint ? above : finalPivot;
        }
        var lowerMidpoint = (map[below] + pivotValue) * 0.5f;
        return x < lowerMidpoint ? below : finalPivot;
    }

    /// <summary>
    /// The signed dynamic map: for exponents e = −6…0, 2^(e+6) midpoints of an even split of [0.1, 1], scaled by
    /// 10^e, with both signs; plus 0 and 1; sorted. Computed in double here, so it may differ from bitsandbytes'
    /// float32 construction in the last bit; tests compare the two with that tolerance.
    /// </summary>
    public static float[] DynamicMap()
    {
        var values = new List<double> { 0.0, 1.0 };
        for (var i = 0; i < 7; i++)
        {
            var items = (1 << i) + 1;
            var scale = Math.Pow(10, i - 6);
            for (var j = 0; j < items - 1; j++)
            {
                var lo = 0.1 + 0.9 * j / (items - 1);
                var hi = 0.1 + 0.9 * (j + 1) / (items - 1);
                var mid = (lo + hi) / 2;
                values.Add(scale * mid);
                values.Add(-scale * mid);
            }
        }
        values.Sort();
        return values.Select(v => (float)v).ToArray();
    }

    /// <summary>Double-quantized absmax back to float32: map[code] × nested absmax + offset.</summary>
    public static float[] DequantizeAbsmax(byte[] codes, float[] nested, float offset, float[] map)
        => codes.Select((c, i) => map[c] * nested[i / 256] + offset).ToArray();

    /// <summary>code[nibble] × absmax[block], in float32, element by element.</summary>
    public static float[] Dequantize(byte[] packed, float[] absmax, int n, int blockSize, bool fp4)
    {
        var result = new float[n];
        for (var i = 0; i < n; i++)
        {
            var b = packed[i / 2];
            var nibble = i % 2 == 0 ? b >> 4 : b & 0x0F;
            var code = fp4 ? Fp4Value(nibble) : Nf4Code[nibble];
            result[i] = code * absmax[i / blockSize];
        }
        return result;
    }
}
