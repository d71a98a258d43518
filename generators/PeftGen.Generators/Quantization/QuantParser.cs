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
}
