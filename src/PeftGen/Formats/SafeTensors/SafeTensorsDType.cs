using System;
using TorchSharp;

namespace PeftGen.Formats.SafeTensors;

/// <summary>The safetensors dtype names PeftGen reads and writes, and their torch types.</summary>
internal static class SafeTensorsDType
{
    /// <summary>Maps a safetensors dtype name to its torch type and element size; false for names PeftGen does not support.</summary>
    public static bool TryParse(string name, out torch.ScalarType type, out int size)
    {
        (type, size) = name switch
        {
            "F64" => (torch.ScalarType.Float64, 8),
            "F32" => (torch.ScalarType.Float32, 4),
            "F16" => (torch.ScalarType.Float16, 2),
            "BF16" => (torch.ScalarType.BFloat16, 2),
            "I64" => (torch.ScalarType.Int64, 8),
            "I32" => (torch.ScalarType.Int32, 4),
            "I16" => (torch.ScalarType.Int16, 2),
            "I8" => (torch.ScalarType.Int8, 1),
            "U8" => (torch.ScalarType.Byte, 1),
            "BOOL" => (torch.ScalarType.Bool, 1),
            _ => (default(torch.ScalarType), 0),
        };
        return size != 0;
    }

    /// <summary>The safetensors name of a torch type.</summary>
    public static string NameOf(torch.ScalarType type) => type switch
    {
        torch.ScalarType.Float64 => "F64",
        torch.ScalarType.Float32 => "F32",
        torch.ScalarType.Float16 => "F16",
        torch.ScalarType.BFloat16 => "BF16",
        torch.ScalarType.Int64 => "I64",
        torch.ScalarType.Int32 => "I32",
        torch.ScalarType.Int16 => "I16",
        torch.ScalarType.Int8 => "I8",
        torch.ScalarType.Byte => "U8",
        torch.ScalarType.Bool => "BOOL",
        _ => throw new NotSupportedException($"safetensors has no dtype for torch type {type}."),
    };

    /// <summary>
    /// The position of a dtype in the reference implementation's dtype enumeration. The reference writes tensors in
    /// descending order of it (widest alignment first), then by name, and so do we, so files are byte-identical.
    /// </summary>
    public static int ReferenceOrder(string name) => name switch
    {
        "BOOL" => 0,
        "U8" => 1,
        "I8" => 2,
        "I16" => 5,
        "F16" => 7,
        "BF16" => 8,
        "I32" => 9,
        "F32" => 11,
        "F64" => 12,
        "I64" => 13,
        _ => throw new NotSupportedException($"Unsupported safetensors dtype '{name}'."),
    };
}
