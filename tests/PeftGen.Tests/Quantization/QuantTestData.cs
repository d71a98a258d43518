using System;
using System.Linq;
using System.Security.Cryptography;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Quantization;

internal static class QuantTestData
{
    /// <summary>Standard normal values (Box–Muller) from a fixed seed, scaled.</summary>
    public static float[] Normal(int count, int seed, float scale = 1f)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (var i = 0; i < count; i++)
        {
            var u1 = 1.0 - random.NextDouble();
            var u2 = random.NextDouble();
            values[i] = (float)(scale * Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return values;
    }

    public static byte[] Bytes(Tensor t) => t.cpu().contiguous().data<byte>().ToArray();

    public static float[] Floats(Tensor t) => t.cpu().to(ScalarType.Float32).contiguous().data<float>().ToArray();

    /// <summary>SHA-256 of every byte of the 4-bit state.</summary>
    public static string Hash(Nf4Tensor t)
    {
        using var sha = SHA256.Create();
        var parts = new[] { Bytes(t.Packed), t.QuantizedAbsmax is null ? [] : Bytes(t.QuantizedAbsmax),
            t.NestedAbsmax is null ? [] : Floats(t.NestedAbsmax).SelectMany(BitConverter.GetBytes).ToArray(),
            t.Absmax is null ? [] : Floats(t.Absmax).SelectMany(BitConverter.GetBytes).ToArray(),
            BitConverter.GetBytes(t.Offset) };
        return Convert.ToHexString(sha.ComputeHash(parts.SelectMany(p => p).ToArray()));
    }

    public static bool BitEqual(float a, float b) => BitConverter.SingleToInt32Bits(a) == BitConverter.SingleToInt32Bits(b);

    /// <summary>Fails on the first value whose bits differ, naming its index and both values.</summary>
    public static void AssertBitEqual(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
            if (!BitEqual(expected[i], actual[i]))
                Assert.Fail($"[{i}]: expected {expected[i]:R}, got {actual[i]:R}");
    }
}
