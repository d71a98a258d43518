using PeftGen.Generators.Diagnostics;

namespace PeftGen.Generators.Quantization;

/// <summary>One <c>[Quantize4Bit]</c> attribute (enums by member name, as the runtime's enums define them).</summary>
/// <param name="Site">The attribute.</param>
internal sealed record QuantSpec(string QuantType, int BlockSize, bool DoubleQuant, string ComputeDType, SourceSite? Site)
{
    /// <summary>
    /// Bytes of a 4-bit weight of <paramref name="count"/> values: packed codes, plus absmax per block in float32, or
    /// with double quantization one byte per block, a float32 absmax per 256 blocks and the float32 offset.
    /// </summary>
    public static long StorageBytes(long count, int blockSize, bool doubleQuant)
    {
        checked
        {
            var blocks = (count + blockSize - 1) / blockSize;
            var packed = (count + 1) / 2;
            return doubleQuant ? packed + blocks + (4 * ((blocks + 255) / 256)) + 4 : packed + (4 * blocks);
        }
    }
}
