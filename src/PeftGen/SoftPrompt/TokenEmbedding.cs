using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftGen;

/// <summary>
/// A model's token embedding table (<c>Count × Dim</c>, frozen unless trained in full). Declare the token embedding
/// member with this type; soft prompts attach here, because they are prepended to its output.
/// </summary>
public sealed class TokenEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;

    /// <summary>Creates a table initialised as torch.nn.Embedding (standard normal), frozen.</summary>
    public TokenEmbedding(long count, long dim, Device? device = null, ScalarType? dtype = null) : base(nameof(TokenEmbedding))
    {
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), count, "Embedding count must be positive.");
        if (dim <= 0) throw new ArgumentOutOfRangeException(nameof(dim), dim, "Embedding dimension must be positive.");
        Count = count;
        Dim = dim;
        weight = new Parameter(randn(new[] { count, dim }, dtype: dtype, device: device), requires_grad: false);
        register_parameter(nameof(weight), weight);
    }

    /// <summary>Rows (vocabulary size).</summary>
    public long Count { get; }

    /// <summary>Width of a row.</summary>
    public long Dim { get; }

    /// <summary>The table, <c>Count × Dim</c>.</summary>
    public Parameter Weight => weight;

    /// <summary>Looks up the embeddings of token ids (<c>batch × seq</c> → <c>batch × seq × Dim</c>).</summary>
    public override Tensor forward(Tensor tokenIds)
    {
        ArgumentNullException.ThrowIfNull(tokenIds);
        if (tokenIds.dtype != ScalarType.Int64 && tokenIds.dtype != ScalarType.Int32)
            throw new ArgumentException($"Token ids must be int64 or int32, not {tokenIds.dtype}.", nameof(tokenIds));
        return weight.index_select(0, tokenIds.flatten()).reshape(AppendDim(tokenIds.shape));
    }

    private long[] AppendDim(long[] shape)
    {
        var result = new long[shape.Length + 1];
        shape.CopyTo(result, 0);
        result[^1] = Dim;
        return result;
    }

    /// <inheritdoc />
    protected override void RegisterComponents()
    {
    }
}
