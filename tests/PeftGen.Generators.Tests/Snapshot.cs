using System;
using System.IO;
using Xunit;

namespace PeftGen.Generators.Tests;

/// <summary>
/// Compares generated code with a checked-in <c>Snapshots/{name}.verified.cs</c>. On a mismatch it writes
/// <c>{name}.received.cs</c> beside it and fails; with <c>PEFTGEN_ACCEPT_SNAPSHOTS=1</c> it accepts the new text.
/// </summary>
internal static class Snapshot
{
    public static void Verify(string name, string actual)
    {
        var directory = RepositoryPaths.Snapshots;
        var verifiedPath = Path.Combine(directory, name + ".verified.cs");
        var receivedPath = Path.Combine(directory, name + ".received.cs");
        actual = actual.Replace("\r\n", "\n");

        if (Environment.GetEnvironmentVariable("PEFTGEN_ACCEPT_SNAPSHOTS") == "1")
        {
            Directory.CreateDirectory(Path.GetDirectoryName(verifiedPath)!);
            File.WriteAllText(verifiedPath, actual);
            if (File.Exists(receivedPath)) File.Delete(receivedPath);
            return;
        }

        var expected = File.Exists(verifiedPath) ? File.ReadAllText(verifiedPath).Replace("\r\n", "\n") : null;
        if (expected == actual)
        {
            if (File.Exists(receivedPath)) File.Delete(receivedPath);
            return;
        }

        Directory.CreateDirectory(Path.GetDirectoryName(receivedPath)!);
        File.WriteAllText(receivedPath, actual);
        Assert.Fail(expected is null
            ? $"No verified snapshot {verifiedPath}; wrote {receivedPath}. Review it and rename it to .verified.cs (or run with PEFTGEN_ACCEPT_SNAPSHOTS=1)."
            : $"Generated code differs from {verifiedPath}; wrote {receivedPath}. Diff them, then accept with PEFTGEN_ACCEPT_SNAPSHOTS=1 if the change is intended.");
    }
}
