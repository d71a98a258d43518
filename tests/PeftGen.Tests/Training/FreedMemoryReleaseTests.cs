using System;
using System.Collections.Generic;
using System.Linq;
using PeftGen.Data;
using PeftGen.Training;
using Xunit;

namespace PeftGen.Tests.Training;

[Collection(nameof(SerialTorchTests))]
public sealed class FreedMemoryReleaseTests
{
    private const long MiB = 1L << 20;

    // Feeds the given resident sizes (MiB) step by step and returns the steps (1-based) after which a release ran.
    private static List<int> Releases(params long[] residentMiB)
    {
        int step = 0;
        var released = new List<int>();
        var release = new FreedMemoryRelease(() => residentMiB[step - 1] * MiB, () =>
        {
            released.Add(step);
            return true;
        });
        for (step = 1; step <= residentMiB.Length; step++) release.AfterStep();
        return released;
    }

    [Fact]
    public void The_first_steps_set_the_working_set_and_only_growth_past_the_budget_releases()
    {
        // Working set 640 MiB (the largest of the first three steps), budget 80 MiB (an eighth): 720 stays, 721 releases.
        Assert.Empty(Releases(500, 640, 600, 700, 720, 720, 720, 720, 720, 720, 720));
        Assert.Equal(new[] { 4 }, Releases(500, 640, 600, 721));
        // Growth during the first steps is the working set, never a release.
        Assert.Empty(Releases(100, 2000, 3000));
    }

    [Fact]
    public void The_budget_is_64_MiB_at_least_and_releases_are_8_steps_apart()
    {
        var small = Releases(100, 100, 100, 164, 165);
        Assert.Equal(new[] { 5 }, small);
        // Always above the budget: a release at step 4, then every 8 steps.
        var growing = new long[30];
        for (int i = 0; i < growing.Length; i++) growing[i] = i < 3 ? 400 : 1000;
        Assert.Equal(new[] { 4, 12, 20, 28 }, Releases(growing));
    }

    [Fact]
    public void Without_a_resident_size_nothing_is_released()
    {
        var release = new FreedMemoryRelease(() => 0, () => throw new InvalidOperationException("must not release"));
        for (int i = 0; i < 20; i++) Assert.False(release.AfterStep());
    }

    [Fact]
    public void On_linux_with_glibc_the_heap_trims_and_the_trainer_option_is_off_by_default()
    {
        Assert.False(new TrainerOptions().ReleaseFreedMemory);
        if (ProcessMemory.NativeHeapInUseBytes() is null) return; // not glibc: nothing to trim
        Assert.True(ProcessMemory.TryTrimNativeHeap());
    }

    [Fact]
    public void A_run_that_releases_freed_memory_trains_exactly_as_one_that_does_not()
    {
        double[] Losses(bool release)
        {
            var model = new TinyCausalLm(seed: 99);
            var options = new TrainerOptions { MaxSteps = 12, LearningRate = 3e-3, LossChunkSize = 16, Seed = 5, ReleaseFreedMemory = release };
            using var trainer = new PeftTrainer(model, TrainingFixtures.AllParameters(model), options);
            return trainer.Train(new ExampleBatches(TrainingFixtures.CountingExamples(48, seed: 1), 4, TrainingFixtures.Eos, seed: 3)).Steps.Select(s => s.Loss).ToArray();
        }

        Assert.Equal(Losses(false), Losses(true));
    }
}
