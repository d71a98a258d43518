using System;
using System.IO;
using System.Linq;
using TinyGpt.Rendering;
using Xunit;

namespace TinyGpt.Tests;

/// <summary>The example's console output that is not a table.</summary>
[Collection("torch")]
public sealed class ConsoleReporterTests
{
    [Fact]
    public void A_warning_is_printed_once_however_often_it_is_given()
    {
        string text = $"emulated precision {Guid.NewGuid():N}";
        var captured = new StringWriter();
        var original = Console.Out;
        Console.SetOut(captured);
        try
        {
            ConsoleReporter.WarnOnce(text);
            ConsoleReporter.WarnOnce(text);
            ConsoleReporter.WarnOnce(text + " (another)");
        }
        finally
        {
            Console.SetOut(original);
        }
        var lines = captured.ToString().Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        Assert.Equal(1, lines.Count(l => l == $"Warning: {text}"));
        Assert.Equal(1, lines.Count(l => l == $"Warning: {text} (another)"));
    }
}
