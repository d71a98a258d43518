using System;
using System.Collections.Concurrent;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen;

/// <summary>
/// bitsandbytes' code books and the decision thresholds of its CUDA kernels, as float32 values.
/// </summary>
/// <remarks>
/// The thresholds are the ones bitsandbytes hard-codes in <c>dQuantizeNF4</c> / <c>dQuantizeFP4</c> (midpoints of
/// neighbouring codes, compared with strict <c>&gt;</c>): a value exactly on a threshold takes the lower code.
/// Device copies are cached per device and shared by every <see cref="Nf4Tensor"/>: they are constants.
/// </remarks>
public static class CodeBooks
{
    /// <summary>NF4 code values in code order (index = 4-bit code).</summary>
    public static readonly float[] Nf4 =
    [
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
        -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
        0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
        0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
    ];

    /// <summary>
    /// FP4 (E2M1) code values in bitsandbytes' code order: bit 3 is the sign, the low three bits index the
    /// magnitudes {0, 0.0625, 8, 12, 4, 6, 2, 3} / 12.
    /// </summary>
    public static readonly float[] Fp4 = BuildFp4();

    /// <summary>NF4 decision thresholds, ascending: the code of x is the number of thresholds that x exceeds.</summary>
    internal static readonly float[] Nf4Thresholds =
    [
        -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
        -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
        0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
        0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f,
    ];

    /// <summary>FP4 thresholds on |x|, ascending; the rank they give maps to a magnitude code by <see cref="Fp4RankToCode"/>.</summary>
    internal static readonly float[] Fp4Thresholds =
        [0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f, 0.4166667f, 0.583333f, 0.8333333f];

    /// <summary>Magnitude rank (0 = smallest) to FP4 code without sign.</summary>
    internal static readonly int[] Fp4RankToCode = [0, 1, 6, 7, 4, 5, 2, 3];

    private static readonly ConcurrentDictionary<(string Device, string Name), Tensor> DeviceCache = new();

    /// <summary>The 16 code values of a code book.</summary>
    public static float[] Values(QuantType quantType) => quantType switch
    {
        QuantType.Nf4 => Nf4,
        QuantType.Fp4 => Fp4,
        _ => throw new ArgumentOutOfRangeException(nameof(quantType), quantType, "Unknown 4-bit code book."),
    };

    /// <summary>bitsandbytes' name of a code book (<c>nf4</c> / <c>fp4</c>).</summary>
    public static string Name(QuantType quantType) => quantType switch
    {
        QuantType.Nf4 => "nf4",
        QuantType.Fp4 => "fp4",
        _ => throw new ArgumentOutOfRangeException(nameof(quantType), quantType, "Unknown 4-bit code book."),
    };

    /// <summary>
    /// bitsandbytes' signed 8-bit dynamic map (<c>create_dynamic_map(signed=True)</c>): 256 ascending float32 values,
    /// computed with the same float32 torch operations bitsandbytes uses (linspace, midpoints, scaling by 10^e).
    /// </summary>
    public static float[] DynamicMap { get; } = BuildDynamicMap();

    internal static Tensor Code(QuantType quantType, Device device)
        => Cached(device, "code." + Name(quantType), () => tensor(Values(quantType), device: device));

    internal static Tensor DynamicCode(Device device)
        => Cached(device, "dynamic", () => tensor(DynamicMap, device: device));

    /// <summary>byte → (code[high nibble], code[low nibble]): one gather dequantizes two values.</summary>
    internal static Tensor PairTable(QuantType quantType, Device device)
        => Cached(device, "pairs." + Name(quantType), () =>
        {
            var code = Values(quantType);
            var pairs = new float[512];
            for (var b = 0; b < 256; b++)
            {
                pairs[2 * b] = code[b >> 4];
                pairs[2 * b + 1] = code[b & 0x0F];
            }
            return tensor(pairs, device: device).view(256, 2);
        });

    internal static Tensor Thresholds(QuantType quantType, Device device)
        => Cached(device, "thresholds." + Name(quantType), () =>
            tensor(quantType == QuantType.Nf4 ? Nf4Thresholds : Fp4Thresholds, device: device));

    internal static Tensor Fp4Ranks(Device device)
        => Cached(device, "fp4ranks", () => tensor(Fp4RankToCode, device: device));

    private static Tensor Cached(Device device, string name, Func<Tensor> create)
        => DeviceCache.GetOrAdd((device.ToString(), name), _ =>
        {
            using var scope = NewDisposeScope();
            return create().DetachFromDisposeScope();
        });

    private static float[] BuildFp4()
    {
        // Same arithmetic as bitsandbytes' get_4bit_type("fp4"): float32 division by the largest magnitude.
        float[] raw = [0f, 0.0625f, 8f, 12f, 4f, 6f, 2f, 3f, -0f, -0.0625f, -8f, -12f, -4f, -6f, -2f, -3f];
        return raw.Select(v => v / 12f).ToArray();
    }

    private static float[] BuildDynamicMap()
    {
        using var scope = NewDisposeScope();
        const int maxExponentBits = 7;
        var values = new System.Collections.Generic.List<double>();
        for (var i = 0; i < maxExponentBits; i++)
        {
            var items = (1 << i) + 1;
            var boundaries = linspace(0.1, 1.0, items, dtype: ScalarType.Float32);
            var scale = Math.Pow(10, -(maxExponentBits - 1) + i);
            using Scalar two = 2.0.ToScalar(), positive = scale.ToScalar(), negative = (-scale).ToScalar();
            var means = boundaries.narrow(0, 0, items - 1).add(boundaries.narrow(0, 1, items - 1)).div(two);
            values.AddRange(means.mul(positive).data<float>().ToArray().Select(v => (double)v));
            values.AddRange(means.mul(negative).data<float>().ToArray().Select(v => (double)v));
        }
        values.Add(0.0);
        values.Add(1.0);
        if (values.Count != 256) throw new InvalidOperationException($"Dynamic map has {values.Count} entries, expected 256.");
        values.Sort();
        return values.Select(v => (float)v).ToArray();
    }
}
