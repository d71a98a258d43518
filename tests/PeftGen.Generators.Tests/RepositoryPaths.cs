using System;
using System.IO;

namespace PeftGen.Generators.Tests;

/// <summary>
/// Finds the repository from the test's output folder (by <c>PeftGen.sln</c>). Not from [CallerFilePath]: CI builds
/// map source paths to <c>/_/</c> for deterministic output.
/// </summary>
internal static class RepositoryPaths
{
    public static string Root { get; } = Find();

    public static string Snapshots => Path.Combine(Root, "tests", "PeftGen.Generators.Tests", "Snapshots");

    private static string Find()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(Path.Combine(folder.FullName, "PeftGen.sln"))) return folder.FullName;
        }
        throw new InvalidOperationException($"PeftGen.sln not found above {AppContext.BaseDirectory}.");
    }
}
