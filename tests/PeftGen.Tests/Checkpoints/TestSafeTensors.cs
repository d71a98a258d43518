using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace PeftGen.Tests.Checkpoints;

/// <summary>
/// A small, independent implementation of the safetensors format (8-byte little-endian header length, JSON header
/// of dtype/shape/data_offsets, raw data), used to write checkpoints in exactly the Hugging Face layout and to read
/// what the saver wrote, independently of the library's reader and writer.
/// </summary>
public static class TestSafeTensors
{
    public sealed record Entry(string DType, long[] Shape, long Begin, long End);

    public static void WriteFile(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new JsonObject();
        if (metadata is not null) header["__metadata__"] = new JsonObject(metadata.Select(m => KeyValuePair.Create(m.Key, (JsonNode?)JsonValue.Create(m.Value))));
        var blobs = new List<byte[]>();
        long offset = 0;
        foreach (var (name, tensor) in tensors.OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            using var cpu = tensor.detach().cpu().contiguous();
            var bytes = cpu.bytes.ToArray();
            header[name] = new JsonObject
            {
                ["dtype"] = DTypeName(cpu.dtype),
                ["shape"] = new JsonArray(cpu.shape.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes.Length),
            };
            blobs.Add(bytes);
            offset += bytes.Length;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        var padded = (json.Length + 7) / 8 * 8;
        using var file = File.Create(path);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
        file.Write(length);
        file.Write(json);
        for (var i = json.Length; i < padded; i++) file.WriteByte((byte)' ');
        foreach (var blob in blobs) file.Write(blob);
    }

    public static Dictionary<string, Entry> ReadHeader(string path, out long dataStart)
    {
        using var file = File.OpenRead(path);
        Span<byte> length = stackalloc byte[8];
        file.ReadExactly(length);
        var headerLength = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(length));
        var json = new byte[headerLength];
        file.ReadExactly(json);
        dataStart = 8 + headerLength;
        var entries = new Dictionary<string, Entry>(StringComparer.Ordinal);
        foreach (var (name, node) in JsonNode.Parse(json)!.AsObject())
        {
            if (name == "__metadata__") continue;
            var offsets = node!["data_offsets"]!.AsArray().Select(o => o!.GetValue<long>()).ToArray();
            entries[name] = new Entry(node["dtype"]!.GetValue<string>(), node["shape"]!.AsArray().Select(s => s!.GetValue<long>()).ToArray(), offsets[0], offsets[1]);
        }
        return entries;
    }

    public static Tensor ReadTensor(string path, Entry entry, long dataStart)
    {
        var bytes = new byte[entry.End - entry.Begin];
        using (var file = File.OpenRead(path))
        {
            file.Seek(dataStart + entry.Begin, SeekOrigin.Begin);
            file.ReadExactly(bytes);
        }
        var tensor = empty(entry.Shape, dtype: ScalarTypeOf(entry.DType));
        bytes.CopyTo(tensor.bytes);
        return tensor;
    }

    public static Dictionary<string, Tensor> ReadAll(string path)
    {
        var header = ReadHeader(path, out var dataStart);
        return header.ToDictionary(e => e.Key, e => ReadTensor(path, e.Value, dataStart), StringComparer.Ordinal);
    }

    public static string DTypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Float64 => "F64",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Byte => "U8",
        _ => throw new ArgumentException($"No safetensors name for {dtype}."),
    };

    public static ScalarType ScalarTypeOf(string dtype) => dtype switch
    {
        "F32" => ScalarType.Float32,
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "F64" => ScalarType.Float64,
        "I64" => ScalarType.Int64,
        "I32" => ScalarType.Int32,
        "U8" => ScalarType.Byte,
        _ => throw new ArgumentException($"Unknown safetensors dtype {dtype}."),
    };
}
