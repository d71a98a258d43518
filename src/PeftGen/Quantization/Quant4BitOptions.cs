using System;

namespace PeftGen;

/// <summary>How a projection's frozen base is stored in 4 bits (the runtime form of <see cref="Quantize4BitAttribute"/>).</summary>
/// <param name="QuantType">The code book.</param>
/// <param name="BlockSize">Values per absmax block: a power of two from 32 to 4096.</param>
/// <param name="DoubleQuant">Whether the absmax values are quantized again (8-bit, blocks of 256).</param>
/// <param name="ComputeDType">The dtype the weight is dequantized to for the matmul.</param>
public sealed record Quant4BitOptions(
    QuantType QuantType = QuantType.Nf4,
    int BlockSize = SettingRules.QuantBlockSize,
    bool DoubleQuant = SettingRules.QuantDoubleQuant,
    ComputeDType ComputeDType = ComputeDType.Auto)
{
    /// <summary>Throws when a setting is out of range (the generator rejects these at compile time too).</summary>
    public void Validate()
    {
        if (!SettingRules.IsValidQuantBlockSize(BlockSize))
            throw new ArgumentOutOfRangeException(nameof(BlockSize), BlockSize, "Block size must be a power of two from 32 to 4096.");
    }
}
