using System;
using PeftGen.Training;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Training;

[Collection(nameof(SerialTorchTests))]
public sealed class ProcessMemoryTests
{
    [Fact]
    public void Native_heap_in_use_counts_a_tensor_while_it_lives_and_not_after()
    {
        if (!OperatingSystem.IsLinux()) return; // glibc's counters only.
        var before = ProcessMemory.NativeHeapInUseBytes();
        Assert.NotNull(before); // Linux with glibc ≥ 2.33 (the supported hosts).
        const long bytes = 48L << 20;
        long during, after;
        using (var tensor = empty(bytes / sizeof(float)))
        {
            during = ProcessMemory.NativeHeapInUseBytes()!.Value;
        }
        after = ProcessMemory.NativeHeapInUseBytes()!.Value;
        // Other threads may allocate a little meanwhile; a 48 MB tensor is far above that.
        Assert.InRange(during - before!.Value, bytes, bytes + (4L << 20));
        Assert.InRange(after - before.Value, -(4L << 20), 4L << 20);
    }
}
