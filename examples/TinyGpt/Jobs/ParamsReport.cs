using System.Collections.Generic;
using System.Globalization;
using Spectre.Console;
using TinyGpt.Models;

namespace TinyGpt.Jobs;

/// <summary>The compile-time accounting of every model the examples define; nothing is allocated.</summary>
public static class ParamsReport
{
    private sealed record Row(string Model, string Summary, long TrainingBytes, long FullFineTuningTrainingBytes, long WeightBytes);

    private static IReadOnlyList<Row> Rows() =>
    [
        new(nameof(Gpt2SmallLora), Gpt2SmallLora.Accounting.Summary, Gpt2SmallLora.Accounting.TrainingBytes, Gpt2SmallLora.Accounting.FullFineTuningTrainingBytes, Gpt2SmallLora.Accounting.WeightBytes),
        new(nameof(Gpt2MediumLora), Gpt2MediumLora.Accounting.Summary, Gpt2MediumLora.Accounting.TrainingBytes, Gpt2MediumLora.Accounting.FullFineTuningTrainingBytes, Gpt2MediumLora.Accounting.WeightBytes),
        new(nameof(Llama2_7BLora), Llama2_7BLora.Accounting.Summary, Llama2_7BLora.Accounting.TrainingBytes, Llama2_7BLora.Accounting.FullFineTuningTrainingBytes, Llama2_7BLora.Accounting.WeightBytes),
        new(nameof(Llama2_7BQLora), Llama2_7BQLora.Accounting.Summary, Llama2_7BQLora.Accounting.TrainingBytes, Llama2_7BQLora.Accounting.FullFineTuningTrainingBytes, Llama2_7BQLora.Accounting.WeightBytes),
        new(nameof(Qwen2_7BLora), Qwen2_7BLora.Accounting.Summary, Qwen2_7BLora.Accounting.TrainingBytes, Qwen2_7BLora.Accounting.FullFineTuningTrainingBytes, Qwen2_7BLora.Accounting.WeightBytes),
        new(nameof(TinyLlamaLora), TinyLlamaLora.Accounting.Summary, TinyLlamaLora.Accounting.TrainingBytes, TinyLlamaLora.Accounting.FullFineTuningTrainingBytes, TinyLlamaLora.Accounting.WeightBytes),
        new(nameof(TinyLlamaQLora), TinyLlamaQLora.Accounting.Summary, TinyLlamaQLora.Accounting.TrainingBytes, TinyLlamaQLora.Accounting.FullFineTuningTrainingBytes, TinyLlamaQLora.Accounting.WeightBytes),
        new(nameof(TinyGptFull), TinyGptFull.Accounting.Summary, TinyGptFull.Accounting.TrainingBytes, TinyGptFull.Accounting.FullFineTuningTrainingBytes, TinyGptFull.Accounting.WeightBytes),
        new(nameof(TinyGptLora), TinyGptLora.Accounting.Summary, TinyGptLora.Accounting.TrainingBytes, TinyGptLora.Accounting.FullFineTuningTrainingBytes, TinyGptLora.Accounting.WeightBytes),
        new(nameof(TinyGptQLora), TinyGptQLora.Accounting.Summary, TinyGptQLora.Accounting.TrainingBytes, TinyGptQLora.Accounting.FullFineTuningTrainingBytes, TinyGptQLora.Accounting.WeightBytes),
        new(nameof(TinyGptPrompt), TinyGptPrompt.Accounting.Summary, TinyGptPrompt.Accounting.TrainingBytes, TinyGptPrompt.Accounting.FullFineTuningTrainingBytes, TinyGptPrompt.Accounting.WeightBytes),
    ];

    /// <summary>Prints every model's PEFT line, then a memory table.</summary>
    public static void Print()
    {
        foreach (var row in Rows()) System.Console.WriteLine($"{row.Model}: {row.Summary}");
        System.Console.WriteLine();
        var table = new Table().Border(TableBorder.Rounded)
            .AddColumn("Model").AddColumn(new TableColumn("Weights").RightAligned())
            .AddColumn(new TableColumn("Training memory (weights + grads + AdamW)").RightAligned())
            .AddColumn(new TableColumn("Full fine-tuning").RightAligned()).AddColumn(new TableColumn("Ratio").RightAligned());
        foreach (var row in Rows())
        {
            table.AddRow(row.Model, Gib(row.WeightBytes), Gib(row.TrainingBytes), Gib(row.FullFineTuningTrainingBytes),
                ((double)row.TrainingBytes / row.FullFineTuningTrainingBytes).ToString("F3", CultureInfo.InvariantCulture));
        }
        AnsiConsole.Write(table);
        System.Console.WriteLine("Memory is computed at compile time from the model's declaration: float32 weights, gradients and AdamW's two moments of what trains; activations not included.");
    }

    private static string Gib(long bytes) => (bytes / (double)(1L << 30)).ToString("F3", CultureInfo.InvariantCulture) + " GiB";
}
