using System.Collections.Generic;
using System.Linq;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.SixteenBit;

/// <summary>
/// Which values a 16-bit model stores in 16 bits, written once for the accounting, the emitters and the checks: the
/// weight and bias of every projection whose base does not train (a 4-bit projection's bias too; its weight stays
/// 4-bit). Trainable bases, embeddings, norms, adapters and soft prompts stay float32, as the runtime's
/// <c>ConvertFrozenBases</c> leaves them.
/// </summary>
internal static class SixteenBitResolution
{
    public const string ArgumentName = "BaseDType";
    private const string Float32 = "Float32";

    /// <summary>The model attribute's <c>BaseDType</c>; null for float32.</summary>
    public static SixteenBitSpec? Parse(AttributeReader model)
    {
        var dtype = model.NamedEnum(ArgumentName, Float32);
        return dtype == Float32 ? null : new SixteenBitSpec(dtype, model.NamedSite(ArgumentName));
    }

    /// <summary>Whether a layer's float values are stored in the model's 16-bit dtype: a projection whose base does not train.</summary>
    public static bool Applies(LayerKind kind, bool trainable) => kind == LayerKind.Linear && !trainable;

    /// <summary>
    /// A 16-bit base cannot train, so full fine-tuning with a 16-bit dtype is PEFT401; a 16-bit dtype that no frozen
    /// float value takes (every projection trains or is 4-bit without a bias) does nothing, PEFT402.
    /// </summary>
    public static void CheckModel(ClassSpec root, IEnumerable<ResolvedLayer> layers, List<DiagnosticInfo> diagnostics)
    {
        if (root.Root?.BaseDType is not { } sixteenBit) return;
        if (root.Root.TrainAll)
        {
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SixteenBitFullFineTuning, sixteenBit.Site, root.Type.Name, sixteenBit.DType));
            return;
        }
        if (!layers.Any(l => Applies(l.Kind, l.Trainable) && l.QuantizedValues < l.BaseParameters))
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SixteenBitReachesNothing, sixteenBit.Site, root.Type.Name, sixteenBit.DType));
    }
}
