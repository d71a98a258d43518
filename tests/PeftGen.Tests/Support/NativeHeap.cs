using System;
using System.Runtime.InteropServices;

namespace PeftGen.Tests.Support;

/// <summary>
/// Test hygiene for resident-memory measurements: glibc serves a block from free heap memory left by earlier tests
/// (already resident) before it maps a new one, so a test that reads growth of resident memory first gives that free
/// memory back. (What the C heap has in use, which free memory does not move, is
/// <see cref="PeftGen.Training.ProcessMemory.NativeHeapInUseBytes"/>.)
/// </summary>
internal static class NativeHeap
{
    /// <summary>
    /// Before a test reads process memory: finalizes what earlier tests left to finalizers (so the finalizer thread
    /// does not free their tensors while the test reads) and gives the C heap's free memory back (so it cannot serve
    /// the test's allocations from pages already resident).
    /// </summary>
    public static void Settle()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        Trim();
    }

    /// <summary>
    /// Peak resident growth while <paramref name="step"/> runs, inside a dispose scope of its own, after
    /// <see cref="Settle"/>; -1 where the peak cannot be reset (no <c>/proc/self/clear_refs</c>).
    /// </summary>
    public static long PeakGrowth(Action step)
    {
        ArgumentNullException.ThrowIfNull(step);
        Settle();
        if (!PeftGen.Training.ProcessMemory.TryResetPeak()) return -1;
        long before = PeftGen.Training.ProcessMemory.CurrentResidentBytes();
        using (TorchSharp.torch.NewDisposeScope()) step();
        return PeftGen.Training.ProcessMemory.PeakResidentBytes() - before;
    }

    /// <summary>Returns the free part of the C heap to the system (<c>malloc_trim(0)</c>); a no-op outside glibc.</summary>
    public static void Trim()
    {
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            malloc_trim(0);
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
        }
    }

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int malloc_trim(nuint pad);
}
