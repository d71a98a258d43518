using System;
using System.IO;

namespace PeftGen.Training;

/// <summary>Cheap readings of this process's resident memory from <c>/proc/self/status</c> (Linux; 0 elsewhere).</summary>
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
