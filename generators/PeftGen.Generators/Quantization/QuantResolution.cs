using PeftGen.Generators.Model;

namespace PeftGen.Generators.Quantization;

/// <summary>Which <c>[Quantize4Bit]</c> applies to a projection: its own, else its class's, else the model class's.</summary>
internal static class QuantResolution
{
    /// <summary>What a class's own constructor applies: the member's setting, else its class's unless the member is [Trainable].</summary>
    public static QuantSpec? ClassQuantization(ClassSpec type, MemberSpec member)
        => member.Kind != LayerKind.Linear ? null : member.Quantization ?? (member.Trainable ? null : type.ClassQuantization);

    /// <summary>
    /// What a block's projection gets from the model class: its setting, for projections with none of their own that
    /// are not [Trainable]. The model's constructor applies it, by path.
    /// </summary>
    public static QuantSpec? ModelQuantization(ClassSpec root, ClassSpec type, MemberSpec member)
        => ReferenceEquals(type, root) || member.Kind != LayerKind.Linear || member.Trainable || ClassQuantization(type, member) is not null
            ? null
            : root.ClassQuantization;
}
