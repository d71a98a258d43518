using PeftGen.Generators.Model;

namespace PeftGen.Generators.SixteenBit;

/// <summary>
/// Emits 16-bit storage as a constructor argument, so a frozen projection is built in 16 bits and no float32 copy of
/// its base exists: the model class passes its <c>BaseDType</c> to its own frozen projections and hands it to its
/// blocks, whose constructors take it as <c>modelBaseDType</c> and pass it on.
/// </summary>
internal static class SixteenBitEmitter
{
    /// <summary>The block constructor's parameter that carries the model's <c>BaseDType</c>.</summary>
    public const string ModelBaseDTypeParameter = "modelBaseDType";

    private const string BaseDTypeType = "global::PeftGen.BaseDType";

    /// <summary>The block constructor's parameter declaration, with its leading comma.</summary>
    public static string BlockParameter => $", {BaseDTypeType} {ModelBaseDTypeParameter} = {BaseDTypeType}.Float32";

    /// <summary>
    /// The <c>LoraLinear</c> constructor's trailing arguments after <c>hasBias</c>: <paramref name="quantization"/> (the
    /// 4-bit argument with its leading comma, or "") followed, for a frozen projection, by the base dtype. In the model
    /// class the dtype is the model's own (nothing for float32); in a block it is the one handed down.
    /// </summary>
    /// <param name="model">The resolved model when <paramref name="type"/> is the model class; null for a block.</param>
    public static string ProjectionArguments(string quantization, ClassSpec type, MemberSpec member, ModelSpec? model)
    {
        string dtype;
        if (model is not null)
        {
            if (type.Root?.BaseDType is not { } sixteenBit || !SixteenBitResolution.Applies(member.Kind, member.Trainable || type.Root.TrainAll)) return quantization;
            dtype = BaseDTypeType + "." + sixteenBit.DType;
        }
        else
        {
            if (!SixteenBitResolution.Applies(member.Kind, member.Trainable)) return quantization;
            dtype = ModelBaseDTypeParameter;
        }
        return (quantization.Length == 0 ? ", null" : quantization) + ", " + dtype;
    }

    /// <summary>The block constructor's dtype argument (with its leading comma): the model's, or the one handed down.</summary>
    public static string BlockArgument(ClassSpec type)
    {
        if (type.Root is null) return $", {ModelBaseDTypeParameter}: {ModelBaseDTypeParameter}";
        return type.Root.BaseDType is { } sixteenBit ? $", {ModelBaseDTypeParameter}: {BaseDTypeType}.{sixteenBit.DType}" : "";
    }
}
