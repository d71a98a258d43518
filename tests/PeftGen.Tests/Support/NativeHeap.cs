using System;
using System.Runtime.InteropServices;

namespace PeftGen.Tests.Support;

/// <summary>
/// Test hygiene and measurement for native memory: what the C heap hands out (libtorch's CPU tensors come from it).
/// Resident memory is a poor leak detector on its own: glibc serves a block from free heap memory left by earlier
/// tests (already resident) before it maps a new one, and its free lists change size from step to step.
/// </summary>
internal static class NativeHeap
{
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

    /// <summary>
    /// Bytes the C heap has handed out and not taken back, over all its arenas (glibc's <c>mallinfo2</c>: in-use
    /// heap blocks plus mapped blocks), or null where that is not available. Unlike resident memory it does not move
    /// with the allocator's free lists, so a step that frees all it allocates shows no growth.
    /// </summary>
    public static long? InUseBytes()
    {
        if (!OperatingSystem.IsLinux()) return null;
        try
        {
            var info = mallinfo2();
            return (long)(info.uordblks + info.hblkhd);
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            return null;
        }
    }

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int malloc_trim(nuint pad);

    [DllImport("libc", EntryPoint = "mallinfo2")]
    private static extern MallInfo2 mallinfo2();

    /// <summary>glibc's <c>struct mallinfo2</c> (2.33 and later): ten <c>size_t</c> fields.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct MallInfo2
    {
        public nuint arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
    }
}
