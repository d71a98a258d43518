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
    public static long? NativeHeapInUseBytes() => ReadMallInfo() is { } info ? (long)(info.uordblks + info.hblkhd) : null;

    /// <summary>
    /// Bytes of the C heap's blocks that are mapped from the system one by one (glibc's <c>mallinfo2().hblkhd</c>, the
    /// blocks at or above the mmap threshold), or null where that is not available.
    /// </summary>
    public static long? NativeMappedBytes() => ReadMallInfo() is { } info ? (long)info.hblkhd : null;

    private static MallInfo2? ReadMallInfo()
    {
        if (!OperatingSystem.IsLinux() || noMallinfo2) return null;
        try
        {
            return mallinfo2();
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

    /// <summary>The largest fixed threshold glibc accepts on a 64-bit system (<c>HEAP_MAX_SIZE / 2</c>): 32 MiB.</summary>
    public const long MaximumMmapThresholdBytes = 32L << 20;

    /// <summary>
    /// The threshold this process fixed through <see cref="TrySetNativeMmapThreshold"/>, or null when it has not (or
    /// could not).
    /// </summary>
    public static long? NativeMmapThresholdBytes { get; private set; }

    /// <summary>
    /// Fixes the size from which the C heap serves a block straight from the system (glibc's <c>M_MMAP_THRESHOLD</c>):
    /// blocks of at least <paramref name="bytes"/> are mapped when allocated and unmapped when freed. Fixing it also
    /// stops glibc's own rule, which raises the threshold to the largest mapped block freed so far (up to 32 MiB), after
    /// which such blocks come from the heap between long-lived ones. Process-wide; returns false where that is not
    /// available (not Linux, not glibc), when the process's environment chose a threshold itself
    /// (<c>GLIBC_TUNABLES</c>' <c>glibc.malloc.mmap_threshold</c> or <c>MALLOC_MMAP_THRESHOLD_</c>), which is left as it
    /// is, or when glibc refuses the value.
    /// </summary>
    /// <param name="bytes">The threshold: 1 byte to <see cref="MaximumMmapThresholdBytes"/>.</param>
    public static bool TrySetNativeMmapThreshold(long bytes)
    {
        if (bytes is <= 0 or > MaximumMmapThresholdBytes)
            throw new ArgumentOutOfRangeException(nameof(bytes), bytes, $"The threshold must be between 1 byte and {MaximumMmapThresholdBytes >> 20} MiB.");
        if (!OperatingSystem.IsLinux() || noMallopt || EnvironmentSetsMmapThreshold()) return false;
        if (NativeMmapThresholdBytes == bytes) return true;
        try
        {
            if (mallopt(MallocMmapThreshold, (int)bytes) != 1) return false;
            NativeMmapThresholdBytes = bytes;
            return true;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            noMallopt = true;
            return false;
        }
    }

    /// <summary>
    /// Whether the environment fixes glibc's mmap threshold (<c>GLIBC_TUNABLES</c> naming <c>glibc.malloc.mmap_threshold</c>,
    /// or <c>MALLOC_MMAP_THRESHOLD_</c>): then the process's own choice stands.
    /// </summary>
    internal static bool EnvironmentSetsMmapThreshold()
        => (Environment.GetEnvironmentVariable("GLIBC_TUNABLES")?.Contains("glibc.malloc.mmap_threshold", StringComparison.Ordinal) ?? false)
            || Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_") is not null;

    private static bool noMallopt;

    private const int MallocMmapThreshold = -3;

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int mallopt(int parameter, int value);

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
