using System.Collections.Generic;
using System.Linq;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Quantization;

/// <summary>
/// Which <c>[Quantize4Bit]</c> applies to a projection (its own, else its class's, else the model class's), and the
/// 4-bit rules that need the whole model: full fine-tuning cannot train a 4-bit base (PEFT203), and a 4-bit model where
/// nothing trains is missing its LoRA (PEFT204).
/// </summary>
internal static class QuantResolution
{
    /// <summary>What a class's own constructor applies: the member's setting, else its class's unless the member is [Trainable].</summary>
    public static QuantSpec? ClassQuantization(ClassSpec type, MemberSpec member)
        => member.Kind != LayerKind.Linear ? null : member.Quantization ?? (member.Trainable ? null : type.ClassQuantization);

    /// <summary>
    /// Whether a block's projection takes the model class's setting: it has none of its own and is not [Trainable].
    /// The block's constructor receives that setting from the model and builds such projections with it.
    /// </summary>
    public static bool TakesModelQuantization(ClassSpec type, MemberSpec member)
        => member.Kind == LayerKind.Linear && !member.Trainable && ClassQuantization(type, member) is null;

    /// <summary>What a block's projection gets from the model class (see <see cref="TakesModelQuantization"/>).</summary>
    public static QuantSpec? ModelQuantization(ClassSpec root, ClassSpec type, MemberSpec member)
        => !ReferenceEquals(type, root) && TakesModelQuantization(type, member) ? root.ClassQuantization : null;

    /// <summary>A class-level [Trainable] (full fine-tuning) meets every 4-bit projection of the model.</summary>
    public static void CheckFullFineTuning(ClassSpec root, IEnumerable<ResolvedLayer> layers, List<DiagnosticInfo> diagnostics)
    {
        if (!root.Root!.TrainAll) return;
        foreach (var layer in layers.Where(l => l.Quantization is not null))
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.QuantizedTrainable, root.Site, layer.Path));
    }

    /// <summary>
    /// When nothing trains: reports PEFT204 at the first 4-bit setting that applies, if any (a 4-bit base cannot train,
    /// so this is most likely a QLoRA setup missing its [Lora]). Returns whether it reported.
    /// </summary>
    public static bool ReportQuantizedWithoutLora(ClassSpec root, IEnumerable<ResolvedLayer> layers, List<DiagnosticInfo> diagnostics)
    {
        if (layers.Select(l => l.Quantization).FirstOrDefault(q => q is not null) is not { } quantization) return false;
        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.QuantizedWithoutLora, quantization.Site, root.Type.Name));
        return true;
    }
}
