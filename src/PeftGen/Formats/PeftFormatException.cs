using System;

namespace PeftGen.Formats;

/// <summary>
/// A file that PeftGen reads (safetensors, <c>adapter_config.json</c>, a checkpoint index) is malformed or does not
/// match what the caller expects. The message names the file and, when one is involved, the tensor.
/// </summary>
public sealed class PeftFormatException : Exception
{
    /// <summary>Creates the exception; the message is prefixed with the file and tensor it concerns.</summary>
    /// <param name="filePath">The file that is at fault, or <see langword="null"/> when no single file is.</param>
    /// <param name="tensorName">The tensor (or JSON field) at fault, or <see langword="null"/>.</param>
    /// <param name="detail">What is wrong, in words that say what to change.</param>
    /// <param name="innerException">The low-level error that revealed the problem, if any.</param>
    public PeftFormatException(string? filePath, string? tensorName, string detail, Exception? innerException = null)
        : base(Compose(filePath, tensorName, detail), innerException)
    {
        FilePath = filePath;
        TensorName = tensorName;
        Detail = detail;
    }

    /// <summary>The file that is at fault, or <see langword="null"/> when no single file is.</summary>
    public string? FilePath { get; }

    /// <summary>The tensor (or field) at fault, or <see langword="null"/> when the problem is not about one tensor.</summary>
    public string? TensorName { get; }

    /// <summary>The description of the problem without the file and tensor prefix.</summary>
    public string Detail { get; }

    private static string Compose(string? filePath, string? tensorName, string detail)
    {
        var where = filePath is null ? "" : $"'{filePath}': ";
        var what = tensorName is null ? "" : $"tensor '{tensorName}': ";
        return where + what + detail;
    }
}
