using System;

namespace PeftGen;

/// <summary>The settings of one LoRA adapter on one projection (PEFT's <c>LoraConfig</c> for a single module).</summary>
/// <param name="Rank">Rank r; A is <c>r × In</c>, B is <c>Out × r</c>.</param>
/// <param name="Alpha">Scaling numerator.</param>
/// <param name="Dropout">Dropout probability on the LoRA input, training mode only.</param>
/// <param name="UseRsLora">Scale by <c>Alpha / √r</c> instead of <c>Alpha / r</c>.</param>
public sealed record LoraConfig(int Rank, double Alpha, double Dropout = SettingRules.LoraDropout, bool UseRsLora = false)
{
    /// <summary>The factor applied to <c>B·A</c>.</summary>
    public double Scale => UseRsLora ? Alpha / Math.Sqrt(Rank) : Alpha / Rank;

    /// <summary>Throws when a setting is out of range (the generator rejects these at compile time too).</summary>
    public void Validate(long inFeatures, long outFeatures)
    {
        if (!SettingRules.IsValidRank(Rank)) throw new ArgumentOutOfRangeException(nameof(Rank), Rank, "LoRA rank must be positive.");
        if (Rank > Math.Min(inFeatures, outFeatures))
            throw new ArgumentOutOfRangeException(nameof(Rank), Rank, $"LoRA rank must not exceed min(In, Out) = {Math.Min(inFeatures, outFeatures)}.");
        if (!SettingRules.IsValidAlpha(Alpha)) throw new ArgumentOutOfRangeException(nameof(Alpha), Alpha, "LoRA alpha must be positive and finite.");
        if (!SettingRules.IsValidDropout(Dropout)) throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, "LoRA dropout must be in [0, 1).");
    }
}
