using System;
using System.Collections.Generic;
using System.CommandLine.Parsing;
using System.IO;
using System.Linq;
using TinyGpt.Jobs;

namespace TinyGpt.Rendering;

/// <summary>
/// What the command line prints when a command cannot finish: one line per mistake in the input; a short message
/// and a hint for a failure of the program; the stack trace only when <c>--verbose</c> asks for it.
/// </summary>
public static class ErrorReport
{
    private const string VerboseHint = "TinyGpt did not expect this (a bug, or the machine: memory, disk); run again with --verbose for the stack trace.";

    /// <summary>Writes each error of the command line (an unknown option, a bad value) as one line.</summary>
    public static void ParseErrors(IReadOnlyList<ParseError> errors, TextWriter error)
    {
        // An option shared by the root and a command is validated for each: say it once.
        foreach (var message in errors.Select(e => OneLine(e.Message)).Distinct(StringComparer.Ordinal)) error.WriteLine($"error: {message}");
    }

    /// <summary>Writes a mistake in the input as one line, and with <paramref name="verbose"/> the exception and its causes.</summary>
    public static void InputError(UserInputException exception, bool verbose, TextWriter error)
    {
        error.WriteLine($"error: {OneLine(exception.Message)}");
        if (verbose) error.WriteLine(exception);
    }

    /// <summary>Writes an unexpected exception: its type and first line, then the stack trace with <paramref name="verbose"/>, else how to get it.</summary>
    public static void Failure(Exception exception, bool verbose, TextWriter error)
    {
        error.WriteLine($"error: {exception.GetType().FullName}: {FirstLine(exception.Message)}");
        error.WriteLine(verbose ? exception.ToString() : VerboseHint);
    }

    private static string OneLine(string text) =>
        string.Join(' ', text.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    private static string FirstLine(string text)
    {
        var end = text.IndexOfAny(['\r', '\n']);
        return end < 0 ? text : text[..end] + " …";
    }
}
