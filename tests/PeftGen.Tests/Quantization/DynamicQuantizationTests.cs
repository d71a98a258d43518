using System;
using System.Collections.Generic;
using System.Linq;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PeftGen.Tests.Quantization;

/// <summary>
/// The 8-bit codes of double quantization (absmax − offset in the signed dynamic map) against bitsandbytes' kernel
/// <c>dQuantize&lt;0&gt;</c>: hand-worked cases for the reference, then our torch implementation on the same values
/// and on a whole weight.
/// </summary>
public sealed class DynamicQuantizationTests(ITestOutputHelper output)
{
    private static readonly float[] Map = CodeBooks.DynamicMap;

    /// <summary>Where a probe sits around the final pivot <c>p</c> (even) of the binary search.</summary>
    public enum Probe
    {
        OnPivot,
        OnUpperNeighbour,
        AtUpperMidpoint,
        JustAboveUpperMidpoint,
        JustBelowUpperMidpoint,
        AtLowerMidpoint,
        JustBelowLowerMidpoint,
        JustAboveLowerMidpoint,
    }

    [Fact]
    public void The_map_has_zero_at_the_first_probe_and_one_at_the_top()
    {
        // The hand-worked cases below rely on this shape: 127 negative values, 0 at index 127, 128 positive up to 1.
        Assert.Equal(0f, Map[127]);
        Assert.Equal(1f, Map[255]);
        Assert.True(Map[126] < 0 && Map[128] > 0);
        Assert.True(Map.Zip(Map.Skip(1)).All(p => p.First < p.Second), "strictly ascending");
    }

    [Theory]
    // x = 0: the first probe (index 127, value 0) is not below it, then every probe is: bounds 125 and 127, final
    // pivot 126 (about -5.5e-7). 0 is above the pivot and above its midpoint with 127, so it takes 127.
    [InlineData(0f, 127)]
    // x = 1: above every probe, final pivot 254; above the midpoint of map[254] and map[255] = 1, so 255.
    [InlineData(1f, 255)]
    // x = -1: below every probe, final pivot 0 with index 0 as its own lower bound, so 0.
    [InlineData(-1f, 0)]
    // NaN compares false: down to index 0.
    [InlineData(float.NaN, 0)]
    public void Reference_on_hand_worked_values(float x, int expected)
        => Assert.Equal(expected, BitsAndBytesReference.NearestDynamic(Map, x));

    [Theory]
    [InlineData(128)]
    [InlineData(200)]
    [InlineData(254)]
    [InlineData(2)]
    [InlineData(126)]
    public void Values_on_an_even_index_land_on_the_final_pivot(int index)
    {
        // The search never probes an even index, so such a value ends with bounds index±1 around it and stays on it:
        // a choice between the bounds alone cannot return it at all.
        Assert.Equal(0, index % 2);
        Assert.Equal(index, BitsAndBytesReference.NearestDynamic(Map, Map[index]));
    }

    [Fact]
    public void Reference_decides_at_the_float32_midpoints_around_every_final_pivot()
    {
        foreach (var (x, expected, label) in HandWorkedProbes())
            Assert.True(expected == BitsAndBytesReference.NearestDynamic(Map, x), $"{label}: x = {x:R} expected {expected}, got {BitsAndBytesReference.NearestDynamic(Map, x)}");
    }

    [Fact]
    public void Implementation_decides_as_the_kernel_on_the_hand_worked_probes()
    {
        var probes = HandWorkedProbes().ToList();
        var codes = QuantizeWithUnitAbsmax(probes.Select(p => p.X).ToList());
        var wrong = probes.Select((p, i) => (p, Got: (int)codes[i])).Where(c => c.Got != c.p.Expected).ToList();
        Assert.True(wrong.Count == 0,
            $"{wrong.Count} of {probes.Count} probes differ from the kernel, e.g. "
            + string.Join("; ", wrong.Take(5).Select(w => $"{w.p.Label} expected {w.p.Expected}, got {w.Got}")));
    }

    [Fact]
    public void Implementation_gives_code_zero_for_a_block_without_spread()
    {
        // Equal absmax values centre to zeros; their block absmax is 0 and 0 × (1/0) is NaN, which the kernel codes 0.
        using var zerosBlock = zeros(300);
        var (codes, absmax) = Nf4Tensor.QuantizeDynamic(zerosBlock, CPU);
        using (codes)
        using (absmax)
        {
            Assert.All(QuantTestData.Bytes(codes), c => Assert.Equal(0, c));
            Assert.Equal(new[] { 0f, 0f }, QuantTestData.Floats(absmax));
        }
    }

    [Fact]
    public void Absmax_codes_of_a_normal_weight_match_the_kernel()
    {
        // 256 × 512 N(0, 1), blocks of 64: 2,048 absmax values, 8 nested blocks of 256.
        var values = QuantTestData.Normal(256 * 512, seed: 15);
        using var weight = tensor(values, new long[] { 256, 512 });
        using var q = Nf4Tensor.Quantize(weight, new Quant4BitOptions());
        var reference = BitsAndBytesReference.Quantize(values, 64, fp4: false, doubleQuant: true, _ => q.Offset, CodeBooks.DynamicMap);

        var ours = QuantTestData.Bytes(q.QuantizedAbsmax!);
        var differing = ours.Zip(reference.QuantizedAbsmax!).Count(p => p.First != p.Second);
        var evenShare = ours.Count(c => c % 2 == 0) / (double)ours.Length;
        output.WriteLine($"{differing} of {ours.Length} absmax codes differ from the kernel's; {evenShare:P1} of ours are even");
        Assert.True(differing == 0, $"{differing} of {ours.Length} absmax codes differ from the kernel's");
        // Every other code is an even (final-pivot) one: a search that only returns its bounds writes odd codes only.
        Assert.InRange(evenShare, 0.3, 0.7);
    }

    /// <summary>
    /// For every final pivot p (the even indices), values placed by hand around it: the lower bound is p − 1 (index 0
    /// itself for p = 0), the upper bound p + 1, and the midpoints are float32 <c>(bound + map[p]) × 0.5</c>. A value at
    /// a midpoint stays on p; one ulp beyond it takes the bound.
    /// </summary>
    private static IEnumerable<(float X, int Expected, string Label)> HandWorkedProbes()
    {
        for (var p = 0; p <= 254; p += 2)
        {
            var lower = p == 0 ? 0 : p - 1;
            var upper = p + 1;
            var upperMidpoint = (Map[upper] + Map[p]) * 0.5f;
            var lowerMidpoint = (Map[lower] + Map[p]) * 0.5f;
            foreach (var probe in Enum.GetValues<Probe>())
            {
                var (x, expected) = probe switch
                {
                    Probe.OnPivot => (Map[p], p),
                    Probe.OnUpperNeighbour => (Map[upper], upper),
                    Probe.AtUpperMidpoint => (upperMidpoint, p),
                    Probe.JustAboveUpperMidpoint => (MathF.BitIncrement(upperMidpoint), upper),
                    Probe.JustBelowUpperMidpoint => (MathF.BitDecrement(upperMidpoint), p),
                    Probe.AtLowerMidpoint => (lowerMidpoint, p),
                    Probe.JustBelowLowerMidpoint => (MathF.BitDecrement(lowerMidpoint), lower),
                    Probe.JustAboveLowerMidpoint => (MathF.BitIncrement(lowerMidpoint), p),
                    _ => throw new ArgumentOutOfRangeException(nameof(probe)),
                };
                yield return (x, expected, $"pivot {p} {probe}");
            }
        }
    }

    /// <summary>Codes of values in [-1, 1] with every nested block's absmax exactly 1 (a 1.0 leads each block).</summary>
    private static byte[] QuantizeWithUnitAbsmax(IReadOnlyList<float> values)
    {
        const int perBlock = Nf4Tensor.NestedBlockSize - 1;
        var laidOut = new List<float>();
        var positions = new List<int>();
        for (var i = 0; i < values.Count; i++)
        {
            if (i % perBlock == 0) laidOut.Add(1f);
            positions.Add(laidOut.Count);
            laidOut.Add(values[i]);
        }
        using var input = tensor(laidOut.ToArray());
        var (codes, absmax) = Nf4Tensor.QuantizeDynamic(input, CPU);
        using (codes)
        using (absmax)
        {
            Assert.All(QuantTestData.Floats(absmax), a => Assert.Equal(1f, a));
            var all = QuantTestData.Bytes(codes);
            return positions.Select(i => all[i]).ToArray();
        }
    }
}
