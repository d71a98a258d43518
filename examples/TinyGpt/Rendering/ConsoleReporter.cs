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

    private static readonly System.Collections.Generic.HashSet<string> Warned = [];

    /// <summary>Prints a warning the first time this process is given its text; the same text again prints nothing.</summary>
    public static void WarnOnce(string text)
    {
        lock (Warned)
        {
            if (!Warned.Add(text)) return;
        }
        Info($"Warning: {text}");
    }

    /// <summary>
    /// Runs <paramref name="run"/> (a call of <paramref name="trainer"/>'s <c>Train</c>) with a progress display fed by the
    /// trainer's <see cref="PeftTrainer.StepCompleted"/> events, and prints its warnings.
    /// </summary>
    public static TrainingResult Training(string label, PeftTrainer trainer, Func<TrainingResult> run)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        ArgumentNullException.ThrowIfNull(run);
        // A warning before the first step is about the settings (an emulated precision), the same for every run: said once.
        EventHandler<TrainingWarning> warn = (_, warning) =>
        {
            if (warning.Step == 0) WarnOnce(warning.Message);
            else Info($"  {label}: {warning.Message}");
        };
        trainer.Warning += warn;
        try
        {
            return Interactive ? WithProgressBar(label, trainer, run) : WithLines(label, trainer, run);
        }
        finally
        {
            trainer.Warning -= warn;
        }
    }

    private static TrainingResult WithLines(string label, PeftTrainer trainer, Func<TrainingResult> run)
    {
        EventHandler<TrainingStep> print = (_, step) =>
        {
            var every = Math.Max(1, step.TotalSteps / 10);
            if (step.Step % every == 0 || step.Step == step.TotalSteps)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {label}: step {step.Step}/{step.TotalSteps} loss {step.Loss:F4} lr {step.LearningRate:G3} {step.TokensPerSecond:F0} tok/s"));
        };
        trainer.StepCompleted += print;
        try
        {
            return run();
        }
        finally
        {
            trainer.StepCompleted -= print;
        }
    }

    private static TrainingResult WithProgressBar(string label, PeftTrainer trainer, Func<TrainingResult> run)
    {
        TrainingResult result = null!;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                ProgressTask? task = null;
                EventHandler<TrainingStep> show = (_, step) =>
                {
                    task ??= ctx.AddTask(Markup.Escape(label), maxValue: step.TotalSteps);
                    task.Value = step.Step;
                    task.Description = Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                        $"{label} loss {step.Loss:F3} {step.TokensPerSecond:F0} tok/s"));
                };
                trainer.StepCompleted += show;
                try
                {
                    result = run();
                }
                finally
                {
                    trainer.StepCompleted -= show;
                }
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
