using System.Collections.Generic;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Quantization;

/// <summary>Reads a <c>[Quantize4Bit]</c> attribute and checks its block size, and where it and <c>[NoQuantize]</c> are placed.</summary>
internal static class QuantParser
{
    public const string AttributeName = "PeftGen.Quantize4BitAttribute";
    public const string NoQuantizeAttributeName = "PeftGen.NoQuantizeAttribute";

    public static QuantSpec? Parse(AttributeReader? attribute, List<DiagnosticInfo> diagnostics)
    {
        if (attribute is null) return null;
        var spec = new QuantSpec(
            attribute.NamedEnum("QuantType", SettingRules.DefaultQuantType),
            attribute.Named("BlockSize", SettingRules.QuantBlockSize),
            attribute.Named("DoubleQuant", SettingRules.QuantDoubleQuant),
            attribute.NamedEnum("ComputeDType", SettingRules.DefaultComputeDType),
            attribute.Site);
        if (!SettingRules.IsValidQuantBlockSize(spec.BlockSize))
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.BadBlockSize, attribute.NamedSite("BlockSize"), spec.BlockSize));
            return null;
        }
        return spec;
    }

    /// <summary>
    /// [Quantize4Bit] on a member belongs on a [Linear] projection (PEFT202) whose base does not train (PEFT203: a
    /// 4-bit base cannot be trained directly); [NoQuantize] belongs on a [Linear] projection (PEFT205) that has no
    /// [Quantize4Bit] of its own (PEFT206: the two contradict each other).
    /// </summary>
    /// <param name="classTrainable">The member's class is a [Trainable] block.</param>
    /// <returns>Whether they are placed correctly (or absent).</returns>
    public static bool CheckPlacement(AttributeReader? attribute, AttributeReader? noQuantize, bool onProjection, AttributeReader? trainable, bool classTrainable, string member, List<DiagnosticInfo> diagnostics)
    {
        if (!onProjection)
        {
            if (attribute is not null) diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.QuantizeNonProjection, attribute.Site, member));
            if (noQuantize is not null) diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NoQuantizeNonProjection, noQuantize.Site, member));
            return attribute is null && noQuantize is null;
        }
        if (attribute is null) return true;
        var placed = true;
        if (noQuantize is not null)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NoQuantizeWithQuantize, noQuantize.Site, member));
            placed = false;
        }
        if (trainable is not null || classTrainable)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.QuantizedTrainable, trainable?.Site ?? attribute.Site, member));
            placed = false;
        }
        return placed;
    }
}
