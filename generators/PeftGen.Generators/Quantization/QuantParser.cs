using System.Collections.Generic;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Quantization;

/// <summary>Reads a <c>[Quantize4Bit]</c> attribute and checks its block size.</summary>
internal static class QuantParser
{
    public const string AttributeName = "PeftGen.Quantize4BitAttribute";

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
    /// 4-bit base cannot be trained directly).
    /// </summary>
    /// <param name="classTrainable">The member's class is a [Trainable] block.</param>
    /// <returns>Whether it is placed correctly (or absent).</returns>
    public static bool CheckPlacement(AttributeReader? attribute, bool onProjection, AttributeReader? trainable, bool classTrainable, string member, List<DiagnosticInfo> diagnostics)
    {
        if (attribute is null) return true;
        if (!onProjection)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.QuantizeNonProjection, attribute.Site, member));
            return false;
        }
        if (trainable is null && !classTrainable) return true;
        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.QuantizedTrainable, trainable?.Site ?? attribute.Site, member));
        return false;
    }
}
