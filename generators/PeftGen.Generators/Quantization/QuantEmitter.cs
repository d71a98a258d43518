using System.Linq;
using PeftGen.Generators.Emit;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Quantization;

/// <summary>
/// Emits 4-bit storage of projection bases as a constructor argument, so a 4-bit projection is built in 4 bits and no
/// float weight of it ever exists: in a class's constructor, what that class decides (the member's or its class's
/// setting, or for the model class what its resolved layers hold); in a block, the model class's setting, which the
/// model hands down through every block constructor.
/// </summary>
internal static class QuantEmitter
{
    /// <summary>The block constructor's parameter that carries the model class's <c>[Quantize4Bit]</c>, or null.</summary>
    public const string ModelQuantizationParameter = "modelQuantization";

    public static string NewOptions(QuantSpec quant)
        => $"new global::PeftGen.Quant4BitOptions({RuntimeNames.QuantType(quant.QuantType)}, {Literals.Int(quant.BlockSize)}, {Literals.Bool(quant.DoubleQuant)}, {RuntimeNames.ComputeDType(quant.ComputeDType)})";

    /// <summary>
    /// The <c>LoraLinear</c> constructor's 4-bit argument (with its leading comma) for a projection, or "" for a float
    /// base. In the model class: the setting its resolved layer holds (the one the accounting counts). In a block: its
    /// own or its class's setting, else the model's as handed down, unless the member stays float.
    /// </summary>
    /// <param name="model">The resolved model when <paramref name="type"/> is the model class; null for a block.</param>
    public static string ProjectionArgument(ClassSpec type, MemberSpec member, ModelSpec? model)
    {
        if (model is not null)
            return model.Layers.First(layer => layer.Path == member.CheckpointName).Quantization is { } resolved ? ", " + NewOptions(resolved) : "";
        if (QuantResolution.ClassQuantization(type, member) is { } quant) return ", " + NewOptions(quant);
        return QuantResolution.TakesModelQuantization(type, member) ? ", " + ModelQuantizationParameter : "";
    }

    /// <summary>The block constructor's 4-bit argument (with its leading comma): what the model decides, passed down.</summary>
    public static string BlockArgument(ClassSpec type)
    {
        if (type.Root is null) return ", " + ModelQuantizationParameter;
        return type.ClassQuantization is { } quant ? ", " + NewOptions(quant) : "";
    }
}
