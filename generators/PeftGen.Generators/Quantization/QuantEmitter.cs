using System.Linq;
using PeftGen.Generators.Emit;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Quantization;

/// <summary>Emits 4-bit storage of projection bases: a member's own or its class's, and the model-wide one.</summary>
internal static class QuantEmitter
{
    /// <summary>The quantization a class's constructor applies to a projection: its own, else its class's unless [Trainable].</summary>
    public static QuantSpec? ClassQuantization(ClassSpec type, MemberSpec member)
        => member.Quantization ?? (member.Trainable ? null : type.ClassQuantization);

    public static string NewOptions(QuantSpec quant)
        => $"new global::PeftGen.Quant4BitOptions({RuntimeNames.QuantType(quant.QuantType)}, {Literals.Int(quant.BlockSize)}, {Literals.Bool(quant.DoubleQuant)}, {RuntimeNames.ComputeDType(quant.ComputeDType)})";

    public static void WriteQuantize(SourceWriter writer, ClassSpec type, MemberSpec member, string field)
    {
        if (ClassQuantization(type, member) is { } quant) writer.WriteLine($"{field}.QuantizeBase({NewOptions(quant)});");
    }

    /// <summary>A block's part of a model-wide <c>[Quantize4Bit]</c>: projections with no 4-bit setting of their own that are not [Trainable].</summary>
    public static void WriteCollectTargets(SourceWriter writer, ClassSpec type)
    {
        writer.WriteLine("/// <summary>Adds the projections that a model-wide [Quantize4Bit] reaches in this block.</summary>");
        writer.OpenBlock($"internal void CollectModelQuantizationTargets({RuntimeNames.ProjectionList} projections)");
        foreach (var member in type.Members)
        {
            switch (member.Kind)
            {
                case LayerKind.Linear when ClassQuantization(type, member) is null && !member.Trainable:
                    writer.WriteLine($"projections.Add({ClassEmitter.Field(member)});");
                    break;
                case LayerKind.Block:
                    writer.WriteLine($"{ClassEmitter.Field(member)}.CollectModelQuantizationTargets(projections);");
                    break;
                case LayerKind.Stack:
                    writer.WriteLine($"foreach (var block in {ClassEmitter.Field(member)}) block.CollectModelQuantizationTargets(projections);");
                    break;
            }
        }
        writer.CloseBlock();
    }

    /// <summary>The model class's own [Quantize4Bit], applied to every block projection it reaches.</summary>
    public static void WriteModelQuantization(SourceWriter writer, ClassSpec root)
    {
        if (root.ClassQuantization is not { } quant || !root.Members.Any(m => m.Kind is LayerKind.Block or LayerKind.Stack)) return;
        writer.OpenBlock("");
        writer.WriteLine($"var projections = new {RuntimeNames.ProjectionList}();");
        foreach (var member in root.Members)
        {
            if (member.Kind == LayerKind.Block)
                writer.WriteLine($"{ClassEmitter.Field(member)}.CollectModelQuantizationTargets(projections);");
            else if (member.Kind == LayerKind.Stack)
                writer.WriteLine($"foreach (var block in {ClassEmitter.Field(member)}) block.CollectModelQuantizationTargets(projections);");
        }
        writer.WriteLine($"foreach (var projection in projections) projection.QuantizeBase({NewOptions(quant)});");
        writer.CloseBlock();
    }
}
