namespace PeftGen.Generators.Quantization;

/// <summary>One <c>[Quantize4Bit]</c> attribute (enum values as their integers, as the runtime's enums define them).</summary>
internal sealed record QuantSpec(int QuantType, int BlockSize, bool DoubleQuant, int ComputeDType)
{
    /// <summary>bitsandbytes' rule, shared with the runtime's <c>Quant4BitOptions.Validate</c>.</summary>
    public static bool IsValidBlockSize(int blockSize) => blockSize >= 32 && blockSize <= 4096 && (blockSize & (blockSize - 1)) == 0;

    /// <summary>
    /// Bytes of a 4-bit weight of <paramref name="count"/> values: packed codes, plus absmax per block in float32, or
    /// with double quantization one byte per block, a float32 absmax per 256 blocks and the float32 offset.
    /// </summary>
    public long StorageBytes(long count)
    {
        var blocks = (count + BlockSize - 1) / BlockSize;
        var packed = (count + 1) / 2;
        return DoubleQuant ? packed + blocks + (4 * ((blocks + 255) / 256)) + 4 : packed + (4 * blocks);
    }
}
