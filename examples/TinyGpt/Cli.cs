using System;
using System.CommandLine;
using System.CommandLine.Invocation;
using System.IO;
using System.Linq;
using PeftGen.Precision;
using PeftGen.Training;
using TinyGpt.Jobs;
using TinyGpt.Rendering;
using static TorchSharp.torch;

namespace TinyGpt;

/// <summary>
/// The example's command line: the main job and its parts. A mistake in what the user gave (an option value, a data
/// file, an adapter or base folder) is one line <c>error: …</c> and exit code 2; any other exception is a failure of
/// the program, exit code 1 with a short message; <c>--verbose</c> adds the stack trace to either.
/// </summary>
public static class Cli
{
    /// <summary>The command finished.</summary>
    public const int Success = 0;

    /// <summary>The program failed: an exception it did not expect (a bug, or the machine: memory, disk).</summary>
    public const int Failure = 1;

    /// <summary>The user's input cannot be used: an option value, or a file or folder it names.</summary>
    public const int InputError = 2;

    /// <summary>Runs a command with the console's writers.</summary>
    /// <returns>The process exit code.</returns>
    public static int Run(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Runs a command: help to <paramref name="output"/>, errors to <paramref name="error"/> (the jobs' progress goes to the console).</summary>
    /// <returns>The process exit code: <see cref="Success"/>, <see cref="Failure"/> or <see cref="InputError"/>.</returns>
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        var verbose = new Option<bool>("--verbose") { Description = "On an error, print the stack trace too.", Recursive = true };
        var parsed = Commands(verbose).Parse(args);
        if (parsed.Action is ParseErrorAction)
        {
            ErrorReport.ParseErrors(parsed.Errors, error);
            return InputError;
        }
        try
        {
            return parsed.Invoke(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false });
        }
        catch (UserInputException e)
        {
            ErrorReport.InputError(e, parsed.GetValue(verbose), error);
            return InputError;
        }
        catch (Exception e)
        {
            ErrorReport.Failure(e, parsed.GetValue(verbose), error);
            return Failure;
        }
    }

    private static RootCommand Commands(Option<bool> verbose)
    {
        var methodNames = Enum.GetValues<Method>().Select(m => m.Cli()).ToArray();
        var quick = new Option<bool>("--quick") { Description = "Small settings: every step in under two minutes." };
        var device = OneOf(new Option<string>("--device") { Description = "cpu or cuda.", DefaultValueFactory = _ => "cpu" }, "cpu", "cuda");
        var output = new Option<string?>("--output") { Description = "Folder for this run's results (default runs/<command>-<time>)." };
        var method = new Option<Method>("--method")
        {
            Description = "full, lora, qlora or prompt.",
            HelpName = string.Join('|', methodNames),
            Required = true,
            CustomParser = r =>
            {
                var text = r.Tokens.Count == 1 ? r.Tokens[0].Value : "";
                if (MethodNames.TryParse(text, out var parsed)) return parsed;
                r.AddError($"--method {text}: not a method; use {Alternatives(methodNames)}.");
                return default;
            },
        };
        var basePath = ExistingFolder(new Option<string?>("--base") { Description = "A base folder written by pretrain (OUTPUT/base: model.safetensors, config.json, vocabulary.json, recipe.json, SHA256SUMS) to use instead of the shipped or a freshly pretrained base." });
        var adapter = ExistingFolder(new Option<string>("--adapter") { Description = "A folder saved by finetune or compare.", Required = true });
        var optionalAdapter = ExistingFolder(new Option<string?>("--adapter") { Description = "A folder saved by finetune or compare; none: the base model." });
        var data = ExistingFile(new Option<string>("--data") { Description = "A JSON Lines file of {\"prompt\", \"completion\"} records.", Required = true });
        var quantized = new Option<bool>("--quantized") { Description = "Load a LoRA adapter onto the NF4 (QLoRA) base." };
        var limit = AtLeast(new Option<int?>("--limit") { Description = "Score only the first N records." }, 1);
        var prompt = new Option<string?>("--prompt") { Description = "For example \"comedian (noun)\"." };
        var input = ExistingFile(new Option<string?>("--input") { Description = "A JSON Lines file of {\"prompt\": …} records, each optionally with \"adapter\": a folder (else --adapter's, else the base); generated together, written to OUTPUT/generations.jsonl." });
        var topP = new Option<double>("--top-p") { Description = "Sample among the most likely tokens that make up this much probability (1: all).", DefaultValueFactory = _ => 1.0 };
        topP.Validators.Add(r =>
        {
            var value = r.GetValueOrDefault<double>();
            if (!(value > 0 && value <= 1)) r.AddError($"--top-p {value}: must be above 0 and at most 1.");
        });
        var stop = new Option<string[]>("--stop") { Description = "Stop a completion where this text first appears (cut before it); repeat for several.", AllowMultipleArgumentsPerToken = false };
        var seed = new Option<long?>("--seed") { Description = "Seed of sampling (default: the run's seed)." };
        var temperature = new Option<double>("--temperature") { Description = "0: greedy.", DefaultValueFactory = _ => 0.0 };
        temperature.Validators.Add(r =>
        {
            var value = r.GetValueOrDefault<double>();
            if (!(value >= 0) || !double.IsFinite(value)) r.AddError($"--temperature {value}: must be 0 (greedy) or more.");
        });
        var topK = AtLeast(new Option<int>("--top-k") { Description = "Sample among the k most likely tokens (0: all).", DefaultValueFactory = _ => 0 }, 0);
        var maxNew = AtLeast(new Option<int>("--max-new-tokens") { DefaultValueFactory = _ => 24 }, 1);
        var force = new Option<bool>("--force") { Description = "Pretrain again even if a cached base exists." };
        var pretrainSteps = AtLeast(new Option<int?>("--pretrain-steps") { Description = "Pretrain a base with this many steps (cached under runs/cache) instead of using the base that ships in examples/TinyGpt/Base." }, 1);
        var pretrainFlag = new Option<bool>("--pretrain") { Description = "Pretrain a base with the run's settings (cached under runs/cache) instead of using the shipped one." };
        var snapshotEvery = AtLeast(new Option<int>("--snapshot-every") { Description = "pretrain: every N steps, write the model so far to OUTPUT/base.snapshot (0: never).", DefaultValueFactory = _ => 0 }, 0);
        var copySpans = new Option<double>("--copy-spans")
        {
            Description = "pretrain: the fraction of blocks that hold a span of their own text copied to a random later place, so the base learns to read its context (0: none, the shipped base's recipe).",
            DefaultValueFactory = _ => 0.0,
        };
        copySpans.Validators.Add(r =>
        {
            var value = r.GetValueOrDefault<double>();
            if (!(value >= 0 && value <= 1)) r.AddError($"--copy-spans {value}: must be a fraction from 0 to 1.");
        });
        var checkpointEvery = AtLeast(new Option<int>("--checkpoint-every") { Description = "pretrain: every N steps, write the trainer's state to OUTPUT/base.checkpoint, from which --resume continues (0: never).", DefaultValueFactory = _ => 0 }, 0);
        var stopAfter = AtLeast(new Option<int?>("--stop-after") { Description = "pretrain: stop after this step (a multiple of --checkpoint-every) without writing a base; --resume continues later." }, 1);
        var resume = new Option<bool>("--resume") { Description = "pretrain: continue from the checkpoint in OUTPUT/base.checkpoint (same options as the run that wrote it)." };
        var threads = AtLeast(new Option<int?>("--threads") { Description = "Torch's CPU threads (default: one per core)." }, 1);
        var precision = new Option<string>("--precision")
        {
            Description = "auto (bfloat16 where the CPU or GPU has it fast, else float32), float32, bfloat16, or float16 (with loss scaling, for GPUs without fast bfloat16; slow on CPUs).",
            HelpName = "auto|float32|bfloat16|float16",
            DefaultValueFactory = _ => "auto",
        };
        precision.Validators.Add(r =>
        {
            var text = r.GetValueOrDefault<string>();
            try
            {
                PrecisionSupport.Parse(text);
            }
            catch (ArgumentException)
            {
                r.AddError($"--precision {text}: not a precision; use auto, float32, bfloat16 or float16.");
            }
        });
        var releaseMemory = new Option<bool>("--release-freed-memory")
        {
            Description = "Hand the C heap's free pages back to the system when a long run's resident memory has grown (TrainerOptions.ReleaseFreedMemory): a lower peak, somewhat slower steps.",
        };
        var mmapThreshold = AtLeast(new Option<int?>("--mmap-threshold")
        {
            Description = "Fix glibc's mmap threshold for training at this many MiB (TrainerOptions.NativeMmapThresholdBytes; 4 is a good choice): a lower, steadier peak, full fine-tuning's steps somewhat slower. Unset: glibc's adaptive threshold.",
        }, 1);
        mmapThreshold.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int?>() is int mib && mib > ProcessMemory.MaximumMmapThresholdBytes >> 20)
                r.AddError($"--mmap-threshold {mib}: glibc accepts at most {ProcessMemory.MaximumMmapThresholdBytes >> 20} MiB.");
        });
        var finetuneSteps = AtLeast(new Option<int?>("--finetune-steps") { Description = "Override the fine-tuning steps of every method." }, 1);
        var decodingSamples = AtLeast(new Option<int?>("--decoding-samples")
        {
            Description = "Completions sampled per prompt for minimum-Bayes-risk decoding (default 8, --quick 4); 0 scores greedy outputs only, which is faster.",
        }, 0);
        decodingSamples.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int?>() == 1) r.AddError("--decoding-samples 1: a consensus needs at least 2 samples; use 0 for greedy outputs.");
        });

        var learningRate = new Option<double?>("--learning-rate") { Description = "The method's peak learning rate instead of its own (full 5e-4, LoRA and QLoRA 3e-3, prompt 1e-1)." };
        learningRate.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<double?>() is double value && !(value > 0 && double.IsFinite(value))) r.AddError($"--learning-rate {value}: must be a number above 0.");
        });
        var scoreOn = OneOf(new Option<string>("--score-on")
        {
            Description = "validation, or selection: score on the held-out training records that choose checkpoints, to choose a setting without reading validation.",
            DefaultValueFactory = _ => "validation",
        }, "validation", "selection");

        RunContext Context(ParseResult r, string command)
        {
            set_num_threads(r.GetValue(threads) ?? Environment.ProcessorCount);
            var settings = r.GetValue(quick) ? JobSettings.Quick : JobSettings.Default;
            if (r.GetValue(pretrainSteps) is int p) settings = settings with { PretrainSteps = p };
            if (r.GetValue(copySpans) is double spans and > 0) settings = settings with { PretrainCopySpans = spans };
            if (r.GetValue(finetuneSteps) is int f) settings = settings with { FineTuneSteps = f };
            if (r.GetValue(decodingSamples) is int n) settings = settings with { DecodingSamples = n };
            if (r.GetValue(learningRate) is double rate) settings = settings with { LearningRate = rate };
            if (string.Equals(r.GetValue(scoreOn), "selection", StringComparison.OrdinalIgnoreCase)) settings = settings with { ScoreOnSelection = true };
            var context = RunContext.Create(settings, command, r.GetValue(output), r.GetValue(device)!) with
            {
                Precision = PrecisionSupport.Parse(r.GetValue(precision)!),
                Pretrain = r.GetValue(pretrainFlag) || r.GetValue(pretrainSteps) is not null,
                ReleaseFreedMemory = r.GetValue(releaseMemory),
                NativeMmapThresholdBytes = r.GetValue(mmapThreshold) is int mib ? (long)mib << 20 : null,
            };
            // An explicit bfloat16 or float16 this CPU only emulates: said before anything runs, whatever the command.
            if (PrecisionSupport.SlowComputeWarning(PrecisionSupport.ComputeDType(context.Precision, context.Device), context.Device) is { } slow)
                ConsoleReporter.WarnOnce(slow);
            return context;
        }

        var compare = new Command("compare", "Fine-tune the shipped (or a freshly pretrained) tiny base full/LoRA/QLoRA/prompt, score against two baselines and compare.") { quick, device, output, pretrainFlag, pretrainSteps, finetuneSteps, decodingSamples, precision, releaseMemory, mmapThreshold, threads };
        compare.SetAction(r => { CompareJob.Run(Context(r, "compare")); return Success; });

        var pretrain = new Command("pretrain", "Pretrain the tiny GPT on the Brown corpus and WordNet's training definitions; writes the base (bfloat16 safetensors, vocabulary, recipe, SHA256SUMS) to OUTPUT/base.") { quick, device, output, force, pretrainSteps, copySpans, precision, releaseMemory, mmapThreshold, snapshotEvery, checkpointEvery, stopAfter, resume, threads };
        pretrain.SetAction(r =>
        {
            var context = Context(r, "pretrain");
            var segment = new PretrainJob.Segment(r.GetValue(checkpointEvery), r.GetValue(stopAfter), r.GetValue(resume));
            var outcome = PretrainJob.Run(context, Path.Combine(context.OutputFolder, "base"), r.GetValue(force) || segment.Resume, r.GetValue(snapshotEvery), segment);
            if (outcome is not null) Console.WriteLine($"Base: {outcome.BaseFolder} (held-out loss {outcome.Recipe.HeldOutLoss:F3}, perplexity {outcome.Recipe.HeldOutPerplexity:F1})");
            return Success;
        });

        var finetune = new Command("finetune", "Fine-tune the base one way, score it and save the adapter.")
        {
            method, basePath, quick, device, output, pretrainFlag, pretrainSteps, finetuneSteps, learningRate, scoreOn, decodingSamples, precision, releaseMemory, mmapThreshold, threads,
        };
        finetune.SetAction(r =>
        {
            var context = Context(r, "finetune");
            var pretrained = BaseChoice.Resolve(context, r.GetValue(basePath));
            var result = FineTuneJob.Run(context, r.GetValue(method), pretrained.Tokenizer, pretrained.Folder);
            Reports.PrintTable([], [result]);
            Console.WriteLine($"Saved to {result.AdapterFolder}");
            return Success;
        });

        var eval = new Command("eval", "Score an adapter on a JSONL file and write the scores as JSON.") { adapter, data, quantized, basePath, limit, quick, device, output, decodingSamples, precision, threads };
        eval.SetAction(r =>
        {
            AdapterJobs.Evaluate(Context(r, "eval"), r.GetValue(adapter)!, r.GetValue(data)!, r.GetValue(quantized), r.GetValue(basePath), r.GetValue(limit));
            return Success;
        });

        var generate = new Command("generate", "Generate a definition for one prompt (--prompt) or for each record of a JSONL file (--input), with the base or adapters.")
        {
            optionalAdapter, prompt, input, quantized, basePath, temperature, topK, topP, stop, seed, maxNew, quick, device, output, precision, threads,
        };
        generate.Validators.Add(r =>
        {
            bool hasPrompt = r.GetValue(prompt) is not null, hasInput = r.GetValue(input) is not null;
            if (hasPrompt == hasInput) r.AddError(hasPrompt ? "--prompt and --input: give one of them, not both." : "generate needs --prompt TEXT or --input FILE.jsonl.");
        });
        generate.SetAction(r =>
        {
            var context = Context(r, "generate");
            var sampling = new Sampling(r.GetValue(temperature), r.GetValue(topK), r.GetValue(topP), r.GetValue(seed), r.GetValue(maxNew), r.GetValue(stop) ?? []);
            var requests = r.GetValue(input) is { } file
                ? AdapterJobs.ReadRequests(file, r.GetValue(optionalAdapter))
                : [new GenerationRequest(r.GetValue(prompt)!, r.GetValue(optionalAdapter))];
            AdapterJobs.Generate(context, requests, r.GetValue(quantized), r.GetValue(basePath), sampling, writeFile: r.GetValue(input) is not null);
            return Success;
        });

        var probe = new Command("probe", "Measure whether a base reads its context: held-out Brown text read twice, nats per token the first time and the second.") { basePath, quick, device, output, precision, threads };
        probe.SetAction(r =>
        {
            var context = Context(r, "probe");
            var pretrained = BaseChoice.Resolve(context, r.GetValue(basePath));
            Console.WriteLine(PretrainJob.RepeatLine(RepeatProbe.Measure(context, pretrained)));
            return Success;
        });

        var parameters = new Command("params", "Print the compile-time accounting of every model the examples define (nothing is allocated).");
        parameters.SetAction(_ => { ParamsReport.Print(); return Success; });

        var root = new RootCommand("TinyGpt: PeftGen's main job. With no command it runs compare.") { quick, device, output, pretrainFlag, pretrainSteps, finetuneSteps, precision, threads, verbose };
        foreach (var command in new[] { compare, pretrain, finetune, eval, generate, probe, parameters }) root.Subcommands.Add(command);
        root.SetAction(r => { CompareJob.Run(Context(r, "compare")); return Success; });
        return root;
    }

    // Option values are checked while the command line is parsed, so a mistake is reported before anything loads.

    private static Option<string> OneOf(Option<string> option, params string[] values)
    {
        option.HelpName = string.Join('|', values);
        option.Validators.Add(r =>
        {
            var value = r.GetValueOrDefault<string>();
            if (!values.Contains(value, StringComparer.OrdinalIgnoreCase))
                r.AddError($"{option.Name} {value}: use {Alternatives(values)}.");
        });
        return option;
    }

    private static string Alternatives(string[] values) => values.Length == 1 ? values[0] : $"{string.Join(", ", values[..^1])} or {values[^1]}";

    private static Option<int> AtLeast(Option<int> option, int minimum)
    {
        option.Validators.Add(r =>
        {
            var value = r.GetValueOrDefault<int>();
            if (value < minimum) r.AddError($"{option.Name} {value}: must be {minimum} or more.");
        });
        return option;
    }

    private static Option<int?> AtLeast(Option<int?> option, int minimum)
    {
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int?>() is int value && value < minimum) r.AddError($"{option.Name} {value}: must be {minimum} or more.");
        });
        return option;
    }

    private static Option<T> ExistingFile<T>(Option<T> option) where T : class?
    {
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<T>() is string path && !File.Exists(path))
                r.AddError(Directory.Exists(path) ? $"{option.Name} {path}: a folder, not a file." : $"{option.Name} {path}: no such file.");
        });
        return option;
    }

    private static Option<T> ExistingFolder<T>(Option<T> option) where T : class?
    {
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<T>() is string path && !Directory.Exists(path))
                r.AddError(File.Exists(path) ? $"{option.Name} {path}: a file, not a folder." : $"{option.Name} {path}: no such folder.");
        });
        return option;
    }
}
