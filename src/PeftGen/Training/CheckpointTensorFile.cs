using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace PeftGen.Training;

/// <summary>
/// The small safetensors reader/writer behind training checkpoints, used because PeftGen.IO's SafeTensors/AtomicFile
/// were not yet in main when the trainer was written. Same format (8-byte little-endian header length, JSON
/// header with <c>dtype</c>/<c>shape</c>/<c>data_offsets</c> and <c>__metadata__</c>, raw little-endian data), so a
/// checkpoint opens with any safetensors reader. Writes go to a temp file in the same folder, are flushed to disk,
/// then renamed over the target, so a crash never leaves a half-written checkpoint under the final name.
/// </summary>
internal static class CheckpointTensorFile
{
    private const long MaxHeaderBytes = 100_000_000;

    private static readonly Dictionary<ScalarType, string> DTypeNames = new()
    {
        [ScalarType.Float32] = "F32",
        [ScalarType.Float64] = "F64",
        [ScalarType.Float16] = "F16",
        [ScalarType.BFloat16] = "BF16",
        [ScalarType.Int64] = "I64",
        [ScalarType.Int32] = "I32",
        [ScalarType.Byte] = "U8",
    };

    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        var names = tensors.Keys.OrderBy(n => n, StringComparer.Ordinal).ToArray();
        var cpu = names.Select(n => tensors[n].detach().cpu().contiguous()).ToArray();
        try
        {
            var header = new MemoryStream();
            using (var json = new Utf8JsonWriter(header))
            {
                json.WriteStartObject();
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata.OrderBy(p => p.Key, StringComparer.Ordinal)) json.WriteString(key, value);
                json.WriteEndObject();
                long offset = 0;
                for (int i = 0; i < names.Length; i++)
                {
                    if (!DTypeNames.TryGetValue(cpu[i].dtype, out var dtype))
                        throw new NotSupportedException($"Tensor '{names[i]}' has dtype {cpu[i].dtype}, which checkpoints do not store.");
                    long size = cpu[i].NumberOfElements * cpu[i].ElementSize;
                    json.WriteStartObject(names[i]);
                    json.WriteString("dtype", dtype);
                    json.WriteStartArray("shape");
                    foreach (var d in cpu[i].shape) json.WriteNumberValue(d);
                    json.WriteEndArray();
                    json.WriteStartArray("data_offsets");
                    json.WriteNumberValue(offset);
                    json.WriteNumberValue(offset + size);
                    json.WriteEndArray();
                    json.WriteEndObject();
                    offset += size;
                }
                json.WriteEndObject();
            }
            // Pad the header with spaces to a multiple of 8 so the data section is aligned.
            while (header.Length % 8 != 0) header.WriteByte((byte)' ');

            var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
            Directory.CreateDirectory(directory);
            var temp = Path.Combine(directory, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
            try
            {
                using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
                {
                    Span<byte> length = stackalloc byte[8];
                    BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
                    stream.Write(length);
                    header.Position = 0;
                    header.CopyTo(stream);
                    foreach (var tensor in cpu)
                    {
                        if (tensor.NumberOfElements > 0) stream.Write(tensor.bytes);
                    }
                    stream.Flush(flushToDisk: true);
                }
                File.Move(temp, path, overwrite: true);
            }
            finally
            {
                if (File.Exists(temp)) File.Delete(temp);
            }
        }
        finally
        {
            foreach (var tensor in cpu) tensor.Dispose();
        }
    }

    public static (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Metadata) Read(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        Span<byte> lengthBytes = stackalloc byte[8];
        if (stream.Length < 8 || stream.Read(lengthBytes) != 8) throw Bad(path, "the file is shorter than its 8-byte header length");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > MaxHeaderBytes || (long)headerLength > stream.Length - 8) throw Bad(path, $"header length {headerLength} does not fit the file");
        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        long dataStart = 8 + (long)headerLength;
        long dataLength = stream.Length - dataStart;

        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            using var document = JsonDocument.Parse(headerBytes);
            long covered = 0;
            foreach (var entry in document.RootElement.EnumerateObject().OrderBy(e => e.Name == "__metadata__" ? -1 : e.Value.GetProperty("data_offsets")[0].GetInt64()))
            {
                if (entry.Name == "__metadata__")
                {
                    foreach (var item in entry.Value.EnumerateObject()) metadata[item.Name] = item.Value.GetString() ?? "";
                    continue;
                }
                var dtypeName = entry.Value.GetProperty("dtype").GetString();
                var dtype = DTypeNames.FirstOrDefault(p => p.Value == dtypeName);
                if (dtype.Value is null) throw Bad(path, $"tensor '{entry.Name}' has unknown dtype {dtypeName}");
                var shape = entry.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
                var offsets = entry.Value.GetProperty("data_offsets").EnumerateArray().Select(d => d.GetInt64()).ToArray();
                var tensor = empty(shape, dtype.Key);
                long size = tensor.NumberOfElements * tensor.ElementSize;
                if (offsets.Length != 2 || offsets[0] != covered || offsets[1] - offsets[0] != size || offsets[1] > dataLength)
                {
                    tensor.Dispose();
                    throw Bad(path, $"tensor '{entry.Name}' has data offsets that do not match its dtype and shape or the file");
                }
                tensors[entry.Name] = tensor;
                if (size > 0)
                {
                    var data = new byte[size];
                    stream.Position = dataStart + offsets[0];
                    stream.ReadExactly(data);
                    tensor.bytes = data;
                }
                covered = offsets[1];
            }
            if (covered != dataLength) throw Bad(path, "the data section has bytes that no tensor covers");
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw Bad(path, "the header is not valid safetensors JSON", e);
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
        return (tensors, metadata);
    }

    private static InvalidDataException Bad(string path, string why, Exception? inner = null) =>
        new($"Checkpoint '{path}' is not valid: {why}.", inner);
}
