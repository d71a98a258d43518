using System;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace PeftGen.IO;

/// <summary>
/// Writes files so that a reader sees either the previous complete file or the new complete file, never a torn one:
/// the content goes to a temporary file in the same folder, is flushed to the disk, then renamed over the target.
/// </summary>
/// <remarks>
/// Temporary files are named <c>.{target name}.tmp-{32 hex digits}</c>. A crash can leave one behind; readers never
/// open them (they do not carry the target's name), and <see cref="CleanStaleTemps"/> removes them.
/// </remarks>
public static partial class AtomicFile
{
    private const int BufferSize = 1 << 20;

    /// <summary>Replaces <paramref name="path"/> atomically with what <paramref name="write"/> writes.</summary>
    /// <param name="path">The target file. Its folder is created if missing.</param>
    /// <param name="write">Writes the whole new content to the stream it is given (do not dispose the stream).</param>
    /// <remarks>If <paramref name="write"/> throws, the temporary file is deleted and the old file is left untouched.</remarks>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(write);
        var target = Path.GetFullPath(path);
        var folder = Path.GetDirectoryName(target) ?? throw new ArgumentException($"'{path}' has no parent folder.", nameof(path));
        var name = Path.GetFileName(target);
        if (name.Length == 0)
            throw new ArgumentException($"'{path}' names a folder, not a file.", nameof(path));
        Directory.CreateDirectory(folder);

        var temp = Path.Combine(folder, TempName(name));
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, BufferSize))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, target, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
        FlushFolder(folder);
    }

    /// <summary>Atomically replaces <paramref name="path"/> with <paramref name="text"/> in UTF-8 (no byte order mark).</summary>
    /// <param name="path">The target file.</param>
    /// <param name="text">The whole new content.</param>
    public static void WriteAllText(string path, string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        WriteAllBytes(path, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetBytes(text));
    }

    /// <summary>Atomically replaces <paramref name="path"/> with <paramref name="bytes"/>.</summary>
    /// <param name="path">The target file.</param>
    /// <param name="bytes">The whole new content.</param>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        var copy = bytes.ToArray();
        Write(path, stream => stream.Write(copy, 0, copy.Length));
    }

    /// <summary>
    /// Deletes the temporary files that interrupted writes left in <paramref name="folder"/>.
    /// </summary>
    /// <param name="folder">The folder to clean; nothing happens if it does not exist.</param>
    /// <param name="minimumAge">
    /// Only temps not modified for at least this long are deleted, so that a write in progress in another process
    /// is not disturbed. The default (zero) deletes every temp: call it when no other writer uses the folder.
    /// </param>
    /// <returns>The number of files deleted.</returns>
    public static int CleanStaleTemps(string folder, TimeSpan minimumAge = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        if (minimumAge < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(minimumAge), minimumAge, "The minimum age cannot be negative.");
        if (!Directory.Exists(folder))
            return 0;

        var deleted = 0;
        var now = DateTime.UtcNow;
        foreach (var file in Directory.EnumerateFiles(folder, ".*.tmp-*"))
        {
            if (!IsTempName(Path.GetFileName(file)))
                continue;
            if (now - File.GetLastWriteTimeUtc(file) < minimumAge)
                continue;
            if (TryDelete(file))
                deleted++;
        }
        return deleted;
    }

    /// <summary>Whether <paramref name="fileName"/> is a temporary file name that <see cref="Write"/> uses.</summary>
    /// <param name="fileName">A file name without folder.</param>
    /// <returns><see langword="true"/> for names of the form <c>.{name}.tmp-{32 hex digits}</c>.</returns>
    public static bool IsTempName(string fileName) => TempNamePattern().IsMatch(fileName);

    // The rename lives in the folder's entries: without syncing the folder, a power loss can forget it even though the
    // file's bytes are on disk. Best effort: a folder that cannot be opened only loses that extra durability.
    private static void FlushFolder(string folder)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
            return;
        try
        {
            var descriptor = Posix.open(folder, 0);
            if (descriptor < 0)
                return;
            Posix.fsync(descriptor);
            Posix.close(descriptor);
        }
        catch (DllNotFoundException)
        {
        }
        catch (EntryPointNotFoundException)
        {
        }
    }

    private static partial class Posix
    {
        [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        internal static partial int open(string path, int flags);

        [LibraryImport("libc", SetLastError = true)]
        internal static partial int fsync(int descriptor);

        [LibraryImport("libc", SetLastError = true)]
        internal static partial int close(int descriptor);
    }

    private static string TempName(string targetName) => $".{targetName}.tmp-{Guid.NewGuid():N}";

    private static bool TryDelete(string file)
    {
        try
        {
            File.Delete(file);
            return true;
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    [GeneratedRegex(@"^\..+\.tmp-[0-9a-f]{32}$", RegexOptions.CultureInvariant)]
    private static partial Regex TempNamePattern();
}
