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

/// <summary>The comparison as a console table (Markdown when output is redirected), JSON, Markdown and a PNG of the loss curves.</summary>
public static class Reports
{
    private static readonly string[] Headers =
    [
        "Method", "Trainable params", "Trainable %", "Base weights", "Peak memory", "Median step", "Tokens/s",
        "Val loss", "ROUGE-1 [95% CI]", "ROUGE-1 greedy", "ROUGE-2", "ROUGE-L", "Empty/degenerate",
    ];

    private static readonly string[] TrainingHeaders = ["Method", "Learning rate", "Steps", "Records (each once)", "Scored checkpoint (step)", "Compute"];

    /// <summary>One row of cells per baseline and method, formatted for people.</summary>
    public static IReadOnlyList<string[]> Rows(IReadOnlyList<BaselineResult> baselines, IReadOnlyList<MethodResult> methods) =>
        baselines.Select(b => new[] { b.Name, "0", "0", "—", "—", "—", "—" }.Concat(ScoreCells(b.Scores)).ToArray())
            .Concat(methods.Select(r => new[]
            {
                r.Method,
                r.TrainableParameters.ToString("N0", CultureInfo.InvariantCulture),
                r.TrainablePercent.ToString("F4", CultureInfo.InvariantCulture),
                Bytes(r.BaseWeightBytes),
                Bytes(r.PeakTrainingBytes),
                $"{r.MedianStepSeconds.ToString("F3", CultureInfo.InvariantCulture)} s",
                r.TokensPerSecond.ToString("F0", CultureInfo.InvariantCulture),
            }.Concat(ScoreCells(r.Scores)).ToArray()))
            .ToList();

    /// <summary>How each method trained.</summary>
    public static IReadOnlyList<string[]> TrainingRows(IReadOnlyList<MethodResult> methods) => methods.Select(r => new[]
    {
        r.Method,
        r.LearningRate.ToString("G3", CultureInfo.InvariantCulture),
        r.Steps.ToString(CultureInfo.InvariantCulture),
        r.TrainRecords.ToString("N0", CultureInfo.InvariantCulture),
        r.SelectedStep.ToString(CultureInfo.InvariantCulture),
        r.ComputeDType,
    }).ToList();

    /// <summary>Prints the table: boxed on a terminal, Markdown (which fits any width and parses) when redirected.</summary>
    public static void PrintTable(IReadOnlyList<BaselineResult> baselines, IReadOnlyList<MethodResult> methods)
    {
        if (Console.IsOutputRedirected || !AnsiConsole.Profile.Capabilities.Interactive)
        {
            WriteMarkdown(Console.Out, baselines, methods);
            return;
        }
        AnsiConsole.Write(Table(Headers, Rows(baselines, methods)));
        AnsiConsole.Write(Table(TrainingHeaders, TrainingRows(methods)));
    }

    /// <summary>Both tables in Markdown, as redirected output shows them: no width limit, one row per line.</summary>
    public static void WriteMarkdown(TextWriter writer, IReadOnlyList<BaselineResult> baselines, IReadOnlyList<MethodResult> methods)
    {
        writer.WriteLine();
        writer.Write(Markdown(Headers, Rows(baselines, methods)));
        writer.WriteLine();
        writer.Write(Markdown(TrainingHeaders, TrainingRows(methods)));
        writer.WriteLine();
    }

    /// <summary>A table in Markdown.</summary>
    public static string Markdown(IReadOnlyList<string> headers, IReadOnlyList<string[]> rows)
    {
        var md = new StringBuilder();
        md.AppendLine("| " + string.Join(" | ", headers) + " |");
        md.AppendLine("|" + string.Concat(Enumerable.Repeat(" --- |", headers.Count)));
        foreach (var row in rows) md.AppendLine("| " + string.Join(" | ", row.Select(c => c.Replace("|", "\\|", StringComparison.Ordinal))) + " |");
        return md.ToString();
    }

    /// <summary>Writes <c>comparison.json</c>, <c>comparison.md</c> and <c>loss.png</c>; returns their paths.</summary>
    public static IReadOnlyList<string> Write(string folder, CompareReport report)
    {
        var json = Path.Combine(folder, "comparison.json");
        File.WriteAllText(json, JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals }));
        var md = Path.Combine(folder, "comparison.md");
        var b = report.Base;
        var text = new StringBuilder()
            .AppendLine($"# PeftGen comparison ({report.Machine}, {report.Date})")
            .AppendLine()
            .AppendLine(report.Settings)
            .AppendLine()
            .AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"Base: {(report.ShippedBase ? "the shipped base" : "pretrained by this run")}, {b.Parameters:N0} parameters, {b.Steps} steps, {b.TokensSeen:N0} tokens seen, held-out loss {b.HeldOutLoss:F3} (perplexity {b.HeldOutPerplexity:F1}, {b.HeldOutBitsPerByte:F3} bits per byte). Compute: {report.ComputeDType}."))
            .AppendLine()
            .Append(Markdown(Headers, Rows(report.Baselines, report.Methods)))
            .AppendLine()
            .Append(Markdown(TrainingHeaders, TrainingRows(report.Methods)))
            .AppendLine()
            .AppendLine("Constant answer: " + report.Baselines.FirstOrDefault()?.Description);
        if (report.AgainstConstant.Count > 0) text.AppendLine().AppendLine(AgainstConstantLine(report.AgainstConstant));
        File.WriteAllText(md, text.ToString());
        var png = Path.Combine(folder, "loss.png");
        LossPlot.Save(png, report.Methods);
        return [json, md, png];
    }

    /// <summary>One sentence: each row's records above, equal to and below the constant answer's ROUGE-1.</summary>
    public static string AgainstConstantLine(IReadOnlyList<RecordComparison> rows) =>
        "Against the constant answer, record by record (ROUGE-1; above / same / below): " +
        string.Join("; ", rows.Select(r => $"{r.Row} {r.Above} / {r.Equal} / {r.Below}")) + ".";

    private static IEnumerable<string> ScoreCells(Scores s) =>
    [
        double.IsNaN(s.ValidationLoss) ? "—" : s.ValidationLoss.ToString("F4", CultureInfo.InvariantCulture),
        string.Create(CultureInfo.InvariantCulture, $"{s.Rouge1.Mean:F4} [{s.Rouge1.Lower:F3}, {s.Rouge1.Upper:F3}]"),
        double.IsNaN(s.GreedyRouge1) ? "—" : s.GreedyRouge1.ToString("F4", CultureInfo.InvariantCulture),
        s.Rouge2.ToString("F4", CultureInfo.InvariantCulture),
        s.RougeL.ToString("F4", CultureInfo.InvariantCulture),
        string.Create(CultureInfo.InvariantCulture, $"{s.Empty + s.Degenerate}/{s.Records} ({100 * s.BadFraction:F1} %)"),
    ];

    private static Table Table(IReadOnlyList<string> headers, IReadOnlyList<string[]> rows)
    {
        var table = new Table().Border(TableBorder.Rounded);
        foreach (var header in headers) table.AddColumn(new TableColumn(header).RightAligned());
        foreach (var row in rows) table.AddRow(row.Select(Markup.Escape).ToArray());
        return table;
    }

    private static string Bytes(long bytes) => bytes <= 0
        ? "n/a"
        : bytes >= 1 << 30
            ? (bytes / (double)(1 << 30)).ToString("F2", CultureInfo.InvariantCulture) + " GiB"
            : (bytes / (double)(1 << 20)).ToString("F1", CultureInfo.InvariantCulture) + " MiB";
}

/// <summary>Everything a compare run measured, as written to JSON.</summary>
/// <param name="Date">When it ran.</param>
/// <param name="Machine">Cores, OS and torch threads.</param>
/// <param name="Settings">The run's sizes in words.</param>
/// <param name="ComputeDType">The dtype of the matrix products (training and generation).</param>
/// <param name="Base">How the base was made and its held-out quality.</param>
/// <param name="ShippedBase">True when the base that ships with the example was used.</param>
/// <param name="Baselines">Rows that train nothing.</param>
/// <param name="Methods">The fine-tuned rows.</param>
/// <param name="AgainstConstant">Every row that generates (the untuned base and each method) against the constant answer, record by record.</param>
/// <param name="TotalSeconds">Wall time of the job.</param>
public sealed record CompareReport(string Date, string Machine, string Settings, string ComputeDType, BaseRecipe Base, bool ShippedBase,
    IReadOnlyList<BaselineResult> Baselines, IReadOnlyList<MethodResult> Methods, IReadOnlyList<RecordComparison> AgainstConstant, double TotalSeconds);
