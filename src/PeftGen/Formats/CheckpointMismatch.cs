using System;
using System.Collections.Generic;
using System.Linq;

namespace PeftGen.Formats;

/// <summary>What is wrong with one tensor (or file) of a checkpoint, for the model it is loaded into.</summary>
public enum CheckpointMismatchKind
{
    /// <summary>The model has the tensor; the checkpoint does not.</summary>
    Missing = 0,

    /// <summary>The checkpoint has a tensor that the model has no place for.</summary>
    Unexpected = 1,

    /// <summary>The shapes differ.</summary>
    WrongShape = 2,

    /// <summary>The stored dtype is not float32, float16 or bfloat16.</summary>
    WrongDType = 3,

    /// <summary>A tied tensor is stored but differs from the tensor it is tied to.</summary>
    TiedDiffers = 4,

    /// <summary>A file of the checkpoint is absent or unreadable (for example a shard the index lists).</summary>
    File = 5,

    /// <summary>The checkpoint's configuration does not fit (another adapter type, rank or base model, or a <c>quantization_config</c> that does not describe its 4-bit weights).</summary>
    Config = 6,

    /// <summary>A weight stored in 4 bits (bitsandbytes' layout) has a malformed quant state: a missing, unexpected or ill-shaped part.</summary>
    QuantState = 7,
}

/// <summary>One thing that stops a checkpoint from loading into a model.</summary>
/// <param name="Kind">What is wrong.</param>
/// <param name="Key">The checkpoint key concerned (empty for file problems).</param>
/// <param name="Detail">What was expected and found.</param>
public sealed record CheckpointMismatch(CheckpointMismatchKind Kind, string Key, string Detail)
{
    /// <inheritdoc />
    public override string ToString() => Key.Length == 0 ? $"{Kind}: {Detail}" : $"{Kind} '{Key}': {Detail}";
}

/// <summary>
/// A checkpoint does not fit the model. Every mismatch found is listed (in <see cref="Mismatches"/> and in the
/// message); the model was not changed.
/// </summary>
public sealed class CheckpointMismatchException : Exception
{
    /// <summary>Creates the exception.</summary>
    public CheckpointMismatchException(string source, IReadOnlyList<CheckpointMismatch> mismatches)
        : base(Format(source, mismatches))
    {
        Checkpoint = source;
        Mismatches = mismatches;
    }

    /// <summary>The checkpoint (folder or file) that did not fit.</summary>
    public string Checkpoint { get; }

    /// <summary>Every mismatch, grouped by kind.</summary>
    public IReadOnlyList<CheckpointMismatch> Mismatches { get; }

    private static string Format(string source, IReadOnlyList<CheckpointMismatch> mismatches)
    {
        ArgumentNullException.ThrowIfNull(mismatches);
        var counts = string.Join(", ", mismatches.GroupBy(m => m.Kind).Select(g => $"{g.Count()} {Label(g.Key)}"));
        return $"The checkpoint '{source}' does not fit the model ({counts}); nothing was loaded:"
            + string.Concat(mismatches.Select(m => Environment.NewLine + "  " + m));
    }

    private static string Label(CheckpointMismatchKind kind) => kind switch
    {
        CheckpointMismatchKind.Missing => "missing",
        CheckpointMismatchKind.Unexpected => "unexpected",
        CheckpointMismatchKind.WrongShape => "wrong shape",
        CheckpointMismatchKind.WrongDType => "wrong dtype",
        CheckpointMismatchKind.TiedDiffers => "tied tensor differs",
        CheckpointMismatchKind.Config => "configuration mismatch",
        CheckpointMismatchKind.QuantState => "4-bit state malformed",
        _ => "file problem",
    };
}
