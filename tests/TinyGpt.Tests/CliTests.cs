using System;
using System.IO;
using System.Linq;
using System.Text.Json.Nodes;
using PeftGen;
using PeftGen.Formats;
using PeftGen.Formats.SafeTensors;
using PeftGen.Precision;
using PeftGen.Training;
using TinyGpt.Jobs;
using TinyGpt.Models;
using TinyGpt.Rendering;
using Xunit;
using static TorchSharp.torch;

namespace TinyGpt.Tests;

/// <summary>
/// The command line as a new user meets it: each mistake is one line <c>error: …</c> and exit code 2, with the stack
/// trace only under <c>--verbose</c>; anything else is exit code 1.
/// </summary>
[Collection("torch")]
public sealed class CliTests : IDisposable
{
    private readonly string folder = Path.Combine(Path.GetTempPath(), "peftgen-cli-" + Guid.NewGuid().ToString("N"));
    private readonly string output;
    private readonly string valid = Path.Combine(ExampleData.Folder, "valid.jsonl");

    public CliTests()
    {
        Directory.CreateDirectory(folder);
        output = Path.Combine(folder, "run");
    }

    public void Dispose() => Directory.Delete(folder, recursive: true);

    [Fact]
    public void A_truncated_adapter_file_is_one_line_naming_the_file()
    {
        var adapter = SavedLoraAdapter("truncated");
        var weights = Path.Combine(adapter, "adapter_model.safetensors");
        using (var file = new FileStream(weights, FileMode.Open)) file.SetLength(file.Length / 2);

        var line = AssertInputError(["eval", "--adapter", adapter, "--data", valid, "--limit", "1"], verboseTrace: true);
        Assert.StartsWith($"error: Cannot load '{adapter}': '{weights}': ", line, StringComparison.Ordinal);
    }

    [Fact]
    public void An_adapter_of_another_rank_is_one_line_with_the_first_mismatch_and_the_count_of_the_others()
    {
        var adapter = SavedLoraAdapter("rank8");
        var weights = Path.Combine(adapter, "adapter_model.safetensors");
        using (var scope = NewDisposeScope())
        {
            var tensors = SafeTensorsFile.Load(weights);
            foreach (var name in tensors.Keys.ToList())
                tensors[name] = name.Contains(".lora_A.", StringComparison.Ordinal) ? tensors[name].narrow(0, 0, 8) : tensors[name].narrow(1, 0, 8).contiguous();
            SafeTensorsFile.Save(weights, tensors);
        }
        var configPath = Path.Combine(adapter, "adapter_config.json");
        var config = JsonNode.Parse(File.ReadAllText(configPath))!;
        config["r"] = 8;
        config["lora_alpha"] = 16;
        File.WriteAllText(configPath, config.ToJsonString());

        var line = AssertInputError(["eval", "--adapter", adapter, "--data", valid, "--limit", "1"], verboseTrace: true);
        Assert.Contains($"'{adapter}' does not fit the model: ", line);
        Assert.Contains("rank 8", line);
        Assert.Contains("more problems (--verbose lists them)", line);
        // --verbose shows every mismatch the library found.
        var (_, verbose) = Run("eval", "--adapter", adapter, "--data", valid, "--limit", "1", "--verbose");
        Assert.Contains("CheckpointMismatchException", verbose);
        Assert.Contains("WrongShape", verbose);
    }

    [Fact]
    public void A_bad_json_lines_record_is_one_line_with_its_line_number_before_the_model_loads()
    {
        var data = Path.Combine(folder, "bad.jsonl");
        File.WriteAllText(data, "{\"prompt\": \"paint (verb)\", \"completion\": \"make a painting\"}\n{\"prompt\": \"sing (verb)\", completion: \"x\"}\n");

        var line = AssertInputError(["eval", "--adapter", SavedLoraAdapter("good"), "--data", data], verboseTrace: true);
        Assert.StartsWith($"error: {data}:2: ", line, StringComparison.Ordinal);
    }

    [Fact]
    public void An_empty_data_file_is_one_line_saying_it_holds_no_records()
    {
        var data = Path.Combine(folder, "empty.jsonl");
        File.WriteAllText(data, "\n");

        var line = AssertInputError(["eval", "--adapter", SavedLoraAdapter("good"), "--data", data], verboseTrace: true);
        Assert.Contains($"The data file '{data}' holds no records", line);
    }

    [Fact]
    public void An_unknown_method_is_refused_while_parsing_with_the_valid_methods_listed()
    {
        var line = AssertInputError(["finetune", "--method", "bogus"], verboseTrace: false);
        Assert.Equal("error: --method bogus: not a method; use full, lora, qlora or prompt.", line);
        Assert.False(Directory.Exists(output), "nothing ran: the run's folder was not even created");
    }

    [Fact]
    public void Device_cuda_without_a_gpu_is_one_line_before_anything_loads()
    {
        // The CPU backend the tests build against has no CUDA; with the CUDA backend on a GPU machine there is no mistake to report.
        if (cuda.is_available()) return;

        var line = AssertInputError(["finetune", "--method", "lora", "--device", "cuda"], verboseTrace: true);
        Assert.StartsWith("error: --device cuda: no CUDA device is usable.", line, StringComparison.Ordinal);
        Assert.False(Directory.Exists(output), "the device is checked before the run's folder is created");
    }

    [Fact]
    public void The_run_context_hands_precision_and_the_heap_settings_to_every_trainer_it_configures()
    {
        var context = RunContext.Create(JobSettings.Default, "finetune", output, "cpu");
        var defaults = context.TrainerOptions();
        Assert.Equal((TrainingPrecision.Auto, false, (long?)null), (defaults.Precision, defaults.ReleaseFreedMemory, defaults.NativeMmapThresholdBytes));

        var chosen = (context with { Precision = TrainingPrecision.BFloat16, ReleaseFreedMemory = true, NativeMmapThresholdBytes = 4L << 20 }).TrainerOptions();
        Assert.Equal((TrainingPrecision.BFloat16, true, (long?)(4L << 20)), (chosen.Precision, chosen.ReleaseFreedMemory, chosen.NativeMmapThresholdBytes));
        // A job's own schedule leaves them as they are (PretrainJob and FineTuneJob build theirs this way).
        var job = chosen with { MaxSteps = 3, LearningRate = 1e-3 };
        Assert.Equal((TrainingPrecision.BFloat16, true, (long?)(4L << 20), 3), (job.Precision, job.ReleaseFreedMemory, job.NativeMmapThresholdBytes, job.MaxSteps));
    }

    [Fact]
    public void Other_bad_option_values_and_paths_are_refused_while_parsing()
    {
        Assert.Equal("error: --device gpu: use cpu or cuda.", AssertInputError(["finetune", "--method", "lora", "--device", "gpu"], verboseTrace: false));
        Assert.Equal("error: --precision fp8: not a precision; use auto, float32, bfloat16 or float16.", AssertInputError(["compare", "--precision", "fp8"], verboseTrace: false));
        Assert.Equal("error: --limit 0: must be 1 or more.", AssertInputError(["eval", "--adapter", folder, "--data", valid, "--limit", "0"], verboseTrace: false));
        Assert.Equal("error: --decoding-samples 1: a consensus needs at least 2 samples; use 0 for greedy outputs.", AssertInputError(["compare", "--decoding-samples", "1"], verboseTrace: false));
        Assert.Equal("error: --decoding-samples -2: must be 0 or more.", AssertInputError(["compare", "--decoding-samples", "-2"], verboseTrace: false));
        Assert.Equal("error: --learning-rate 0: must be a number above 0.", AssertInputError(["finetune", "--method", "prompt", "--learning-rate", "0"], verboseTrace: false));
        Assert.Equal("error: --mmap-threshold 33: glibc accepts at most 32 MiB.", AssertInputError(["finetune", "--method", "full", "--mmap-threshold", "33"], verboseTrace: false));
        Assert.Equal("error: --mmap-threshold 0: must be 1 or more.", AssertInputError(["pretrain", "--mmap-threshold", "0"], verboseTrace: false));
        Assert.Equal("error: --copy-spans 1.5: must be a fraction from 0 to 1.", AssertInputError(["pretrain", "--copy-spans", "1.5"], verboseTrace: false));
        Assert.Equal("error: --score-on test: use validation or selection.", AssertInputError(["finetune", "--method", "lora", "--score-on", "test"], verboseTrace: false));
        var missing = Path.Combine(folder, "missing.jsonl");
        Assert.Equal($"error: --data {missing}: no such file.", AssertInputError(["eval", "--adapter", folder, "--data", missing], verboseTrace: false));
        Assert.Equal($"error: --adapter {valid}: a file, not a folder.", AssertInputError(["eval", "--adapter", valid, "--data", valid], verboseTrace: false));
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void Generate_completes_a_file_of_prompts_each_with_its_adapter_in_order()
    {
        var adapter = SavedLoraAdapter("tenant");
        var input = Path.Combine(folder, "requests.jsonl");
        File.WriteAllText(input,
            "{\"prompt\": \"comedian (noun)\"}\n" +
            "{\"prompt\": \"paint (verb): he painted all day\", \"adapter\": \"tenant\"}\n\n" +
            "{\"prompt\": \"untidiness (noun)\", \"adapter\": null}\n");
        var (code, error) = Run("generate", "--input", input, "--max-new-tokens", "4", "--top-p", "0.9", "--temperature", "0.7", "--stop", ".");
        Assert.True(code == Cli.Success, error);
        var lines = File.ReadAllLines(Path.Combine(output, "generations.jsonl")).Select(l => JsonNode.Parse(l)!).ToArray();
        Assert.Equal(["comedian (noun)", "paint (verb): he painted all day", "untidiness (noun)"], lines.Select(l => (string)l["prompt"]!));
        Assert.Equal([null, adapter, null], lines.Select(l => (string?)l["adapter"]));
        Assert.All(lines, l => Assert.DoesNotContain(".", (string)l["completion"]!));
        // Records that share an adapter are decoded together: the same as decoding the prompt alone.
        var alone = AdapterJobs.Generate(RunContext.Create(JobSettings.Default, "generate", Path.Combine(folder, "alone"), "cpu"),
            [new GenerationRequest("untidiness (noun)", null)], quantized: false, basePath: null, new Sampling(0, 0, 1, null, 4, []), writeFile: false);
        var together = AdapterJobs.Generate(RunContext.Create(JobSettings.Default, "generate", Path.Combine(folder, "together"), "cpu"),
            [new GenerationRequest("comedian (noun)", null), new GenerationRequest("untidiness (noun)", null)], quantized: false, basePath: null, new Sampling(0, 0, 1, null, 4, []), writeFile: false);
        Assert.Equal(alone[0], together[1]);
    }

    [Fact]
    public void Generate_refuses_a_missing_prompt_both_inputs_a_bad_top_p_and_a_bad_request_line()
    {
        Assert.Equal("error: generate needs --prompt TEXT or --input FILE.jsonl.", AssertInputError(["generate"], verboseTrace: false));
        Assert.Equal("error: --prompt and --input: give one of them, not both.", AssertInputError(["generate", "--prompt", "x (noun)", "--input", valid], verboseTrace: false));
        Assert.Equal("error: --top-p 0: must be above 0 and at most 1.", AssertInputError(["generate", "--prompt", "x (noun)", "--top-p", "0"], verboseTrace: false));
        var input = Path.Combine(folder, "requests.jsonl");
        File.WriteAllText(input, "{\"prompt\": \"comedian (noun)\"}\n{\"prompt\": \"x\", \"adapter\": \"nowhere\"}\n");
        var line = AssertInputError(["generate", "--input", input], verboseTrace: true);
        Assert.Equal($"error: {input}, line 2: the adapter folder '{Path.Combine(folder, "nowhere")}' does not exist.", line);
    }

    [Fact]
    public void Help_lists_the_valid_values_and_exits_with_zero()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        Assert.Equal(Cli.Success, Cli.Run(["finetune", "--help"], output, error));
        Assert.Contains("--method <full|lora|qlora|prompt>", output.ToString());
        Assert.Contains("--device <cpu|cuda>", output.ToString());
        Assert.Contains("--precision <auto|float32|bfloat16|float16>", output.ToString());
        Assert.Contains("--release-freed-memory", output.ToString());
        Assert.Contains("--mmap-threshold", output.ToString());
        Assert.Contains("--verbose", output.ToString());
        Assert.Equal("", error.ToString());
    }

    [Fact]
    public void An_unexpected_exception_is_a_short_message_with_the_hint_and_its_trace_only_under_verbose()
    {
        static void Fail() => throw new InvalidOperationException("The weights moved.\nSecond line.");
        var failure = Record.Exception(Fail);

        var brief = new StringWriter();
        ErrorReport.Failure(failure, verbose: false, brief);
        var lines = Lines(brief.ToString());
        Assert.Equal(["error: System.InvalidOperationException: The weights moved. …", "TinyGpt did not expect this (a bug, or the machine: memory, disk); run again with --verbose for the stack trace."], lines);

        var verbose = new StringWriter();
        ErrorReport.Failure(failure, verbose: true, verbose);
        Assert.Contains("Second line.", verbose.ToString());
        Assert.Contains("   at ", verbose.ToString());
    }

    // Runs the arguments twice: without --verbose it must be exit code 2 and one line with no trace; with --verbose
    // the same line first, then the exception's trace when the mistake was found by running (none exists for a
    // mistake found while parsing). Returns the line.
    private string AssertInputError(string[] args, bool verboseTrace)
    {
        var (code, error) = Run(args);
        Assert.Equal(Cli.InputError, code);
        var line = Assert.Single(Lines(error));
        Assert.StartsWith("error: ", line, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", error, StringComparison.Ordinal);

        var (verboseCode, verbose) = Run([.. args, "--verbose"]);
        Assert.Equal(Cli.InputError, verboseCode);
        var verboseLines = Lines(verbose);
        Assert.Equal(line, verboseLines[0]);
        if (verboseTrace)
        {
            Assert.Contains(typeof(UserInputException).FullName!, verbose);
            Assert.Contains(verboseLines, l => l.StartsWith("   at ", StringComparison.Ordinal));
        }
        else
        {
            Assert.Single(verboseLines);
        }
        return line;
    }

    private (int Code, string Error) Run(params string[] args)
    {
        var error = new StringWriter();
        var code = Cli.Run([.. args, "--threads", "1", "--output", output], TextWriter.Null, error);
        return (code, error.ToString());
    }

    private string SavedLoraAdapter(string name)
    {
        var folder = Path.Combine(this.folder, name);
        using var scope = NewDisposeScope();
        using var model = new TinyGptLora();
        ((IPeftModel)model).SaveAdapter(folder, baseModelNameOrPath: "tinygpt-brown");
        return folder;
    }

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray();
}
