using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Text.Json.Nodes;
using PeftGen;
using PeftGen.Checkpoints;
using PeftGen.Data;
using PeftGen.Metrics;
using PeftGen.Precision;
using PeftGen.Training;
using TinyGpt.Models;
using TinyGpt.Rendering;
using TorchSharp;
using static TorchSharp.torch;

namespace TinyGpt.Jobs;

/// <summary>
/// Pretrains the tiny GPT on the Brown corpus and the fine-tuning task's training definitions (as dictionary entries) into a base folder: <c>model.safetensors</c> (bfloat16),
/// <c>config.json</c>, the trimmed vocabulary, <c>recipe.json</c> (how it was made and how good it is) and
/// <c>SHA256SUMS</c>. The base that ships in <c>examples/TinyGpt/Base</c> was made by this job.
/// </summary>
public static class PretrainJob
{
    /// <summary>The outcome: where the base is and how good it is.</summary>
    /// <param name="BaseFolder">The base in Hugging Face layout.</param>
    /// <param name="Reused">True when a cached base was used.</param>
    /// <param name="Recipe">How the base was made and its held-out quality.</param>
    public sealed record Outcome(string BaseFolder, bool Reused, BaseRecipe Recipe);

    /// <summary>How a long run is split: checkpoints, an early stop, a resume.</summary>
    /// <param name="CheckpointEvery">Every this many steps (0: never), write the trainer's state (weights, AdamW moments, torch's generator) to <c>{folder}.checkpoint</c>.</param>
    /// <param name="StopAfter">Stop after this step (a multiple of <paramref name="CheckpointEvery"/>, so a checkpoint is written there) without writing a base; null: run to the end.</param>
    /// <param name="Resume">Continue from the checkpoint in <c>{folder}.checkpoint</c>, which must have been written with the same settings.</param>
    public sealed record Segment(int CheckpointEvery = 0, int? StopAfter = null, bool Resume = false);

    /// <summary>What a checkpoint folder records beside the trainer's state, so a resume can check it continues the same run.</summary>
    /// <param name="Settings">The run's <see cref="JobSettings.PretrainKey"/>.</param>
    /// <param name="Step">The checkpoint's step.</param>
    /// <param name="WallMinutes">Minutes spent up to it, over every process of the run.</param>
    /// <param name="Sittings">Each process of the run up to it: where it ran, in what precision, which steps (null in records written before sittings were kept).</param>
    public sealed record CheckpointRecord(string Settings, int Step, double WallMinutes, System.Collections.Generic.IReadOnlyList<Sitting>? Sittings = null);

    /// <summary>One process of a run split over several.</summary>
    /// <param name="Machine">Its cores and CPU.</param>
    /// <param name="ComputeDType">Its compute precision.</param>
    /// <param name="FirstStep">The first step it trained (1-based).</param>
    /// <param name="LastStep">The last step it trained.</param>
    public sealed record Sitting(string Machine, string ComputeDType, int FirstStep, int LastStep)
    {
        /// <summary>
        /// The recipe's <see cref="BaseRecipe.Machine"/> and <see cref="BaseRecipe.ComputeDType"/> for a run of these sittings:
        /// the one machine and precision when every sitting shares them, otherwise each sitting's with its steps.
        /// </summary>
        public static (string Machine, string ComputeDType) Describe(System.Collections.Generic.IReadOnlyList<Sitting> sittings)
        {
            if (sittings.Count == 0)
                throw new ArgumentException("A run has at least one sitting.", nameof(sittings));
            var dtypes = sittings.Select(s => s.ComputeDType).Distinct().ToList();
            string dtype = dtypes.Count == 1 ? dtypes[0] : string.Join(", then ", sittings.Select(s => $"{s.ComputeDType} (steps {s.FirstStep}–{s.LastStep})"));
            var machines = sittings.Select(s => s.Machine).Distinct().ToList();
            string machine = machines.Count == 1 ? machines[0] : string.Join("; ", sittings.Select(s => $"{s.Machine} (steps {s.FirstStep}–{s.LastStep})"));
            return (machine, dtype);
        }
    }

    /// <summary>The file beside <c>checkpoint.safetensors</c> that holds the <see cref="CheckpointRecord"/>.</summary>
    public const string CheckpointRecordFile = "pretrain.json";

    /// <summary>
    /// Pretrains with the run's settings into <paramref name="folder"/> (default: the cache folder of these settings,
    /// reused when it holds a base unless <paramref name="force"/>).
    /// </summary>
    /// <param name="context">The run.</param>
    /// <param name="folder">Where the base goes.</param>
    /// <param name="force">Pretrain even when the cache holds a base of these settings.</param>
    /// <param name="snapshotEvery">Every this many steps (0: never), write the model so far to <c>{folder}.snapshot</c> as a
    /// base (its recipe has no held-out figures), so a long run can be tried out while it goes on.</param>
    /// <param name="segment">Checkpoints, an early stop or a resume (null: one uninterrupted run).</param>
    /// <returns>The base; null when the run stopped early at <see cref="Segment.StopAfter"/>.</returns>
    public static Outcome? Run(RunContext context, string? folder = null, bool force = false, int snapshotEvery = 0, Segment? segment = null)
    {
        var settings = context.Settings;
        folder ??= context.BaseFolder;
        segment ??= new Segment();
        var checkpointFolder = folder.TrimEnd(Path.DirectorySeparatorChar) + ".checkpoint";
        var checkpointFile = Path.Combine(checkpointFolder, TrainingCheckpoint.FileName);
        if (segment.StopAfter is int stop && (segment.CheckpointEvery <= 0 || stop % segment.CheckpointEvery != 0))
            throw new UserInputException($"--stop-after {stop}: must be a multiple of --checkpoint-every, so that the run stops where a checkpoint is written.");
        CheckpointRecord? earlier = null;
        if (segment.Resume)
        {
            var recordFile = Path.Combine(checkpointFolder, CheckpointRecordFile);
            if (!File.Exists(checkpointFile) || !File.Exists(recordFile))
                throw new UserInputException($"--resume: no checkpoint in {checkpointFolder}; a run writes one with --checkpoint-every N, into the same --output.");
            earlier = JsonSerializer.Deserialize<CheckpointRecord>(File.ReadAllText(recordFile))
                ?? throw new UserInputException($"--resume: {recordFile} is empty.");
            if (earlier.Settings != settings.PretrainKey)
                throw new UserInputException($"--resume: the checkpoint in {checkpointFolder} was written by a run with the settings {earlier.Settings}, not {settings.PretrainKey}; give the same options as that run.");
        }
        if (!force && folder == context.BaseFolder && BaseFolder.TryReadRecipe(folder) is { } cached && cached.Settings == settings.PretrainKey)
        {
            ConsoleReporter.Info($"Reusing the pretrained base in {folder} (held-out loss {cached.HeldOutLoss:F3}, perplexity {cached.HeldOutPerplexity:F1}).");
            return new Outcome(folder, true, cached);
        }
        double earlierMinutes = earlier?.WallMinutes ?? 0;

        var clock = Stopwatch.StartNew();
        ConsoleReporter.Stage($"Pretraining the tiny GPT ({TinyGptFull.Accounting.AllParameters:N0} parameters) on the Brown corpus and WordNet's training definitions");
        var tokenizer = TrimmedVocabularyTokenizer.Select(new Gpt2Tokenizer(), VocabularyTexts(), TinyConfig.Vocab);
        var brown = ExampleData.PretrainParagraphs();
        var definitions = ExampleData.PretrainDefinitions(FineTuneData.For(settings).Selection);
        var train = new PackedTextBlocks(brown.Concat(definitions), tokenizer, settings.PretrainBlock, settings.PretrainBatch, settings.Seed);
        IBatchSource batches = settings.PretrainCopySpans > 0 ? new CopiedSpans(train, settings.PretrainCopySpans, settings.Seed) : train;
        var corpus = string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"Brown corpus training split ({brown.Count:N0} paragraphs) + WordNet definition training split as dictionary entries ({definitions.Count:N0}; the {settings.SelectionRecords} checkpoint-selection records left out)")
            + (settings.PretrainCopySpans > 0 ? string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"; {settings.PretrainCopySpans * 100:0.#}% of blocks with a span of {CopiedSpans.ShortestSpan}–{CopiedSpans.LongestSpan} tokens copied to a random later place") : "");
        var validParagraphs = ExampleData.PretrainValidParagraphs().Take(settings.PretrainHeldOutParagraphs ?? int.MaxValue).ToList();
        var valid = new PackedTextBlocks(validParagraphs, tokenizer, settings.PretrainBlock, settings.PretrainBatch, settings.Seed, shuffle: false);
        ConsoleReporter.Info($"{train.TokenCount:N0} training tokens in {train.BlockCount:N0} blocks of {settings.PretrainBlock} ({tokenizer.VocabularySize:N0}-token vocabulary).");

        manual_seed(settings.Seed);
        using var model = new TinyGptFull();
        model.to(context.Device);
        var options = context.TrainerOptions() with
        {
            MaxSteps = settings.PretrainSteps,
            LearningRate = settings.PretrainLearningRate,
            WarmupSteps = Math.Max(1, Math.Min(200, settings.PretrainSteps / 20)),
            WeightDecay = 0.1,
            Beta2 = 0.95,
            Seed = settings.Seed,
            CheckpointEvery = segment.CheckpointEvery,
            CheckpointDirectory = segment.CheckpointEvery > 0 ? checkpointFolder : null,
        };
        // Every weight trains (TinyGptFull's plan); matrices decay, norms and biases do not.
        using var trainer = model.CreateTrainer(options);
        ConsoleReporter.Info($"Compute: {PrecisionSupport.Name(trainer.ComputeDType)} ({context.Precision}).");
        if (segment.Resume)
        {
            trainer.Resume(checkpointFile);
            ConsoleReporter.Info($"Resuming at step {trainer.CompletedSteps} from {checkpointFolder} ({earlierMinutes:F1} minutes so far).");
        }
        double WallMinutes() => Math.Round(earlierMinutes + clock.Elapsed.TotalMinutes, 1);
        string machine = Environment.ProcessorCount + " cores, " + PrecisionSupport.CpuDescription;
        int firstStep = trainer.CompletedSteps + 1;
        // The sittings so far, this one up to the last completed step (a record written before sittings were kept is one of unknown place).
        System.Collections.Generic.List<Sitting> Sittings()
        {
            var all = new System.Collections.Generic.List<Sitting>();
            if (earlier is not null)
                all.AddRange(earlier.Sittings ?? [new Sitting("unrecorded", "unrecorded", 1, earlier.Step)]);
            if (trainer.CompletedSteps >= firstStep)
                all.Add(new Sitting(machine, PrecisionSupport.Name(trainer.ComputeDType), firstStep, trainer.CompletedSteps));
            return all;
        }
        trainer.CheckpointSaved += (_, _) => PeftGen.IO.AtomicFile.WriteAllText(Path.Combine(checkpointFolder, CheckpointRecordFile),
            JsonSerializer.Serialize(new CheckpointRecord(settings.PretrainKey, trainer.CompletedSteps, WallMinutes(), Sittings())));
        using var stopping = new System.Threading.CancellationTokenSource();
        if (segment.StopAfter is int stopStep)
            trainer.StepCompleted += (_, step) => { if (step.Step >= stopStep) stopping.Cancel(); };
        if (snapshotEvery > 0)
        {
            trainer.StepCompleted += (_, step) =>
            {
                if (step.Step % snapshotEvery != 0) return;
                var snapshot = new BaseRecipe($"snapshot at step {step.Step}", settings.PretrainKey, settings.Seed, step.Step, settings.PretrainBatch, settings.PretrainBlock,
                    (long)step.Step * settings.PretrainBatch * settings.PretrainBlock, train.TokenCount, PrecisionSupport.Name(trainer.ComputeDType),
                    WallMinutes(), machine, step.Loss, double.NaN, double.NaN, double.NaN,
                    tokenizer.VocabularySize, TinyGptFull.Accounting.AllParameters, DateTime.UtcNow.ToString("u", System.Globalization.CultureInfo.InvariantCulture), corpus);
                BaseFolder.Write(model, tokenizer, snapshot, folder + ".snapshot");
            };
        }
        var result = ConsoleReporter.Training("pretrain", trainer, () => trainer.Train(batches, cancellationToken: stopping.Token));
        if (result.StopReason == TrainingStopReason.Cancelled)
        {
            ConsoleReporter.Info($"Stopped after step {trainer.CompletedSteps} of {settings.PretrainSteps} ({WallMinutes():F1} minutes so far); the checkpoint is in {checkpointFolder}: the same command with --resume instead of --stop-after continues it.");
            return null;
        }
        if (result.StopReason != TrainingStopReason.Completed)
            throw new InvalidOperationException($"Pretraining stopped at step {trainer.CompletedSteps}: {result.StopReason}.");

        // Held-out quality over every block of the held-out documents (the first PretrainHeldOutParagraphs when set), in nats per token and bits per UTF-8 byte.
        model.eval();
        var (lossSum, count) = ValidationLoss.Summed(model, valid, valid.BatchesPerEpoch);
        double heldOutLoss = lossSum / count;
        var repeat = RepeatProbe.Measure(model, validParagraphs, tokenizer, settings.PretrainBlock, settings.PretrainBatch);
        double bytesPerToken = validParagraphs.Sum(p => System.Text.Encoding.UTF8.GetByteCount(p) + 0.0) / validParagraphs.Sum(p => tokenizer.Encode(p).Count + 0.0);
        var sittings = Sitting.Describe(Sittings()); // at least this sitting or an earlier one: a run completes at least one step
        var recipe = new BaseRecipe(
            Command: $"dotnet run -c Release --project examples/TinyGpt -- pretrain{(settings.IsQuick ? " --quick" : "")} --pretrain-steps {settings.PretrainSteps}{(settings.PretrainCopySpans > 0 ? $" --copy-spans {settings.PretrainCopySpans:R}" : "")} --precision {PrecisionSupport.Name(trainer.ComputeDType)} --output DIR",
            Settings: settings.PretrainKey,
            Seed: settings.Seed,
            Steps: trainer.CompletedSteps,
            BatchSequences: settings.PretrainBatch,
            SequenceTokens: settings.PretrainBlock,
            TokensSeen: (long)trainer.CompletedSteps * settings.PretrainBatch * settings.PretrainBlock,
            CorpusTokens: train.TokenCount,
            ComputeDType: sittings.ComputeDType,
            WallMinutes: WallMinutes(),
            Machine: sittings.Machine,
            FinalTrainingLoss: result.Steps.Count > 0 ? Math.Round(result.Steps.TakeLast(20).Average(s => s.Loss), 4) : double.NaN, // none: resumed at the last step
            HeldOutLoss: Math.Round(heldOutLoss, 4),
            HeldOutPerplexity: Math.Round(Perplexity.FromMeanLoss(heldOutLoss), 2),
            HeldOutBitsPerByte: Math.Round(heldOutLoss / Math.Log(2) / bytesPerToken, 4),
            Vocabulary: tokenizer.VocabularySize,
            Parameters: TinyGptFull.Accounting.AllParameters,
            Date: DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", System.Globalization.CultureInfo.InvariantCulture),
            Corpus: corpus,
            HeldOutRepeat: repeat);
        ConsoleReporter.Info($"Pretrained: training loss {recipe.FinalTrainingLoss:F3}, held-out loss {recipe.HeldOutLoss:F3} (perplexity {recipe.HeldOutPerplexity:F1}, {recipe.HeldOutBitsPerByte:F3} bits per byte).");
        ConsoleReporter.Info(RepeatLine(repeat));

        BaseFolder.Write(model, tokenizer, recipe, folder);
        return new Outcome(folder, false, recipe);
    }

    /// <summary>The probe's result as one line.</summary>
    public static string RepeatLine(RepeatProbe probe) => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"Held-out text read twice: {probe.FirstLoss:F3} nats per token the first time, {probe.RepeatLoss:F3} the second ({probe.Tokens:N0} tokens each; a model that reads its context pays well under 1 the second time).");

    /// <summary>The texts whose token frequencies choose the trimmed vocabulary: the Brown corpus and the fine-tuning records' training split.</summary>
    public static System.Collections.Generic.IEnumerable<string> VocabularyTexts() =>
        ExampleData.PretrainParagraphs().Concat(ExampleData.Train().SelectMany(r => new[] { r.Prompt, r.Completion }));

    /// <summary>A GPT-2 <c>config.json</c> for the tiny dimensions, so the base is a loadable GPT-2-layout checkpoint.</summary>
    public static JsonObject Gpt2Config(string dtype = "float32") => JsonNode.Parse($$"""
        {
          "architectures": ["GPT2LMHeadModel"],
          "model_type": "gpt2",
          "vocab_size": {{TinyConfig.Vocab}},
          "n_positions": {{TinyConfig.Context}},
          "n_embd": {{TinyConfig.Width}},
          "n_layer": {{TinyConfig.Layers}},
          "n_head": {{TinyConfig.Heads}},
          "activation_function": "gelu_new",
          "layer_norm_epsilon": 1e-05,
          "tie_word_embeddings": true,
          "torch_dtype": "{{dtype}}"
        }
        """)!.AsObject();
}
