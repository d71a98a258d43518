using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using Spectre.Console;
using TinyGpt.Jobs;

namespace TinyGpt.Rendering;

/// <summary>The comparison as a console table, JSON, Markdown and a PNG of the loss curves.</summary>
public static class Reports
{
    private static readonly string[] Headers =
    [
        "Method", "Trainable params", "Trainable %", "Base weights", "Peak memory", "Median step", "Tokens/s",
        "Val loss", "ROUGE-1", "ROUGE-2", "ROUGE-L",
    ];

    /// <summary>One row of cells per method, formatted for people.</summary>
    public static IReadOnlyList<string[]> Rows(IReadOnlyList<MethodResult> results) => results.Select(r => new[]
    {
        r.Method,
        r.TrainableParameters.ToString("N0", CultureInfo.InvariantCulture),
        r.TrainablePercent.ToString("F4", CultureInfo.InvariantCulture),
        Bytes(r.BaseWeightBytes),
        Bytes(r.PeakTrainingBytes),
        $"{r.MedianStepSeconds.ToString("F3", CultureInfo.InvariantCulture)} s",
        r.TokensPerSecond.ToString("F0", CultureInfo.InvariantCulture),
        r.ValidationLoss.ToString("F4", CultureInfo.InvariantCulture),
        r.Rouge1.ToString("F4", CultureInfo.InvariantCulture),
        r.Rouge2.ToString("F4", CultureInfo.InvariantCulture),
        r.RougeL.ToString("F4", CultureInfo.InvariantCulture),
    }).ToList();

    /// <summary>Prints the table.</summary>
    public static void PrintTable(IReadOnlyList<MethodResult> results)
    {
        var table = new Table().Border(TableBorder.Rounded);
        foreach (var header in Headers) table.AddColumn(new TableColumn(header).RightAligned());
        foreach (var row in Rows(results)) table.AddRow(row.Select(Markup.Escape).ToArray());
        AnsiConsole.Write(table);
    }

    /// <summary>The table in Markdown.</summary>
    public static string Markdown(IReadOnlyList<MethodResult> results)
    {
        var md = new StringBuilder();
        md.AppendLine("| " + string.Join(" | ", Headers) + " |");
        md.AppendLine("|" + string.Concat(Enumerable.Repeat(" --- |", Headers.Length)));
        foreach (var row in Rows(results)) md.AppendLine("| " + string.Join(" | ", row) + " |");
        return md.ToString();
    }

    /// <summary>Writes <c>comparison.json</c>, <c>comparison.md</c> and <c>loss.png</c>; returns their paths.</summary>
    public static IReadOnlyList<string> Write(string folder, CompareReport report)
    {
        var json = Path.Combine(folder, "comparison.json");
        File.WriteAllText(json, JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
        var md = Path.Combine(folder, "comparison.md");
        File.WriteAllText(md, $"# PeftGen comparison ({report.Machine}, {report.Date})\n\n{report.Settings}\n\n{Markdown(report.Methods)}");
        var png = Path.Combine(folder, "loss.png");
        LossPlot.Save(png, report.Methods);
        return [json, md, png];
    }

    private static string Bytes(long bytes) => bytes <= 0
        ? "n/a"
        : bytes >= 1 << 30
            ? (bytes / (double)(1 << 30)).ToString("F2", CultureInfo.InvariantCulture) + " GiB"
            : (bytes / (double)(1 << 20)).ToString("F1", CultureInfo.InvariantCulture) + " MiB";
}

/// <summary>Everything a compare run measured, as written to JSON.</summary>
public sealed record CompareReport(string Date, string Machine, string Settings, double BasePerplexity, bool BaseReused,
    IReadOnlyList<MethodResult> Methods, double TotalSeconds);
