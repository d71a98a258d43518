using System;
using System.Runtime.InteropServices;

namespace PeftGen.Training;

/// <summary>
/// Keeps freed tensor memory in the process for reuse while training runs, instead of handing it back to the kernel.
/// </summary>
/// <remarks>
/// libtorch's CPU tensors come from <c>malloc</c>. glibc serves every block above its mmap threshold (at most 32 MB)
/// with a fresh <c>mmap</c> and unmaps it on free, so the vocabulary-sized buffers of every training step (a chunk
/// of logits, its softmax, the head's gradient) are page-faulted in and zero-filled by the kernel again each step: on
/// two cores that was a third of a tiny model's step (tests/PeftGen.Benchmarks profiles it). Inside a retention scope
/// large blocks come from the heap and freed ones stay there for the next step (no mmap, no trimming; on threads other
/// than the main one glibc still maps blocks above 64 MB directly, whatever the settings). When the last
/// scope ends, glibc's defaults come back and the free heap is returned to the system (<c>malloc_trim</c>), so a
/// process that trains and then does something else keeps nothing it does not use. The setting is process-wide; it
/// does nothing outside Linux with glibc. <see cref="PeftTrainer"/> opens a scope for each run unless
/// <see cref="TrainerOptions.RetainFreedMemory"/> is false.
/// </remarks>
public static class HeapRetention
{
    private const int TrimThreshold = -1; // M_TRIM_THRESHOLD
    private const int MmapMax = -4; // M_MMAP_MAX
    private const int DefaultTrimThreshold = 128 * 1024; // glibc's defaults
    private const int DefaultMmapMax = 65536;
    private static readonly object Gate = new();
    private static readonly Lazy<bool> Available = new(Probe);
    private static int depth;

    /// <summary>Whether this process's C library is glibc (the only one retention applies to).</summary>
    public static bool IsAvailable => Available.Value;

    /// <summary>Whether a retention scope is open.</summary>
    public static bool IsActive
    {
        get
        {
            lock (Gate) return depth > 0 && IsAvailable;
        }
    }

    /// <summary>Opens a retention scope (scopes nest; the last one to end restores the defaults). A no-op where not available.</summary>
    public static IDisposable Enter()
    {
        lock (Gate)
        {
            if (depth++ == 0 && IsAvailable)
            {
                mallopt(MmapMax, 0);
                mallopt(TrimThreshold, int.MaxValue);
            }
        }
        return new Scope();
    }

    /// <summary>Returns the free part of the heap to the system now (<c>malloc_trim</c>); false where not available.</summary>
    public static bool ReleaseFreeMemory()
    {
        if (!IsAvailable) return false;
        malloc_trim(0);
        return true;
    }

    private static void Exit()
    {
        lock (Gate)
        {
            if (depth == 0) throw new InvalidOperationException("More retention scopes ended than began.");
            if (--depth == 0 && IsAvailable)
            {
                mallopt(MmapMax, DefaultMmapMax);
                mallopt(TrimThreshold, DefaultTrimThreshold);
                malloc_trim(0);
            }
        }
    }

    private static bool Probe()
    {
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            // gnu_get_libc_version exists in glibc only; mallopt and malloc_trim come with it.
            return gnu_get_libc_version() != IntPtr.Zero;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            return false;
        }
    }

    private sealed class Scope : IDisposable
    {
        private bool disposed;

        public void Dispose()
        {
            if (disposed) return;
            disposed = true;
            Exit();
        }
    }

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int mallopt(int parameter, int value);

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int malloc_trim(nuint pad);

    [DllImport("libc", EntryPoint = "gnu_get_libc_version")]
    private static extern IntPtr gnu_get_libc_version();
}
