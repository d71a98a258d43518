using System;
using System.CommandLine;
using System.Linq;
using TinyGpt.Jobs;
using TinyGpt.Rendering;
using static TorchSharp.torch;

// The main job and its parts. With no command: compare.
var quick = new Option<bool>("--quick") { Description = "Small settings: every step in under two minutes." };
var device = new Option<string>("--device") { Description = "cpu or cuda.", DefaultValueFactory = _ => "cpu" };
var output = new Option<string?>("--output") { Description = "Folder for this run's results (default runs/<command>-<time>)." };
var method = new Option<string>("--method") { Description = "full, lora, qlora or prompt.", Required = true };
var basePath = new Option<string?>("--base") { Description = "A GPT-2-layout checkpoint folder (config.json + model.safetensors) to fine-tune instead of the cached pretrained base." };
var adapter = new Option<string>("--adapter") { Description = "A folder saved by finetune or compare.", Required = true };
var optionalAdapter = new Option<string?>("--adapter") { Description = "A folder saved by finetune or compare; none: the base model." };
var data = new Option<string>("--data") { Description = "A JSON Lines file of {\"prompt\", \"completion\"} records.", Required = true };
var quantized = new Option<bool>("--quantized") { Description = "Load a LoRA adapter onto the NF4 (QLoRA) base." };
var limit = new Option<int?>("--limit") { Description = "Score only the first N records." };
var prompt = new Option<string>("--prompt") { Description = "For example \"comedian (noun)\".", Required = true };
var temperature = new Option<double>("--temperature") { Description = "0: greedy.", DefaultValueFactory = _ => 0.0 };
var topK = new Option<int>("--top-k") { Description = "Sample among the k most likely tokens (0: all).", DefaultValueFactory = _ => 0 };
var maxNew = new Option<int>("--max-new-tokens") { DefaultValueFactory = _ => 24 };
var force = new Option<bool>("--force") { Description = "Pretrain again even if a cached base exists." };
var pretrainSteps = new Option<int?>("--pretrain-steps") { Description = "Pretrain a base with this many steps (cached under runs/cache) instead of using the base that ships in examples/TinyGpt/Base." };
var pretrainFlag = new Option<bool>("--pretrain") { Description = "Pretrain a base with the run's settings (cached under runs/cache) instead of using the shipped one." };
var snapshotEvery = new Option<int>("--snapshot-every") { Description = "pretrain: every N steps, write the model so far to OUTPUT/base.snapshot (0: never).", DefaultValueFactory = _ => 0 };
var threads = new Option<int?>("--threads") { Description = "Torch's CPU threads (default: one per core)." };
var precision = new Option<string>("--precision") { Description = "auto (bfloat16 where the CPU or GPU has it fast, else float32), float32 or bfloat16.", DefaultValueFactory = _ => "auto" };
var finetuneSteps = new Option<int?>("--finetune-steps") { Description = "Override the fine-tuning steps of every method." };

RunContext Context(ParseResult r, string command)
{
    set_num_threads(r.GetValue(threads) ?? Environment.ProcessorCount);
    var settings = r.GetValue(quick) ? JobSettings.Quick : JobSettings.Default;
    if (r.GetValue(pretrainSteps) is int p) settings = settings with { PretrainSteps = p };
    if (r.GetValue(finetuneSteps) is int f) settings = settings with { FineTuneSteps = f };
    return RunContext.Create(settings, command, r.GetValue(output), r.GetValue(device)!) with
    {
        Precision = PeftGen.Precision.PrecisionSupport.Parse(r.GetValue(precision)!),
        Pretrain = r.GetValue(pretrainFlag) || r.GetValue(pretrainSteps) is not null,
    };
}

var compare = new Command("compare", "Fine-tune the shipped (or a freshly pretrained) tiny base full/LoRA/QLoRA/prompt, score against two baselines and compare.") { quick, device, output, pretrainFlag, pretrainSteps, finetuneSteps, precision, threads };
compare.SetAction(r => { CompareJob.Run(Context(r, "compare")); return 0; });

var pretrain = new Command("pretrain", "Pretrain the tiny GPT on the Brown corpus and WordNet's training definitions; writes the base (bfloat16 safetensors, vocabulary, recipe, SHA256SUMS) to OUTPUT/base.") { quick, device, output, force, pretrainSteps, precision, snapshotEvery, threads };
pretrain.SetAction(r =>
{
    var context = Context(r, "pretrain");
    var outcome = PretrainJob.Run(context, System.IO.Path.Combine(context.OutputFolder, "base"), r.GetValue(force), r.GetValue(snapshotEvery));
    Console.WriteLine($"Base: {outcome.BaseFolder} (held-out loss {outcome.Recipe.HeldOutLoss:F3}, perplexity {outcome.Recipe.HeldOutPerplexity:F1})");
    return 0;
});

var finetune = new Command("finetune", "Fine-tune the base one way, score it and save the adapter.") { method, basePath, quick, device, output, pretrainFlag, pretrainSteps, finetuneSteps, precision, threads };
finetune.SetAction(r =>
{
    var context = Context(r, "finetune");
    var pretrained = BaseChoice.Resolve(context, r.GetValue(basePath));
    var result = FineTuneJob.Run(context, MethodNames.Parse(r.GetValue(method)!), pretrained.Tokenizer, pretrained.Folder);
    Reports.PrintTable([], [result]);
    Console.WriteLine($"Saved to {result.AdapterFolder}");
    return 0;
});

var eval = new Command("eval", "Score an adapter on a JSONL file and write the scores as JSON.") { adapter, data, quantized, basePath, limit, quick, device, output, precision, threads };
eval.SetAction(r =>
{
    AdapterJobs.Evaluate(Context(r, "eval"), r.GetValue(adapter)!, r.GetValue(data)!, r.GetValue(quantized), r.GetValue(basePath), r.GetValue(limit));
    return 0;
});

var generate = new Command("generate", "Generate a definition for one prompt.") { optionalAdapter, prompt, quantized, basePath, temperature, topK, maxNew, quick, device, output, precision, threads };
generate.SetAction(r =>
{
    AdapterJobs.Generate(Context(r, "generate"), r.GetValue(optionalAdapter), r.GetValue(prompt)!, r.GetValue(quantized), r.GetValue(basePath),
        r.GetValue(temperature), r.GetValue(topK), r.GetValue(maxNew));
    return 0;
});

var parameters = new Command("params", "Print the compile-time accounting of every model the examples define (nothing is allocated).");
parameters.SetAction(_ => { ParamsReport.Print(); return 0; });

var root = new RootCommand("TinyGpt: PeftGen's main job. With no command it runs compare.") { quick, device, output, pretrainFlag, pretrainSteps, finetuneSteps, precision, threads };
foreach (var command in new[] { compare, pretrain, finetune, eval, generate, parameters }) root.Subcommands.Add(command);
root.SetAction(r => { CompareJob.Run(Context(r, "compare")); return 0; });
return root.Parse(args).Invoke();
