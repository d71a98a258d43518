using System.Collections.Generic;
using System.Linq;
using TinyGpt.Jobs;

namespace TinyGpt.Rendering;

/// <summary>Training and validation loss per method, as one PNG.</summary>
public static class LossPlot
{
    /// <summary>Saves the plot.</summary>
    public static void Save(string path, IReadOnlyList<MethodResult> results)
    {
        var plot = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        for (int i = 0; i < results.Count; i++)
        {
            var r = results[i];
            var color = palette.GetColor(i);
            var steps = Enumerable.Range(1, r.LossCurve.Length).Select(s => (double)s).ToArray();
            var train = plot.Add.Scatter(steps, Smooth(r.LossCurve, 5));
            train.LegendText = $"{r.Method} (train)";
            train.Color = color;
            train.MarkerSize = 0;
            if (r.ValidationCurve.Length > 0)
            {
                var valid = plot.Add.Scatter(r.ValidationCurve.Select(v => (double)v.Step).ToArray(), r.ValidationCurve.Select(v => v.Loss).ToArray());
                valid.LegendText = $"{r.Method} (validation)";
                valid.Color = color;
                valid.LinePattern = ScottPlot.LinePattern.Dashed;
                valid.MarkerSize = 6;
            }
        }
        plot.Title("Fine-tuning loss per method");
        plot.XLabel("step");
        plot.YLabel("cross-entropy per completion token");
        plot.ShowLegend();
        plot.SavePng(path, 1000, 600);
    }

    private static double[] Smooth(double[] values, int window)
    {
        var result = new double[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            int from = System.Math.Max(0, i - window + 1);
            result[i] = values.Skip(from).Take(i - from + 1).Average();
        }
        return result;
    }
}
