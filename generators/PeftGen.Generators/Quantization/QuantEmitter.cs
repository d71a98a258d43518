using System.Linq;
using PeftGen.Generators.Emit;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Quantization;

/// <summary>
/// Emits 4-bit storage of projection bases: in a class's constructor, what that class decides (the member's or its
/// class's setting); in the model's constructor, the model class's setting on the block projections the resolution
/// gave it.
/// </summary>
internal static class QuantEmitter
{
    public static string NewOptions(QuantSpec quant)
        => $"new global::PeftGen.Quant4BitOptions({RuntimeNames.QuantType(quant.QuantType)}, {Literals.Int(quant.BlockSize)}, {Literals.Bool(quant.DoubleQuant)}, {RuntimeNames.ComputeDType(quant.ComputeDType)})";

    public static void WriteQuantize(SourceWriter writer, ClassSpec type, MemberSpec member, string field)
    {
        if (QuantResolution.ClassQuantization(type, member) is { } quant) writer.WriteLine($"{field}.QuantizeBase({NewOptions(quant)});");
    }

    /// <summary>The model class's <c>[Quantize4Bit]</c> on block projections, found by path in <c>layers</c>.</summary>
    public static void WriteModelQuantization(SourceWriter writer, ModelSpec model)
    {
        if (model.Root.ClassQuantization is not { } quant) return;
        var paths = model.Layers.Where(layer => layer.QuantizationFromModel).Select(layer => Literals.String(layer.Path)).ToList();
        if (paths.Count == 0) return;
        writer.WriteLine($"foreach (var projection in {RuntimeNames.PeftLayers}.Projections(layers, {string.Join(", ", paths)})) projection.QuantizeBase({NewOptions(quant)});");
    }
}
