using System;
using PeftGen.Data;
using static TorchSharp.torch;

namespace PeftGen.Training;

/// <summary>Validation cross-entropy of a causal LM over labelled tokens, without gradients.</summary>
public static class ValidationLoss
{
    /// <summary>Summed loss (nats) and labelled-token count over the first <paramref name="batches"/> batches.</summary>
    public static (double Sum, long Count) Summed(ICausalLanguageModel model, IBatchSource source, long batches, int chunkSize = ChunkedCrossEntropy.AutoChunkSize, ChunkedCrossEntropy.Workspace? workspace = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(source);
        using var noGrad = no_grad();
        var device = model.HeadDevice();
        double sum = 0;
        long count = 0;
        for (long i = 0; i < batches; i++)
        {
            using var scope = NewDisposeScope();
            var batch = source.GetBatch(i);
            var (loss, n) = CausalLmLoss.Sum(model.ForwardHidden(batch.InputIdsTensor(device)), model.HeadWeight, batch.LabelsTensor(device), chunkSize, workspace);
            sum += loss.to(ScalarType.Float64).item<double>();
            count += n;
        }
        return (sum, count);
    }

    /// <summary>Mean loss per labelled token (NaN when there are none).</summary>
    public static double Mean(ICausalLanguageModel model, IBatchSource source, long batches, int chunkSize = ChunkedCrossEntropy.AutoChunkSize)
    {
        var (sum, count) = Summed(model, source, batches, chunkSize);
        return count > 0 ? sum / count : double.NaN;
    }
}
