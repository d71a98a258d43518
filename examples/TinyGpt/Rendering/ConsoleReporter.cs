using System;
using System.Globalization;
using PeftGen.Training;
using Spectre.Console;

namespace TinyGpt.Rendering;

/// <summary>
/// Shows long loops: a Spectre.Console progress bar with loss, tokens/s and ETA on a terminal; a plain line every
/// tenth of the loop when output is redirected (logs, CI).
/// </summary>
public static class ConsoleReporter
{
    private static bool Interactive => !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

    /// <summary>Prints a stage heading.</summary>
    public static void Stage(string text)
    {
        if (Interactive) AnsiConsole.MarkupLine($"[bold]{Markup.Escape(text)}[/]");
        else Console.WriteLine($"== {text}");
    }

    /// <summary>Prints a line of information.</summary>
    public static void Info(string text)
    {
        if (Interactive) AnsiConsole.MarkupLine($"[grey]{Markup.Escape(text)}[/]");
        else Console.WriteLine(text);
    }

    /// <summary>Runs a training loop with a progress display fed by <see cref="TrainingStep"/> reports.</summary>
    public static T Training<T>(string label, int totalSteps, Func<IProgress<TrainingStep>, T> work)
    {
        if (!Interactive)
        {
            var every = Math.Max(1, totalSteps / 10);
            return work(new SynchronousProgress<TrainingStep>(step =>
            {
                if (step.Step % every == 0 || step.Step == step.TotalSteps)
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"  {label}: step {step.Step}/{step.TotalSteps} loss {step.Loss:F4} lr {step.LearningRate:G3} {step.TokensPerSecond:F0} tok/s"));
            }));
        }

        T result = default!;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(label), maxValue: totalSteps);
                result = work(new SynchronousProgress<TrainingStep>(step =>
                {
                    task.Value = step.Step;
                    task.Description = Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                        $"{label} loss {step.Loss:F3} {step.TokensPerSecond:F0} tok/s"));
                }));
            });
        return result;
    }

    /// <summary>Runs a counted loop (generation, evaluation) with a progress display.</summary>
    public static T Counted<T>(string label, int total, Func<IProgress<int>, T> work)
    {
        if (!Interactive)
        {
            var result = work(new SynchronousProgress<int>(_ => { }));
            Console.WriteLine($"  {label}: {total}/{total}");
            return result;
        }

        T value = default!;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(label), maxValue: Math.Max(1, total));
                value = work(new SynchronousProgress<int>(done => task.Value = done));
            });
        return value;
    }

    /// <summary>An <see cref="IProgress{T}"/> that reports on the calling thread (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SynchronousProgress<TValue>(Action<TValue> report) : IProgress<TValue>
    {
        public void Report(TValue value) => report(value);
    }
}
