using System;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen.Training;

/// <summary>
/// Causal language-model loss: position <c>t</c> predicts token <c>t + 1</c>, and only positions whose label is not
/// <see cref="IgnoreIndex"/> count (completion tokens; prompts and padding are ignored).
/// </summary>
public static class CausalLmLoss
{
    /// <summary>The label of a position that does not count, as in PyTorch and Hugging Face.</summary>
    public const long IgnoreIndex = -100;

    /// <summary>
    /// Summed cross-entropy (nats) over labelled positions and their count. <paramref name="labels"/> is aligned
    /// with the inputs (<c>batch × seq</c>, like Hugging Face's <c>labels</c>); the shift happens here. The head is
    /// applied in chunks of <paramref name="chunkSize"/> labelled tokens (see <see cref="ChunkedCrossEntropy"/>), in
    /// <paramref name="workspace"/> when given.
    /// </summary>
    public static (Tensor Sum, long Count) Sum(Tensor hidden, Tensor headWeight, Tensor labels, int chunkSize = ChunkedCrossEntropy.AutoChunkSize, ChunkedCrossEntropy.Workspace? workspace = null)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        ArgumentNullException.ThrowIfNull(headWeight);
        ArgumentNullException.ThrowIfNull(labels);
        if (hidden.dim() != 3) throw new ArgumentException($"Hidden states must be batch × seq × dim, got [{string.Join(", ", hidden.shape)}].", nameof(hidden));
        if (labels.dim() != 2 || labels.shape[0] != hidden.shape[0] || labels.shape[1] != hidden.shape[1])
            throw new ArgumentException($"Labels [{string.Join(", ", labels.shape)}] do not match hidden states [{string.Join(", ", hidden.shape)}].", nameof(labels));

        using var scope = NewDisposeScope();
        long seq = hidden.shape[1];
        long dim = hidden.shape[2];
        var predictors = hidden.narrow(1, 0, seq - 1).reshape(-1, dim);
        var targets = labels.narrow(1, 1, seq - 1).reshape(-1).to(ScalarType.Int64);
        // Only labelled rows reach the head: prompt and padding positions cost no vocabulary matmul at all.
        using var ignored = IgnoreIndex.ToScalar();
        var rows = targets.ne(ignored).nonzero().squeeze(1);
        long count = rows.shape[0];
        var sum = ChunkedCrossEntropy.Sum(predictors.index_select(0, rows), headWeight, targets.index_select(0, rows), chunkSize, workspace);
        return (sum.MoveToOuterDisposeScope(), count);
    }

    /// <summary>Mean cross-entropy over labelled positions (0 when there are none).</summary>
    public static Tensor Mean(Tensor hidden, Tensor headWeight, Tensor labels, int chunkSize = ChunkedCrossEntropy.AutoChunkSize)
    {
        var (sum, count) = Sum(hidden, headWeight, labels, chunkSize);
        if (count == 0) return sum;
        using var divisor = count.ToScalar();
        return sum.div(divisor);
    }
}
