using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using PeftGen;
using PeftGen.Checkpoints;
using PeftGen.Formats.Peft;
using PeftGen.Formats.SafeTensors;
using TinyGpt.Jobs;
using TinyGpt.Models;
using TinyGpt.Rendering;
using Xunit;
using static TorchSharp.torch;

namespace TinyGpt.Tests;

/// <summary>The main job's code path end to end, at test size.</summary>
[Collection("torch")]
public sealed class MainJobTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "peftgen-runs-" + Guid.NewGuid().ToString("N"));

    /// <summary>Quick settings shrunk further, so the whole pipeline runs in seconds.</summary>
    private static readonly JobSettings TestSize = JobSettings.Quick with
    {
        PretrainSteps = 3,
        PretrainBatch = 2,
        PretrainBlock = 32,
        PretrainHeldOutParagraphs = 20,
        FineTuneSteps = 3,
        FineTuneBatch = 4,
        SelectionRecords = 8,
        Evaluations = 1,
        ValidationRecords = 8,
        MaxNewTokens = 3,
    };

    public void Dispose()
    {
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }

    [Fact]
    public void Compare_runs_every_method_and_writes_the_table_json_markdown_and_plot()
    {
        var context = RunContext.Create(TestSize, "compare", null, "cpu", root);
        var report = CompareJob.Run(context);

        Assert.Equal(new[] { "Full fine-tuning", "LoRA", "QLoRA (NF4)", "Prompt tuning" }, report.Methods.Select(m => m.Method));
        Assert.All(report.Methods, m =>
        {
            Assert.True(double.IsFinite(m.Scores.ValidationLoss), m.Method);
            Assert.InRange(m.Scores.Rouge1.Mean, 0, 1);
            Assert.Equal(TestSize.ValidationRecords, m.Scores.Records);
            Assert.Equal(TestSize.FineTuneSteps, m.LossCurve.Length);
            Assert.Equal(TestSize.FineTuneSteps * TestSize.FineTuneBatch, m.TrainRecords);
            Assert.Equal(TestSize.FineTuneSteps, m.SelectedStep);
            Assert.True(m.BaseWeightBytes > 0);
        });

        // Two rows that train nothing: the best constant answer (no model, so no loss) and the untuned base.
        Assert.Equal(new[] { "Constant answer", "Base, not fine-tuned" }, report.Baselines.Select(b => b.Name));
        Assert.True(double.IsNaN(report.Baselines[0].Scores.ValidationLoss));
        Assert.True(double.IsFinite(report.Baselines[1].Scores.ValidationLoss));
        Assert.All(report.Baselines.Select(b => b.Scores).Concat(report.Methods.Select(m => m.Scores)), s =>
            Assert.True(s.Rouge1.Lower <= s.Rouge1.Mean && s.Rouge1.Mean <= s.Rouge1.Upper));
        var constant = report.Baselines[0].Samples.Select(x => x.Prediction).Distinct().Single();
        Assert.Equal(Scoring.Of(ExampleData.Valid().Take(TestSize.ValidationRecords).ToList(), Enumerable.Repeat(constant, TestSize.ValidationRecords).ToList(), double.NaN, 0).Rouge1.Mean,
            report.Baselines[0].Scores.Rouge1.Mean, 12);
        var qlora = report.Methods.Single(m => m.Method.StartsWith("QLoRA", StringComparison.Ordinal));
        var lora = report.Methods.Single(m => m.Method == "LoRA");
        Assert.True(qlora.BaseWeightBytes < lora.BaseWeightBytes, "NF4 base must be smaller");
        Assert.Equal(TinyGptPrompt.Accounting.TrainableParameters, report.Methods.Single(m => m.Method == "Prompt tuning").TrainableParameters);

        foreach (var file in new[] { "comparison.json", "comparison.md", "loss.png" })
            Assert.True(File.Exists(Path.Combine(context.OutputFolder, file)), file);

        // Every row's outputs, a line a validation record, whose ROUGE-1 averages to the table's.
        var rows = report.Baselines.Select(b => b.Scores).Concat(report.Methods.Select(m => m.Scores)).ToList();
        var names = new[] { "constant", "base", "full", "lora", "qlora", "prompt" };
        var valid = ExampleData.Valid().Take(TestSize.ValidationRecords).ToList();
        for (int row = 0; row < names.Length; row++)
        {
            var written = File.ReadAllLines(Path.Combine(context.OutputFolder, $"predictions-{names[row]}.jsonl"));
            Assert.Equal(TestSize.ValidationRecords, written.Length);
            var parsed = written.Select(l => JsonDocument.Parse(l).RootElement).ToList();
            Assert.Equal(valid.Select(r => r.Prompt), parsed.Select(e => e.GetProperty("prompt").GetString()));
            Assert.Equal(valid.Select(r => r.Completion), parsed.Select(e => e.GetProperty("reference").GetString()));
            Assert.Equal(rows[row].Rouge1.Mean, parsed.Average(e => e.GetProperty("rouge1").GetDouble()), 12);
            Assert.All(parsed, e => Assert.Equal(PeftGen.Metrics.Rouge.Score(e.GetProperty("reference").GetString()!, e.GetProperty("prediction").GetString()!).Rouge1.F1, e.GetProperty("rouge1").GetDouble(), 12));
            if (row == 0) Assert.All(parsed, e => Assert.Equal(constant, e.GetProperty("prediction").GetString()));
        }

        // Each generating row against the constant, record by record, as the predictions files give it.
        var constantF1 = File.ReadAllLines(Path.Combine(context.OutputFolder, "predictions-constant.jsonl")).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("rouge1").GetDouble()).ToList();
        Assert.Equal(names.Skip(1).Count(), report.AgainstConstant.Count);
        for (int row = 1; row < names.Length; row++)
        {
            var f1 = File.ReadAllLines(Path.Combine(context.OutputFolder, $"predictions-{names[row]}.jsonl")).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("rouge1").GetDouble()).ToList();
            var counted = report.AgainstConstant[row - 1];
            Assert.Equal(f1.Zip(constantF1).Count(p => p.First > p.Second), counted.Above);
            Assert.Equal(f1.Zip(constantF1).Count(p => p.First == p.Second), counted.Equal);
            Assert.Equal(f1.Zip(constantF1).Count(p => p.First < p.Second), counted.Below);
        }
        Assert.Equal(report.Baselines[1].Name, report.AgainstConstant[0].Row);
        Assert.Contains("Against the constant answer, record by record", File.ReadAllText(Path.Combine(context.OutputFolder, "comparison.md")));
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(context.OutputFolder, "comparison.json")));
        Assert.Equal(4, json.RootElement.GetProperty("Methods").GetArrayLength());
        Assert.Equal(2, json.RootElement.GetProperty("Baselines").GetArrayLength());
        Assert.Contains("| Constant answer | 0 | 0 |", File.ReadAllText(Path.Combine(context.OutputFolder, "comparison.md")));

        // Redirected output is Markdown: every row on one line, as many cells as the header, numbers whole.
        var printed = new StringWriter();
        Reports.WriteMarkdown(printed, report.Baselines, report.Methods);
        var lines = printed.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToList();
        var mainTable = lines.TakeWhile(l => !l.StartsWith("| Method | Learning rate", StringComparison.Ordinal)).ToList();
        Assert.Equal(2 + report.Baselines.Count + report.Methods.Count, mainTable.Count);
        int cells = mainTable[0].Count(c => c == '|');
        Assert.All(mainTable, l => Assert.Equal(cells, l.Count(c => c == '|')));
        Assert.Contains(mainTable, l => l.StartsWith($"| Full fine-tuning | {TinyGptFull.Accounting.TrainableParameters.ToString("N0", System.Globalization.CultureInfo.InvariantCulture)} |", StringComparison.Ordinal));
        Assert.True(File.Exists(Path.Combine(context.OutputFolder, "lora", "adapter_model.safetensors")));
        Assert.True(File.Exists(Path.Combine(context.OutputFolder, "prompt", "adapter_model.safetensors")));

        // eval scores any saved adapter on a JSONL file and writes JSON.
        var data = Path.Combine(root, "few.jsonl");
        File.WriteAllLines(data, ExampleData.Valid().Take(3).Select(r => JsonSerializer.Serialize(new { prompt = r.Prompt, completion = r.Completion })));
        var scores = AdapterJobs.Evaluate(context, Path.Combine(context.OutputFolder, "qlora"), data, quantized: true, basePath: null, limit: null);
        using var scoreJson = JsonDocument.Parse(File.ReadAllText(scores));
        Assert.Equal(3, scoreJson.RootElement.GetProperty("records").GetInt32());
        Assert.Equal("qlora", scoreJson.RootElement.GetProperty("method").GetString());
        var evalLines = File.ReadAllLines(Path.Combine(context.OutputFolder, "eval-few.predictions.jsonl"));
        Assert.Equal(3, evalLines.Length);
        Assert.Equal(scoreJson.RootElement.GetProperty("rouge1").GetDouble(), evalLines.Average(l => JsonDocument.Parse(l).RootElement.GetProperty("rouge1").GetDouble()), 12);
    }

    [Fact]
    public void Pretrain_writes_a_base_with_its_recipe_held_out_figures_repeat_probe_and_snapshots()
    {
        var settings = TestSize with { PretrainCopySpans = 0.5 };
        var context = RunContext.Create(settings, "pretrain", null, "cpu", root);
        var folder = Path.Combine(context.OutputFolder, "base");
        var outcome = PretrainJob.Run(context, folder, force: true, snapshotEvery: 2)!;

        Assert.False(outcome.Reused);
        var (tokenizer, recipe) = BaseFolder.Open(folder);
        Assert.Equal(TinyConfig.Vocab, tokenizer.VocabularySize);
        Assert.Equal(outcome.Recipe, recipe);
        Assert.Equal(settings.PretrainSteps, recipe.Steps);
        Assert.Equal("tiny-brown-wordnet-s3-b2x32-lr0.002-copy0.5-seed1234", recipe.Settings);
        // The command names the precision the run chose: Auto's choice on this host (float32, or bfloat16 where the CPU has it).
        var chosen = PeftGen.Precision.PrecisionSupport.Name(PeftGen.Precision.PrecisionSupport.ComputeDType(PeftGen.Precision.TrainingPrecision.Auto, CPU));
        Assert.Equal(chosen, recipe.ComputeDType);
        Assert.Contains($"pretrain --quick --pretrain-steps 3 --copy-spans 0.5 --precision {chosen} --output DIR", recipe.Command);
        Assert.Contains("50% of blocks with a span of 8–32 tokens copied", recipe.Corpus);
        Assert.True(double.IsFinite(recipe.HeldOutLoss) && recipe.HeldOutBitsPerByte > 0);
        // The probe pretrain records: three steps teach nothing, so both copies cost about as much as the held-out text.
        var repeat = Assert.IsType<RepeatProbe>(recipe.HeldOutRepeat);
        Assert.True(repeat.Tokens > 1_000);
        Assert.InRange(repeat.FirstLoss, recipe.HeldOutLoss - 0.2, recipe.HeldOutLoss + 0.2);
        Assert.InRange(repeat.RepeatLoss, repeat.FirstLoss - 0.5, repeat.FirstLoss + 0.5);

        // The snapshot at step 2 is a base of its own, its held-out figures not yet measured.
        var (_, snapshot) = BaseFolder.Open(folder + ".snapshot");
        Assert.Equal(2, snapshot.Steps);
        Assert.True(double.IsNaN(snapshot.HeldOutLoss));
        // Without copied spans the settings name stays the shipped base's kind.
        Assert.Equal("tiny-brown-wordnet-s3-b2x32-lr0.002-seed1234", TestSize.PretrainKey);
    }

    [Fact]
    public void Pretraining_stopped_at_a_checkpoint_and_resumed_ends_where_an_uninterrupted_run_does()
    {
        var settings = TestSize with { PretrainSteps = 4, PretrainCopySpans = 0.5, PretrainHeldOutParagraphs = 4 };
        var whole = RunContext.Create(settings, "pretrain", null, "cpu", root);
        var wholeBase = PretrainJob.Run(whole, Path.Combine(root, "whole", "base"), force: true)!;

        var split = RunContext.Create(settings, "pretrain", null, "cpu", root);
        var folder = Path.Combine(root, "split", "base");
        Assert.Null(PretrainJob.Run(split, folder, force: true, segment: new PretrainJob.Segment(CheckpointEvery: 2, StopAfter: 2)));
        Assert.False(Directory.Exists(folder));
        var record = JsonSerializer.Deserialize<PretrainJob.CheckpointRecord>(File.ReadAllText(Path.Combine(folder + ".checkpoint", PretrainJob.CheckpointRecordFile)))!;
        Assert.Equal((settings.PretrainKey, 2), (record.Settings, record.Step));
        var first = Assert.Single(record.Sittings!);
        Assert.Equal((wholeBase.Recipe.Machine, wholeBase.Recipe.ComputeDType, 1, 2), (first.Machine, first.ComputeDType, first.FirstStep, first.LastStep));

        // Other settings cannot continue it.
        var other = RunContext.Create(settings with { PretrainCopySpans = 0 }, "pretrain", null, "cpu", root);
        var refused = Assert.Throws<UserInputException>(() => PretrainJob.Run(other, folder, force: true, segment: new PretrainJob.Segment(Resume: true)));
        Assert.Contains(settings.PretrainKey, refused.Message);
        Assert.Contains("--resume: no checkpoint", Assert.Throws<UserInputException>(() => PretrainJob.Run(other, Path.Combine(root, "nothing"), force: true, segment: new PretrainJob.Segment(Resume: true))).Message);
        Assert.Contains("multiple of --checkpoint-every", Assert.Throws<UserInputException>(() => PretrainJob.Run(split, folder, force: true, segment: new PretrainJob.Segment(CheckpointEvery: 3, StopAfter: 2))).Message);

        // A record written before sittings were kept (no "Sittings") resumes with its steps named as unrecorded.
        var oldFolder = Path.Combine(root, "old-record", "base");
        Directory.CreateDirectory(oldFolder + ".checkpoint");
        foreach (var file in Directory.GetFiles(folder + ".checkpoint"))
            File.Copy(file, Path.Combine(oldFolder + ".checkpoint", Path.GetFileName(file)));
        File.WriteAllText(Path.Combine(oldFolder + ".checkpoint", PretrainJob.CheckpointRecordFile),
            JsonSerializer.Serialize(new { record.Settings, record.Step, record.WallMinutes }));
        var fromOld = PretrainJob.Run(split, oldFolder, force: true, segment: new PretrainJob.Segment(Resume: true))!;
        Assert.Equal($"unrecorded (steps 1–2); {wholeBase.Recipe.Machine} (steps 3–4)", fromOld.Recipe.Machine);
        Assert.Equal($"unrecorded (steps 1–2), then {wholeBase.Recipe.ComputeDType} (steps 3–4)", fromOld.Recipe.ComputeDType);

        var resumed = PretrainJob.Run(split, folder, force: true, segment: new PretrainJob.Segment(Resume: true))!;
        Assert.Equal(4, resumed.Recipe.Steps);
        Assert.Equal(4L * settings.PretrainBatch * settings.PretrainBlock, resumed.Recipe.TokensSeen);
        Assert.Equal(wholeBase.Recipe.HeldOutLoss, resumed.Recipe.HeldOutLoss);
        // Both sittings ran here in the same precision: the recipe names the machine once.
        Assert.Equal((wholeBase.Recipe.Machine, wholeBase.Recipe.ComputeDType), (resumed.Recipe.Machine, resumed.Recipe.ComputeDType));
        // The same weights: the resumed run's float32 weights differ from the uninterrupted run's in their last bits at
        // most (restored tensors live elsewhere in memory, and the GEMM library's sums are not bit-stable across that),
        // which flips a bfloat16 rounding here and there: within one bfloat16 step (or 1e-6 for weights that are all but 0), and rarely at all.
        using var scope = NewDisposeScope();
        var a = SafeTensorsFile.Load(Path.Combine(wholeBase.BaseFolder, "model.safetensors"));
        var b = SafeTensorsFile.Load(Path.Combine(resumed.BaseFolder, "model.safetensors"));
        Assert.Equal(a.Keys.OrderBy(n => n, StringComparer.Ordinal), b.Keys.OrderBy(n => n, StringComparer.Ordinal));
        long differing = 0, all = 0;
        foreach (var (name, x) in a)
        {
            var (p, q) = (x.to(ScalarType.Float32), b[name].to(ScalarType.Float32));
            Assert.True(p.allclose(q, rtol: 1.0 / 128, atol: 1e-6), name);
            differing += p.ne(q).sum().item<long>();
            all += p.numel();
        }
        Assert.InRange(differing, 0, all / 1000);
    }

    [Fact]
    public void A_run_over_sittings_on_other_machines_or_precisions_names_each_with_its_steps()
    {
        var here = new PretrainJob.Sitting("2 cores, Intel Xeon", "float32", 1, 4500);
        Assert.Equal(("2 cores, Intel Xeon", "float32"), PretrainJob.Sitting.Describe([here, here with { FirstStep = 4501, LastStep = 8000 }]));
        var (machine, dtype) = PretrainJob.Sitting.Describe([here, new PretrainJob.Sitting("2 cores, AMD EPYC", "bfloat16", 4501, 8000)]);
        Assert.Equal("2 cores, Intel Xeon (steps 1–4500); 2 cores, AMD EPYC (steps 4501–8000)", machine);
        Assert.Equal("float32 (steps 1–4500), then bfloat16 (steps 4501–8000)", dtype);
        Assert.Throws<ArgumentException>(() => PretrainJob.Sitting.Describe([]));
    }

    [Fact]
    public void Finetune_takes_a_learning_rate_and_can_score_on_the_held_out_training_records()
    {
        var settings = TestSize with { LearningRate = 0.2, ScoreOnSelection = true, SelectionRecords = 6 };
        var context = RunContext.Create(settings, "finetune", null, "cpu", root);
        var result = FineTuneJob.Run(context, Method.Prompt, BaseFolder.Open(BaseFolder.Shipped).Tokenizer, BaseFolder.Shipped);
        Assert.Equal(0.2, result.LearningRate);
        // The six selection records were scored, not the eight validation records the settings name.
        Assert.Equal(6, result.Scores.Records);
        var selection = FineTuneData.For(settings).Selection;
        Assert.NotEmpty(result.Samples);
        Assert.Equal(selection.Select(r => r.Prompt).Take(result.Samples.Length), result.Samples.Select(s => s.Prompt));
    }

    [Fact]
    public void Finetune_accepts_a_gpt2_layout_checkpoint_and_saves_an_adapter_with_peft_names()
    {
        // A random GPT-2-layout checkpoint as the Hub stores GPT-2: keys without the 'transformer.' prefix, Conv1D
        // weights In × Out, the head tied to wte and left out.
        manual_seed(31);
        var checkpoint = Path.Combine(root, "gpt2-tiny");
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

        var context = RunContext.Create(TestSize, "finetune", null, "cpu", root);
        var result = FineTuneJob.Run(context, Method.Lora, BaseFolder.Open(BaseFolder.Shipped).Tokenizer, checkpoint);
        using var adapter = SafeTensorsFile.Open(Path.Combine(result.AdapterFolder, "adapter_model.safetensors"));
        Assert.Contains("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight", adapter.Names);
        Assert.Contains("base_model.model.transformer.h.3.mlp.c_proj.lora_B.weight", adapter.Names);
        var config = Assert.IsType<LoraAdapterConfig>(PeftAdapterConfig.Read(Path.Combine(result.AdapterFolder, "adapter_config.json")));
        Assert.True(config.FanInFanOut, "GPT-2's Conv1D layers need fan_in_fan_out in PEFT");
        Assert.Equal(new[] { "c_attn", "c_fc", "c_proj" }, config.TargetModules);
    }
}

/// <summary>The shipped base and the constant-answer baseline.</summary>
public sealed class BaseAndBaselineTests
{
    [Fact]
    public void The_shipped_base_opens_with_its_digests_checked_and_a_changed_byte_is_refused()
    {
        var (tokenizer, recipe) = BaseFolder.Open(BaseFolder.Shipped);
        Assert.Equal(TinyConfig.Vocab, tokenizer.VocabularySize);
        Assert.Equal(TinyGptFull.Accounting.AllParameters, recipe.Parameters);
        Assert.Equal((long)recipe.Steps * recipe.BatchSequences * recipe.SequenceTokens, recipe.TokensSeen);
        Assert.True(double.IsFinite(recipe.HeldOutLoss) && recipe.HeldOutBitsPerByte > 0);

        var copy = Path.Combine(Path.GetTempPath(), "peftgen-base-" + Guid.NewGuid().ToString("N"));
        try
        {
            Directory.CreateDirectory(copy);
            foreach (var file in Directory.GetFiles(BaseFolder.Shipped)) File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
            BaseFolder.Open(copy);
            var vocabulary = Path.Combine(copy, PeftGen.Data.TrimmedVocabularyTokenizer.FileName);
            File.AppendAllText(vocabulary, " ");
            Assert.Contains("SHA-256", Assert.Throws<InvalidDataException>(() => BaseFolder.Open(copy)).Message);
        }
        finally
        {
            Directory.Delete(copy, recursive: true);
        }
    }

    [Fact]
    public void Scoring_on_selection_scores_the_held_out_training_records_and_no_validation_record()
    {
        var normal = FineTuneData.For(JobSettings.Quick);
        var tuning = FineTuneData.For(JobSettings.Quick with { ScoreOnSelection = true });
        Assert.Equal(tuning.Selection, tuning.Valid);
        Assert.Empty(tuning.Valid.Intersect(ExampleData.Valid()));
        Assert.Empty(tuning.Train.Intersect(tuning.Selection));
        // The same training and selection records either way; only what is scored changes.
        Assert.Equal(normal.Train, tuning.Train);
        Assert.Equal(normal.Selection, tuning.Selection);
        Assert.Equal(ExampleData.Valid().Take(JobSettings.Quick.ValidationRecords), normal.Valid);
    }

    [Fact]
    public void Pretraining_definitions_are_dictionary_entries_that_leave_out_selection_records_and_every_validation_word()
    {
        Assert.Equal("paint, verb: make a painting. Example: he painted all day in the garden.",
            ExampleData.DictionaryEntry(new("paint (verb): he painted all day in the garden", "make a painting")));
        Assert.Equal("ice cream, noun: a frozen dessert.", ExampleData.DictionaryEntry(new("ice cream (noun)", "a frozen dessert")));
        Assert.Throws<FormatException>(() => ExampleData.DictionaryEntry(new("paint", "make a painting")));

        var settings = JobSettings.Default;
        var selection = FineTuneData.For(settings).Selection;
        var entries = ExampleData.PretrainDefinitions(selection);
        Assert.Equal(ExampleData.Train().Count - selection.Count, entries.Count);
        var text = new HashSet<string>(entries);
        Assert.All(selection, r => Assert.DoesNotContain(ExampleData.DictionaryEntry(r), text));

        // No entry's headword is a validation word and no entry's definition is a validation definition.
        var validWords = ExampleData.Valid().Select(r => r.Prompt[..r.Prompt.IndexOf(" (", StringComparison.Ordinal)]).ToHashSet();
        var validDefinitions = ExampleData.Valid().Select(r => r.Completion).ToHashSet(StringComparer.OrdinalIgnoreCase);
        foreach (var entry in entries)
        {
            int colon = entry.IndexOf(": ", StringComparison.Ordinal);
            int example = entry.IndexOf(". Example: ", colon, StringComparison.Ordinal);
            string definition = example > 0 ? entry[(colon + 2)..example] : entry[(colon + 2)..^1];
            Assert.DoesNotContain(entry[..entry.LastIndexOf(", ", colon, StringComparison.Ordinal)], validWords);
            Assert.DoesNotContain(definition, validDefinitions);
        }
    }

    [Fact]
    public void The_constant_answer_beats_every_frequent_definition_and_every_single_word_on_the_training_records()
    {
        PeftGen.Data.PromptCompletion R(string completion) => new("w (noun)", completion);
        var train = new[]
        {
            R("a person who tells jokes"), R("a person who sells goods"), R("of or relating to the sea"), R("of or relating to music"),
            R("the act of making a painting"), R("a small boat"), R("a person who tells stories"), R("make a painting"),
        };
        var chosen = ConstantBaseline.Choose(train);
        // Scored with the library's ROUGE (not the baseline's own counting).
        double Mean(string text) => train.Average(r => PeftGen.Metrics.Rouge.Score(r.Completion, text).Rouge1.F1);
        Assert.Equal(Mean(chosen), ConstantBaseline.MeanRouge1(train.Select(r => PeftGen.Metrics.Rouge.Tokenize(r.Completion)).ToList(), PeftGen.Metrics.Rouge.Tokenize(chosen)), 12);
        foreach (var candidate in train.Select(r => r.Completion).Concat(train.SelectMany(r => PeftGen.Metrics.Rouge.Tokenize(r.Completion))))
            Assert.True(Mean(chosen) >= Mean(candidate), $"\"{chosen}\" {Mean(chosen):F4} < \"{candidate}\" {Mean(candidate):F4}");
    }
}
