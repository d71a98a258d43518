using System;
using System.IO;
using System.Linq;
using System.Text.Json;
using PeftGen;
using PeftGen.Checkpoints;
using PeftGen.IO;
using TinyGpt.Jobs;
using TinyGpt.Models;
using Xunit;
using static TorchSharp.torch;

namespace TinyGpt.Tests;

/// <summary>The main job's code path end to end, at test size.</summary>
[Collection("torch")]
public sealed class MainJobTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "peftgen-runs-" + Guid.NewGuid().ToString("N"));

    /// <summary>Quick settings shrunk further, so the whole pipeline runs in seconds.</summary>
    private static readonly JobSettings TestSize = JobSettings.Quick with
    {
        PretrainSteps = 3,
        PretrainBatch = 2,
        PretrainBlock = 32,
        FineTuneSteps = 3,
        FineTuneBatch = 4,
        TrainRecords = 40,
        ValidationRecords = 8,
        GenerationRecords = 2,
        MaxNewTokens = 3,
    };

    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    [Fact]
    public void Compare_runs_every_method_and_writes_the_table_json_markdown_and_plot()
    {
        var context = RunContext.Create(TestSize, "compare", null, "cpu", _root);
        var report = CompareJob.Run(context);

        Assert.Equal(new[] { "Full fine-tuning", "LoRA", "QLoRA (NF4)", "Prompt tuning" }, report.Methods.Select(m => m.Method));
        Assert.All(report.Methods, m =>
        {
            Assert.True(double.IsFinite(m.ValidationLoss), m.Method);
            Assert.InRange(m.Rouge1, 0, 1);
            Assert.Equal(TestSize.FineTuneSteps, m.LossCurve.Length);
            Assert.True(m.BaseWeightBytes > 0);
        });
        var qlora = report.Methods.Single(m => m.Method.StartsWith("QLoRA", StringComparison.Ordinal));
        var lora = report.Methods.Single(m => m.Method == "LoRA");
        Assert.True(qlora.BaseWeightBytes < lora.BaseWeightBytes, "NF4 base must be smaller");
        Assert.Equal(TinyGptPrompt.Accounting.TrainableParameters, report.Methods.Single(m => m.Method == "Prompt tuning").TrainableParameters);

        foreach (var file in new[] { "comparison.json", "comparison.md", "loss.png" })
            Assert.True(File.Exists(Path.Combine(context.OutputFolder, file)), file);
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(context.OutputFolder, "comparison.json")));
        Assert.Equal(4, json.RootElement.GetProperty("Methods").GetArrayLength());
        Assert.True(File.Exists(Path.Combine(context.OutputFolder, "lora", "adapter_model.safetensors")));
        Assert.True(File.Exists(Path.Combine(context.OutputFolder, "prompt", "adapter_model.safetensors")));

        // eval scores any saved adapter on a JSONL file and writes JSON.
        var data = Path.Combine(_root, "few.jsonl");
        File.WriteAllLines(data, ExampleData.Valid().Take(3).Select(r => JsonSerializer.Serialize(new { prompt = r.Prompt, completion = r.Completion })));
        var scores = AdapterJobs.Evaluate(context, Path.Combine(context.OutputFolder, "qlora"), data, quantized: true, basePath: null, limit: null);
        using var scoreJson = JsonDocument.Parse(File.ReadAllText(scores));
        Assert.Equal(3, scoreJson.RootElement.GetProperty("records").GetInt32());
        Assert.Equal("qlora", scoreJson.RootElement.GetProperty("method").GetString());
    }

    [Fact]
    public void Finetune_accepts_a_gpt2_layout_checkpoint_and_saves_an_adapter_with_peft_names()
    {
        // A random GPT-2-layout checkpoint as the Hub stores GPT-2: keys without the 'transformer.' prefix, Conv1D
        // weights In × Out, the head tied to wte and left out.
        manual_seed(31);
        var checkpoint = Path.Combine(_root, "gpt2-tiny");
        using (var model = new TinyGptFull())
        {
            PretrainedSaver.Save(model, checkpoint, new PretrainedSaveOptions
            {
                KeyPrefix = new KeyPrefixMapping("transformer.", ""),
                TiedWeights = [TiedWeight.Gpt2Head],
                Config = PretrainJob.Gpt2Config(),
            });
        }
        using (var file = SafeTensorsFile.Open(Path.Combine(checkpoint, "model.safetensors")))
        {
            Assert.Contains("h.0.attn.c_attn.weight", file.Names);
            Assert.Equal(new long[] { TinyConfig.Width, 3 * TinyConfig.Width }, file.TensorInfo("h.0.attn.c_attn.weight").Shape);
        }

        var context = RunContext.Create(TestSize, "finetune", null, "cpu", _root);
        var result = FineTuneJob.Run(context, Method.Lora, new PeftGen.Data.Gpt2Tokenizer(), checkpoint);
        using var adapter = SafeTensorsFile.Open(Path.Combine(result.AdapterFolder, "adapter_model.safetensors"));
        Assert.Contains("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight", adapter.Names);
        Assert.Contains("base_model.model.transformer.h.3.mlp.c_proj.lora_B.weight", adapter.Names);
        var config = Assert.IsType<LoraAdapterConfig>(PeftAdapterConfig.Read(Path.Combine(result.AdapterFolder, "adapter_config.json")));
        Assert.True(config.FanInFanOut, "GPT-2's Conv1D layers need fan_in_fan_out in PEFT");
        Assert.Equal(new[] { "c_attn", "c_fc", "c_proj" }, config.TargetModules);
    }
}
