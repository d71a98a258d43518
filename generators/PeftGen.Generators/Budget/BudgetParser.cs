using System.Collections.Generic;
using System.Globalization;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Budget;

/// <summary>
/// Reads <c>MemoryBudget</c>, <c>Batch</c> and <c>Sequence</c> of <c>[PeftModel]</c>, and parses sizes strictly: a
/// non-negative decimal number, one space, and a unit (<c>B</c>; <c>KB MB GB TB</c> in powers of 1000;
/// <c>KiB MiB GiB TiB</c> in powers of 1024), giving a positive whole number of bytes.
/// </summary>
internal static class BudgetParser
{
    public const string BudgetArgument = "MemoryBudget", BatchArgument = "Batch", SequenceArgument = "Sequence";

    private static readonly Dictionary<string, decimal> Units = new(System.StringComparer.Ordinal)
    {
        ["B"] = 1m,
        ["KB"] = 1e3m,
        ["MB"] = 1e6m,
        ["GB"] = 1e9m,
        ["TB"] = 1e12m,
        ["KiB"] = 1024m,
        ["MiB"] = 1024m * 1024,
        ["GiB"] = 1024m * 1024 * 1024,
        ["TiB"] = 1024m * 1024 * 1024 * 1024,
    };

    /// <summary>The budget settings; null when the model declares neither a budget nor a sequence.</summary>
    public static BudgetSpec? Parse(AttributeReader model, List<DiagnosticInfo> diagnostics)
    {
        var text = model.IsNull(BudgetArgument) ? "" : model.Named(BudgetArgument, "");
        var batch = model.Named(BatchArgument, 1);
        var sequence = model.Named(SequenceArgument, 0);
        var hasBudget = model.HasNamed(BudgetArgument) && !model.IsNull(BudgetArgument);
        if (!hasBudget && !model.HasNamed(SequenceArgument) && !model.HasNamed(BatchArgument)) return null;

        long bytes = 0;
        if (hasBudget && !TryParseSize(text, out bytes))
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.MalformedBudget, model.NamedSite(BudgetArgument), text));
        if (batch <= 0)
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.BadBatchOrSequence, model.NamedSite(BatchArgument), BatchArgument, batch, NotPositive(BatchArgument)));
        if (model.HasNamed(SequenceArgument) && sequence <= 0)
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.BadBatchOrSequence, model.NamedSite(SequenceArgument), SequenceArgument, sequence, NotPositive(SequenceArgument)));
        if (hasBudget && !model.HasNamed(SequenceArgument))
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.BudgetWithoutSequence, model.NamedSite(BudgetArgument)));
        return new BudgetSpec(text, bytes, batch, sequence, hasBudget ? model.NamedSite(BudgetArgument) : null, model.NamedSite(SequenceArgument));
    }

    private static string NotPositive(string argument) => "is not positive; the memory estimate needs a positive " + argument;

    /// <summary>
    /// Parses <c>"24 GiB"</c>, <c>"1.5 GB"</c>, <c>"512 MiB"</c>: digits with an optional fraction, exactly one space, a
    /// unit from the list (case-sensitive). The result must be a positive whole number of bytes that fits a long.
    /// </summary>
    public static bool TryParseSize(string text, out long bytes)
    {
        bytes = 0;
        var space = text.IndexOf(' ');
        if (space <= 0 || space != text.LastIndexOf(' ')) return false;
        var number = text.Substring(0, space);
        if (!Units.TryGetValue(text.Substring(space + 1), out var unit)) return false;
        var dot = number.IndexOf('.');
        for (var i = 0; i < number.Length; i++)
        {
            if (i == dot) continue;
            if (number[i] < '0' || number[i] > '9') return false;
        }
        if (dot == 0 || dot == number.Length - 1 || number.Length > 20) return false;
        if (!decimal.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value)) return false;
        try
        {
            var total = value * unit;
            if (total <= 0 || total != decimal.Truncate(total) || total > long.MaxValue) return false;
            bytes = (long)total;
            return true;
        }
        catch (System.OverflowException)
        {
            return false;
        }
    }

    /// <summary>A byte count for messages: GiB with two decimals from 1 GiB, else MiB or KiB with one, else bytes (invariant culture).</summary>
    public static string Describe(long bytes)
        => bytes >= 1L << 30 ? (bytes / (double)(1L << 30)).ToString("F2", CultureInfo.InvariantCulture) + " GiB"
            : bytes >= 1L << 20 ? (bytes / (double)(1L << 20)).ToString("F1", CultureInfo.InvariantCulture) + " MiB"
            : bytes >= 1L << 10 ? (bytes / (double)(1L << 10)).ToString("F1", CultureInfo.InvariantCulture) + " KiB"
            : bytes.ToString(CultureInfo.InvariantCulture) + " B";
}
