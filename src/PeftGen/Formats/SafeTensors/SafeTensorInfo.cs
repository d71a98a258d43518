using System;
using TorchSharp;

namespace PeftGen.Formats.SafeTensors;

/// <summary>What a safetensors header says about one tensor: its dtype, shape and place in the data section.</summary>
public sealed class SafeTensorInfo
{
    internal SafeTensorInfo(string name, string dtype, torch.ScalarType scalarType, int elementSize, long[] shape, long dataBegin, long dataEnd)
    {
        Name = name;
        DType = dtype;
        ScalarType = scalarType;
        ElementSize = elementSize;
        this.shape = shape;
        DataBegin = dataBegin;
        DataEnd = dataEnd;
    }

    private readonly long[] shape;

    /// <summary>The tensor's key in the file.</summary>
    public string Name { get; }

    /// <summary>The safetensors dtype name (<c>F32</c>, <c>BF16</c>, <c>U8</c>, ...).</summary>
    public string DType { get; }

    /// <summary>The torch type that <see cref="DType"/> maps to.</summary>
    public torch.ScalarType ScalarType { get; }

    /// <summary>Bytes per element.</summary>
    public int ElementSize { get; }

    /// <summary>The shape (a copy; C order).</summary>
    public long[] Shape => (long[])shape.Clone();

    /// <summary>Start of the tensor's bytes, relative to the start of the data section.</summary>
    public long DataBegin { get; }

    /// <summary>End (exclusive) of the tensor's bytes, relative to the start of the data section.</summary>
    public long DataEnd { get; }

    /// <summary>The number of bytes the tensor occupies.</summary>
    public long ByteLength => DataEnd - DataBegin;

    /// <summary>The number of elements.</summary>
    public long ElementCount => ByteLength / ElementSize;

    /// <summary>Deconstructs into the dtype name and the shape.</summary>
    /// <param name="dtype">The safetensors dtype name.</param>
    /// <param name="shape">The shape.</param>
    public void Deconstruct(out string dtype, out long[] shape)
    {
        dtype = DType;
        shape = Shape;
    }

    internal ReadOnlySpan<long> ShapeSpan => shape;

    /// <inheritdoc />
    public override string ToString() => $"{Name}: {DType}[{string.Join(", ", shape)}] @ [{DataBegin}, {DataEnd})";
}
