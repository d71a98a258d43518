using System;
using PeftGen.Tests.Support;
using PeftGen.Training;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Training;

/// <summary>Reads process-wide counters, so it runs alone.</summary>
[Collection(ProcessMemoryCollection.Name)]
public sealed class ProcessMemoryTests
{
    [Fact]
    public void Native_heap_in_use_counts_a_tensor_while_it_lives_and_not_after()
    {
        if (!OperatingSystem.IsLinux()) return; // glibc's counters only.
        // Tensors that earlier tests left to finalizers would be freed between the readings: finalize them now, and let
        // no collection run while this test reads.
        NativeHeap.Settle();
        var noGc = GC.TryStartNoGCRegion(16L << 20);
        var before = ProcessMemory.NativeHeapInUseBytes();
        Assert.NotNull(before); // Linux with glibc ≥ 2.33 (the supported hosts).
        const long bytes = 48L << 20;
        long during, after;
        using (var tensor = empty(bytes / sizeof(float)))
        {
            during = ProcessMemory.NativeHeapInUseBytes()!.Value;
        }
        after = ProcessMemory.NativeHeapInUseBytes()!.Value;
        if (noGc && System.Runtime.GCSettings.LatencyMode == System.Runtime.GCLatencyMode.NoGCRegion) GC.EndNoGCRegion();
        // The runtime's other threads may still allocate or free a little meanwhile; a 48 MB tensor is far above that.
        Assert.InRange(during - before!.Value, bytes - (1L << 20), bytes + (4L << 20));
        Assert.InRange(after - before.Value, -(4L << 20), 4L << 20);
    }
}
