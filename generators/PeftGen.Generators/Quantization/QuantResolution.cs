using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Quantization;

/// <summary>
/// Which <c>[Quantize4Bit]</c> applies to a projection (its own, else its class's, else the model class's), what stays
/// in full precision, and the 4-bit rules that need the whole model: full fine-tuning cannot train a 4-bit base
/// (PEFT203), a 4-bit model where nothing trains is missing its LoRA (PEFT204), and a class-level setting that
/// reaches no projection does nothing (PEFT207).
/// </summary>
/// <remarks>
/// A class-level (or model-level) setting skips <c>[Trainable]</c> and <c>[NoQuantize]</c> members and the model's
/// output head: the model class's own projection whose checkpoint name is <c>lm_head</c> (or its abstract head class's)
/// (<see cref="SettingRules.OutputHeadName"/>), which transformers also keeps unquantized by default. A member's own
/// <c>[Quantize4Bit]</c> always applies. <see cref="ModelBuilder"/> resolves each layer with
/// <see cref="LayerQuantization"/> once; the accounting and the model's constructor read that result, and a block's
/// constructor applies the same rules through <see cref="ClassQuantization"/> and <see cref="TakesModelQuantization"/>.
/// </remarks>
internal static class QuantResolution
{
    /// <summary>
    /// The model's output head: a projection with checkpoint name <c>lm_head</c> declared in the model class itself or
    /// in an abstract block, which only a model class can derive from (an architecture's head class such as
    /// <c>LlamaForCausalLM</c>), so its members are the model's own.
    /// </summary>
    public static bool IsOutputHead(ClassSpec type, MemberSpec member)
        => (type.Root is not null || type.IsHeadClass) && member.Kind == LayerKind.Linear && member.CheckpointName == SettingRules.OutputHeadName;

    /// <summary>Whether class-level and model-level settings skip this member: it trains, opts out, or is the output head.</summary>
    public static bool StaysFloatUnderClassSetting(ClassSpec type, MemberSpec member)
        => member.Trainable || member.NoQuantize || IsOutputHead(type, member);

    /// <summary>What a class's own constructor applies: the member's setting, else its class's unless the member stays float.</summary>
    public static QuantSpec? ClassQuantization(ClassSpec type, MemberSpec member)
        => member.Kind != LayerKind.Linear ? null : member.Quantization ?? (StaysFloatUnderClassSetting(type, member) ? null : type.ClassQuantization);

    /// <summary>
    /// Whether a block's projection takes the model class's setting: neither it nor its class has one, and it does not
    /// stay float. The block's constructor receives that setting from the model and builds such projections with it.
    /// </summary>
    public static bool TakesModelQuantization(ClassSpec type, MemberSpec member)
        => member.Kind == LayerKind.Linear && member.Quantization is null && type.ClassQuantization is null && !StaysFloatUnderClassSetting(type, member);

    /// <summary>What a block's projection gets from the model class (see <see cref="TakesModelQuantization"/>).</summary>
    public static QuantSpec? ModelQuantization(ClassSpec root, ClassSpec type, MemberSpec member)
        => !ReferenceEquals(type, root) && TakesModelQuantization(type, member) ? root.ClassQuantization : null;

    /// <summary>The 4-bit setting a layer of the model is built with, or null when it stays in full precision.</summary>
    public static QuantSpec? LayerQuantization(ClassSpec root, ClassSpec type, MemberSpec member)
        => ClassQuantization(type, member) ?? ModelQuantization(root, type, member);

    /// <summary>
    /// A block class's [Quantize4Bit] that no member of the class takes (each stays float or has its own setting, or the
    /// class has no projection) is PEFT207. The class alone decides, so this runs at parse, on its spec.
    /// </summary>
    public static void CheckBlock(ClassSpec type, List<DiagnosticInfo> diagnostics)
    {
        if (type.ClassQuantization is not { } quantization || diagnostics.Any(d => DiagnosticDescriptors.ById(d.Id).DefaultSeverity == DiagnosticSeverity.Error)) return;
        if (type.Members.Any(m => ReferenceEquals(ClassQuantization(type, m), quantization))) return;
        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.QuantizationReachesNothing, quantization.Site, type.Type.Name));
    }

    /// <summary>The model class's [Quantize4Bit] that no layer of the (completely resolved) model takes is PEFT207.</summary>
    public static void CheckModel(ClassSpec root, IEnumerable<ResolvedLayer> layers, List<DiagnosticInfo> diagnostics)
    {
        if (root.ClassQuantization is not { } quantization || layers.Any(l => ReferenceEquals(l.Quantization, quantization))) return;
        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.QuantizationReachesNothing, quantization.Site, root.Type.Name));
    }

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
