using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Text;
using PeftGen.IO;
using PeftGen.Formats;
using static TorchSharp.torch;

namespace PeftGen.Formats.SafeTensors;

// Writing a whole file, and reading one whole: the two ends of the format for callers that hold every tensor at once.
public sealed partial class SafeTensorsFile
{
    private const int WriteBufferSize = 1 << 20;

    /// <summary>
    /// Saves <paramref name="tensors"/> to <paramref name="path"/> atomically (temp file, flush, rename). Tensors may
    /// live on any device; each is copied to the CPU in turn, so at most one extra copy exists at a time.
    /// </summary>
    /// <param name="path">The target file.</param>
    /// <param name="tensors">Tensors by name; dtypes F64, F32, F16, BF16, I64, I32, I16, I8, U8 or BOOL.</param>
    /// <param name="metadata">The optional <c>__metadata__</c> string map (PEFT writes <c>{"format": "pt"}</c>).</param>
    /// <exception cref="ArgumentException">A name is reserved or not valid UTF-16, or a dtype has no safetensors equivalent.</exception>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("safetensors data is little-endian; this platform is not.");

        var entries = new List<(string Name, string DType, long[] Shape, Tensor Tensor)>(tensors.Count);
        foreach (var (name, tensor) in tensors)
        {
            ArgumentNullException.ThrowIfNull(name);
            if (tensor is null)
                throw new ArgumentException($"Tensor '{name}' is null.", nameof(tensors));
            if (name == SafeTensorsHeader.MetadataKey)
                throw new ArgumentException($"'{SafeTensorsHeader.MetadataKey}' is reserved for the metadata map and cannot name a tensor.", nameof(tensors));
            CheckText(name, "tensor name");
            string dtype;
            try
            {
                dtype = SafeTensorsDType.NameOf(tensor.dtype);
            }
            catch (NotSupportedException e)
            {
                throw new ArgumentException($"Tensor '{name}': {e.Message}", nameof(tensors), e);
            }
            entries.Add((name, dtype, tensor.shape, tensor));
        }
        if (metadata is not null)
        {
            foreach (var (key, value) in metadata)
            {
                CheckText(key, "metadata key");
                CheckText(value, $"metadata value of '{key}'");
            }
        }

        entries.Sort(static (a, b) =>
        {
            var byDType = SafeTensorsDType.ReferenceOrder(b.DType).CompareTo(SafeTensorsDType.ReferenceOrder(a.DType));
            return byDType != 0 ? byDType : string.CompareOrdinal(a.Name, b.Name);
        });

        var layout = new List<(string, string, long[], long, long)>(entries.Count);
        var offset = 0L;
        foreach (var (name, dtype, shape, tensor) in entries)
        {
            var length = checked(tensor.NumberOfElements * tensor.ElementSize);
            layout.Add((name, dtype, shape, offset, offset + length));
            offset += length;
        }
        var header = SafeTensorsHeader.Serialize(layout, metadata);

        AtomicFile.Write(path, stream =>
        {
            Span<byte> prefix = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
            stream.Write(prefix);
            stream.Write(header);
            foreach (var entry in entries)
            {
                if (entry.Tensor.NumberOfElements == 0)
                    continue;
                using var scope = NewDisposeScope();
                var host = entry.Tensor.detach().cpu().contiguous();
                host.WriteBytesToStream(stream, (int)Math.Min(host.NumberOfElements * host.ElementSize, WriteBufferSize));
            }
        });
    }

    /// <summary>Loads every tensor of <paramref name="path"/> after validating the whole header.</summary>
    /// <param name="path">A <c>.safetensors</c> file.</param>
    /// <param name="device">Where the tensors go; the CPU when <see langword="null"/>.</param>
    /// <returns>New tensors by name, owned by the caller.</returns>
    /// <exception cref="PeftFormatException">The file is not a valid safetensors file.</exception>
    public static Dictionary<string, Tensor> Load(string path, Device? device = null)
    {
        using var file = SafeTensorsFile.Open(path);
        var result = new Dictionary<string, Tensor>(file.Names.Count, StringComparer.Ordinal);
        try
        {
            foreach (var name in file.Names)
                result.Add(name, file.Read(name, device));
            return result;
        }
        catch
        {
            foreach (var tensor in result.Values)
                tensor.Dispose();
            throw;
        }
    }

    private static void CheckText(string text, string what)
    {
        ArgumentNullException.ThrowIfNull(text);
        try
        {
            new UTF8Encoding(false, throwOnInvalidBytes: true).GetByteCount(text);
        }
        catch (EncoderFallbackException e)
        {
            throw new ArgumentException($"The {what} '{text}' is not valid UTF-16 (it has an unpaired surrogate).", e);
        }
    }
}
