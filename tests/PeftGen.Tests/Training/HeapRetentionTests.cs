using System;
using System.IO;
using PeftGen.Training;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Training;

[Collection(nameof(SerialTorchTests))]
public sealed class HeapRetentionTests
{
    // Above glibc's largest mmap threshold (32 MB), below the 64 MB a thread's own arena can hold (xunit runs tests off
    // the main thread; glibc maps larger blocks of such threads directly whatever the settings).
    private const long BigBlockBytes = 48L * 1024 * 1024;

    /// <summary>Resident growth (bytes) left after allocating and freeing a big tensor.</summary>
    private static long ResidentGrowthAfterFree()
    {
        HeapRetention.ReleaseFreeMemory();
        long before = ProcessMemory.CurrentResidentBytes();
        using (var big = ones(BigBlockBytes / sizeof(float)))
        {
            Assert.Equal(big.NumberOfElements, big.sum().item<float>());
        }
        return ProcessMemory.CurrentResidentBytes() - before;
    }

    [Fact]
    public void Inside_a_scope_freed_big_blocks_stay_resident_and_afterwards_they_go_back()
    {
        // This machine and CI run Linux with glibc, where retention must really work.
        bool glibc = OperatingSystem.IsLinux() && File.Exists("/proc/self/status") && Directory.Exists("/lib/x86_64-linux-gnu");
        if (glibc) Assert.True(HeapRetention.IsAvailable);
        if (!HeapRetention.IsAvailable) return;

        Assert.False(HeapRetention.IsActive);
        ResidentGrowthAfterFree(); // first use of torch's allocator and kernels
        long outside = ResidentGrowthAfterFree();
        Assert.True(outside < BigBlockBytes / 4, $"without retention a freed big block is unmapped (+{outside} B resident)");
        using (HeapRetention.Enter())
        {
            using (HeapRetention.Enter()) Assert.True(HeapRetention.IsActive);
            Assert.True(HeapRetention.IsActive, "scopes nest: the outer one is still open");
            long inside = ResidentGrowthAfterFree();
            Assert.True(inside > BigBlockBytes * 3 / 4, $"inside a scope the freed block stays for reuse (+{inside} B resident)");
        }
        Assert.False(HeapRetention.IsActive);
        long afterScope = ProcessMemory.CurrentResidentBytes();
        Assert.True(ResidentGrowthAfterFree() < BigBlockBytes / 4, "defaults come back when the last scope ends");
        Assert.True(afterScope > 0);
    }
}
