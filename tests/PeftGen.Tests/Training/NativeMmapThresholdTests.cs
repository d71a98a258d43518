using System;
using PeftGen.Tests.Support;
using PeftGen.Training;
using Xunit;

namespace PeftGen.Tests.Training;

// The threshold is process-wide: these tests run alone (the collection is not parallel) and leave it fixed at 32 MiB,
// where glibc's adaptive threshold settles once a large block has been freed.
[Collection(ProcessMemoryCollection.Name)]
public sealed class NativeMmapThresholdTests
{
    private const long MiB = 1L << 20;

    [Fact]
    public void By_default_glibc_keeps_its_threshold_and_out_of_range_thresholds_are_refused_by_name()
    {
        Assert.Null(new TrainerOptions().NativeMmapThresholdBytes);
        new TrainerOptions { NativeMmapThresholdBytes = 1 }.Validate();
        new TrainerOptions { NativeMmapThresholdBytes = 32 * MiB }.Validate();
        foreach (var bad in new[] { 0, -1, 32 * MiB + 1 })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => new TrainerOptions { NativeMmapThresholdBytes = bad }.Validate());
            Assert.Equal(nameof(TrainerOptions.NativeMmapThresholdBytes), e.ParamName);
            Assert.Contains("32 MiB", e.Message);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => ProcessMemory.TrySetNativeMmapThreshold(0));
    }

    [Fact]
    public void A_trainer_fixes_the_threshold_for_the_process()
    {
        if (!Glibc()) return;
        if (ProcessMemory.EnvironmentSetsMmapThreshold())
        {
            // The environment's choice stands.
            Assert.False(ProcessMemory.TrySetNativeMmapThreshold(2 * MiB));
            return;
        }
        try
        {
            var model = new TinyCausalLm(seed: 1);
            using (new PeftTrainer(model, TrainingFixtures.AllParameters(model), new TrainerOptions { NativeMmapThresholdBytes = 2 * MiB }))
            {
            }
            Assert.Equal(2 * MiB, ProcessMemory.NativeMmapThresholdBytes);
        }
        finally
        {
            Assert.True(ProcessMemory.TrySetNativeMmapThreshold(ProcessMemory.MaximumMmapThresholdBytes));
        }
    }

    // In a fresh process (this one's heap holds other tests' free blocks, which glibc hands out before mapping anew):
    // after a 24 MiB block was mapped and freed, glibc's adaptive rule serves a 3 MiB block from the heap; fixed at 2 MiB
    // it maps it, and a 1 MiB block still comes from the heap.
    [Theory]
    [InlineData("2", "above=True below=False")]
    [InlineData("adaptive", "above=False below=False")]
    public void A_fixed_threshold_maps_large_blocks_even_after_a_larger_one_was_freed(string threshold, string expected)
    {
        if (!Glibc() || ProcessMemory.EnvironmentSetsMmapThreshold()) return;
        Assert.Equal(expected, Probe(threshold));
    }

    [Fact]
    public void Null_leaves_the_threshold_as_it_is()
    {
        if (!Glibc() || ProcessMemory.EnvironmentSetsMmapThreshold()) return;
        try
        {
            Assert.True(ProcessMemory.TrySetNativeMmapThreshold(3 * MiB));
            var model = new TinyCausalLm(seed: 1);
            using (new PeftTrainer(model, TrainingFixtures.AllParameters(model), new TrainerOptions { NativeMmapThresholdBytes = null }))
            {
            }
            Assert.Equal(3 * MiB, ProcessMemory.NativeMmapThresholdBytes);
        }
        finally
        {
            Assert.True(ProcessMemory.TrySetNativeMmapThreshold(ProcessMemory.MaximumMmapThresholdBytes));
        }
    }

    private static bool Glibc() => ProcessMemory.NativeMappedBytes() is not null;

    private static string Probe(string threshold)
    {
        using var process = ChildProcess.Start("PeftGen.HeapProbe", redirectInput: false, threshold);
        var output = process.StandardOutput.ReadToEndAsync();
        Assert.True(process.WaitForExit(60_000), "the heap probe did not finish in time");
        Assert.Equal(0, process.ExitCode);
        return output.Result.Trim();
    }
}
