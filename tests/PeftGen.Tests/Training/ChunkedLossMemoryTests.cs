using System;
using PeftGen.Tests.Support;
using PeftGen.Training;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PeftGen.Tests.Training;

[Collection(ProcessMemoryCollection.Name)]
public sealed class ChunkedLossMemoryTests(ITestOutputHelper output)
{
    private const long Vocab = 50_257;
    private const long Dim = 64;

    /// <summary>Peak resident growth of one forward + backward of the head and loss over 2 × 257 positions (512 predicted tokens).</summary>
    private static long PeakOf(Func<Tensor, Tensor, Tensor, Tensor> lossOf)
    {
        manual_seed(1);
        using var scope = NewDisposeScope();
        var hidden = randn(2, 257, Dim).requires_grad_(true);
        var weight = (randn(Vocab, Dim) * 0.05).requires_grad_(true);
        var labels = randint(0, Vocab, new long[] { 2, 257 });
        NativeHeap.Settle(); // free heap from earlier tests would hide new allocations from resident memory
        if (!ProcessMemory.TryResetPeak()) return -1;
        long before = ProcessMemory.CurrentResidentBytes();
        using (var step = NewDisposeScope())
        {
            lossOf(hidden, weight, labels).backward();
        }
        return ProcessMemory.PeakResidentBytes() - before;
    }

    [Fact]
    public void Chunked_head_and_loss_peak_is_a_fraction_of_the_naive_peak()
    {
        long naive = PeakOf((h, w, y) =>
        {
            var logits = h.matmul(w.t()).narrow(1, 0, 256).reshape(-1, Vocab);
            return nn.functional.cross_entropy(logits, y.narrow(1, 1, 256).reshape(-1));
        });
        long chunked = PeakOf((h, w, y) => CausalLmLoss.Mean(h, w, y));
        if (naive < 0) return; // No /proc/self/clear_refs: nothing to measure on this host.
        output.WriteLine($"512 tokens x {Vocab} vocab: naive peak +{naive / 1e6:F0} MB, chunked (256) peak +{chunked / 1e6:F0} MB");
        // Full logits alone are 512 × 50,257 × 4 B ≈ 103 MB; a chunk is half of that, and nothing of it outlives the chunk.
        Assert.True(naive > 300_000_000, $"naive {naive}");
        Assert.True(chunked < naive * 0.4, $"chunked {chunked} vs naive {naive}");
    }
}
