using System;
using System.Linq;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using PeftGen.Formats;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen.Formats.SafeTensors;

/// <summary>
/// The safetensors format (an 8-byte little-endian header length, a JSON header, then the tensors' bytes,
/// little-endian, C order), read and written. An open file has had its header read and validated; tensors are then
/// read one at a time with positioned reads, so a large file streams tensor by tensor instead of being loaded whole.
/// <see cref="Save"/> writes a file atomically, byte-identical to the reference implementation; <see cref="Load"/>
/// reads one whole. No code-executing format (pickle) is ever read.
/// </summary>
/// <remarks>
/// Reading is strict only: a single file has no parts to report separately, so its first malformation is the error
/// (<see cref="PeftFormatException"/>); the folder formats built on it (<see cref="HuggingFace.HfCheckpoint"/>,
/// <see cref="Peft.PeftAdapterFolder"/>) can collect problems across files instead.
/// Reads are serialized internally, so one instance may be shared by several threads.
/// </remarks>
public sealed partial class SafeTensorsFile : IDisposable
{
    private const int ReadBufferSize = 1 << 20;

    private readonly FileStream stream;
    private readonly SafeTensorsHeader header;
    private readonly long dataStart;
    private readonly string[] names;
    private readonly object gate = new();
    private bool disposed;

    private SafeTensorsFile(string path, FileStream stream, SafeTensorsHeader header, long dataStart)
    {
        FilePath = path;
        this.stream = stream;
        this.header = header;
        this.dataStart = dataStart;
        names = new List<string>(header.Tensors.Keys).ToArray();
        Array.Sort(names, StringComparer.Ordinal);
    }

    /// <summary>Opens <paramref name="path"/> and validates its header against the file's size.</summary>
    /// <param name="path">A <c>.safetensors</c> file.</param>
    /// <returns>The open file; dispose it to close the file.</returns>
    /// <exception cref="PeftFormatException">The file is not a valid safetensors file.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static SafeTensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("safetensors data is little-endian; this platform is not.");
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.RandomAccess);
        try
        {
            var length = stream.Length;
            if (length < 8)
                throw new PeftFormatException(path, null, $"the file has {length} bytes; a safetensors file starts with an 8-byte header length.");
            Span<byte> prefix = stackalloc byte[8];
            stream.ReadExactly(prefix);
            var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            if (headerLength > SafeTensorsHeader.MaxLength)
                throw new PeftFormatException(path, null, $"the header length {headerLength} exceeds the {SafeTensorsHeader.MaxLength}-byte limit.");
            if ((long)headerLength > length - 8)
                throw new PeftFormatException(path, null, $"the header length {headerLength} exceeds the {length - 8} bytes that follow it.");
            var json = new byte[headerLength];
            stream.ReadExactly(json);
            var dataStart = 8 + (long)headerLength;
            var header = SafeTensorsHeader.Parse(json, length - dataStart, path);
            return new SafeTensorsFile(path, stream, header, dataStart);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>The path the file was opened with.</summary>
    public string FilePath { get; }

    /// <summary>The tensor names, in ordinal order.</summary>
    public IReadOnlyList<string> Names => names;

    /// <summary>The header's <c>__metadata__</c> string map (empty when the file has none).</summary>
    public IReadOnlyDictionary<string, string> Metadata => header.Metadata;

    /// <summary>Whether the file holds a tensor called <paramref name="name"/>.</summary>
    /// <param name="name">A tensor name.</param>
    /// <returns><see langword="true"/> if the header lists it.</returns>
    public bool Contains(string name) => header.Tensors.ContainsKey(name);

    /// <summary>The dtype, shape and byte range of tensor <paramref name="name"/>, without reading its data.</summary>
    /// <param name="name">A tensor name from <see cref="Names"/>.</param>
    /// <returns>The header entry.</returns>
    /// <exception cref="KeyNotFoundException">The file holds no such tensor.</exception>
    public SafeTensorInfo TensorInfo(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return header.Tensors.TryGetValue(name, out var info)
            ? info
            : throw new KeyNotFoundException($"'{FilePath}' holds no tensor '{name}'.");
    }

    /// <summary>Reads tensor <paramref name="name"/> into a new tensor.</summary>
    /// <param name="name">A tensor name from <see cref="Names"/>.</param>
    /// <param name="device">Where the tensor goes; the CPU when <see langword="null"/>.</param>
    /// <returns>A new tensor that the caller owns (it joins the current dispose scope, if any).</returns>
    /// <exception cref="PeftFormatException">The data cannot be read as declared (file truncated since opening, invalid booleans).</exception>
    public Tensor Read(string name, Device? device = null)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        var info = TensorInfo(name);
        // Booleans are read as bytes first so that values other than 0 and 1 are caught before torch sees them.
        var isBool = info.ScalarType == ScalarType.Bool;
        var cpu = empty(info.ShapeSpan, isBool ? ScalarType.Byte : info.ScalarType, CPU);
        try
        {
            if (info.ByteLength > 0)
            {
                lock (gate)
                {
                    stream.Position = dataStart + info.DataBegin;
                    cpu.ReadBytesFromStream(stream, (int)Math.Min(info.ByteLength, ReadBufferSize));
                }
            }
            if (isBool)
                cpu = ToBooleans(cpu, info);
            if (device is null || device.type == DeviceType.CPU)
                return cpu;
            var moved = cpu.to(device);
            cpu.Dispose();
            return moved;
        }
        catch (EndOfStreamException e)
        {
            cpu.Dispose();
            throw new PeftFormatException(FilePath, name, "the file ends inside the tensor's data (it changed after it was opened).", e);
        }
        catch
        {
            cpu.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads tensor <paramref name="name"/> into <paramref name="target"/> (same shape) without a full-size copy: straight
    /// into its memory when it is a contiguous CPU tensor of the stored dtype, else a block of rows at a time (at most
    /// <see cref="ReadIntoBlockBytes"/> of stored data), each converted into its rows by <c>copy_</c>. Loading an
    /// embedding of half a gigabyte then needs no second half gigabyte.
    /// </summary>
    /// <param name="name">A tensor name from <see cref="Names"/>.</param>
    /// <param name="target">The tensor to fill; on failure it may be partly written.</param>
    /// <param name="blockBytes">The most stored bytes held at once when converting block by block.</param>
    /// <exception cref="ArgumentException">The shapes differ.</exception>
    /// <exception cref="PeftFormatException">The data cannot be read as declared.</exception>
    public void ReadInto(string name, Tensor target, long blockBytes = ReadIntoBlockBytes)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        ArgumentNullException.ThrowIfNull(target);
        var info = TensorInfo(name);
        if (!info.ShapeSpan.SequenceEqual(target.shape))
            throw new ArgumentException($"'{FilePath}': tensor '{name}' is [{string.Join(", ", info.ShapeSpan.ToArray())}], the target [{string.Join(", ", target.shape)}].", nameof(target));
        if (info.ScalarType == ScalarType.Bool || target.dim() == 0 || info.ByteLength == 0)
        {
            using var whole = Read(name);
            target.copy_(whole);
            return;
        }
        try
        {
            if (target.device_type == DeviceType.CPU && target.is_contiguous() && target.dtype == info.ScalarType)
            {
                lock (gate)
                {
                    stream.Position = dataStart + info.DataBegin;
                    target.ReadBytesFromStream(stream, (int)Math.Min(info.ByteLength, ReadBufferSize));
                }
                return;
            }
            long rows = target.shape[0];
            long rowBytes = info.ByteLength / rows;
            long blockRows = Math.Max(1, blockBytes / Math.Max(1, rowBytes));
            var rest = target.shape.Skip(1).ToArray();
            for (long start = 0; start < rows; start += blockRows)
            {
                long count = Math.Min(blockRows, rows - start);
                using var block = empty([count, .. rest], info.ScalarType, CPU);
                lock (gate)
                {
                    stream.Position = dataStart + info.DataBegin + start * rowBytes;
                    block.ReadBytesFromStream(stream, (int)Math.Min(count * rowBytes, ReadBufferSize));
                }
                using var rowsOfTarget = target.narrow(0, start, count);
                rowsOfTarget.copy_(block);
            }
        }
        catch (EndOfStreamException e)
        {
            throw new PeftFormatException(FilePath, name, "the file ends inside the tensor's data (it changed after it was opened).", e);
        }
    }

    /// <summary>The most stored bytes <see cref="ReadInto"/> holds at once when it converts block by block (64 MiB).</summary>
    public const long ReadIntoBlockBytes = 64L << 20;

    private Tensor ToBooleans(Tensor bytes, SafeTensorInfo info)
    {
        bool invalid;
        using (var one = 1.ToScalar())
        using (var flags = bytes.gt(one))
        using (var any = flags.any())
            invalid = any.item<bool>();
        if (invalid)
            throw new PeftFormatException(FilePath, info.Name, "a BOOL tensor holds bytes other than 0 and 1.");
        var booleans = bytes.to_type(ScalarType.Bool);
        bytes.Dispose();
        return booleans;
    }

    /// <summary>Closes the file.</summary>
    public void Dispose()
    {
        if (disposed)
            return;
        disposed = true;
        stream.Dispose();
    }
}
