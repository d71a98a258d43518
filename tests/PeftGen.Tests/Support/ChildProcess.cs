using System;
using System.Diagnostics;
using System.IO;
using Xunit;

namespace PeftGen.Tests.Support;

/// <summary>Starts one of the test output's helper programs (a project the tests reference) as a child process.</summary>
internal static class ChildProcess
{
    /// <summary>
    /// Runs <paramref name="helper"/>.dll from the test output folder with <paramref name="arguments"/>, with standard output
    /// and error redirected (and standard input when <paramref name="redirectInput"/>).
    /// </summary>
    public static Process Start(string helper, bool redirectInput, params string[] arguments)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, helper + ".dll");
        Assert.True(File.Exists(dll), $"the helper is missing from the test output: {dll}");
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardInput = redirectInput,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(dll);
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        return Process.Start(start)!;
    }
}
