using System;
using System.IO;
using System.Runtime.InteropServices;

namespace PeftGen.Training;

/// <summary>
/// Cheap readings of this process's memory: resident memory from <c>/proc/self/status</c> (Linux; 0 elsewhere), and
/// what the C heap has handed out (glibc), where libtorch's CPU tensors live.
/// </summary>
public static class ProcessMemory
{
    /// <summary>Peak resident set size in bytes (<c>VmHWM</c>), or 0 where /proc is not available.</summary>
    public static long PeakResidentBytes() => ReadStatusKilobytes("VmHWM:") * 1024;

    /// <summary>Current resident set size in bytes (<c>VmRSS</c>), or 0 where /proc is not available.</summary>
    public static long CurrentResidentBytes() => ReadStatusKilobytes("VmRSS:") * 1024;

    /// <summary>
    /// Resets the peak (<c>VmHWM</c>) to the current resident size by writing 5 to <c>/proc/self/clear_refs</c>,
    /// so a later <see cref="PeakResidentBytes"/> measures one phase. Returns false where that is not possible.
    /// </summary>
    public static bool TryResetPeak()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            return false;
        }
    }

    /// <summary>
    /// Bytes the C heap has handed out and not taken back, over all its arenas (glibc's <c>mallinfo2</c>: in-use heap
    /// blocks plus mapped blocks), or null where that is not available (not glibc, or glibc before 2.33). libtorch
    /// allocates CPU tensors there, so this counts live tensors' storage, without the allocator's free memory that
    /// resident memory also counts; it is a snapshot, not a peak.
    /// </summary>
    public static long? NativeHeapInUseBytes()
    {
        if (!OperatingSystem.IsLinux() || noMallinfo2) return null;
        try
        {
            var info = mallinfo2();
            return (long)(info.uordblks + info.hblkhd);
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            noMallinfo2 = true;
            return null;
        }
    }

    private static bool noMallinfo2;

    /// <summary>
    /// Hands the pages of the C heap's free memory back to the system (glibc's <c>malloc_trim(0)</c>, which also
    /// releases whole free pages inside the heap, not only at its top), so resident memory falls to what is in use plus
    /// the allocator's bookkeeping. Returns false where that is not available (not Linux or not glibc). The memory stays
    /// the heap's: a later allocation there touches fresh pages again.
    /// </summary>
    public static bool TryTrimNativeHeap()
    {
        if (!OperatingSystem.IsLinux() || noMallocTrim) return false;
        try
        {
            malloc_trim(0);
            return true;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            noMallocTrim = true;
            return false;
        }
    }

    private static bool noMallocTrim;

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

    private static long ReadStatusKilobytes(string key)
    {
        const string path = "/proc/self/status";
        if (!File.Exists(path)) return 0;
        foreach (var line in File.ReadLines(path))
        {
            if (!line.StartsWith(key, StringComparison.Ordinal)) continue;
            var parts = line.Substring(key.Length).Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return parts.Length > 0 && long.TryParse(parts[0], out var kb) ? kb : 0;
        }
        return 0;
    }
}
