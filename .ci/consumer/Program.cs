using System;
using System.IO;
using PeftGen;
using PeftGen.Architectures;
using PeftGen.Checkpoints;
using PeftGen.Data;
using PeftGen.Precision;
using PeftGen.Training;
using TorchSharp;
using static TorchSharp.torch;

// Uses members that only the generator inside the package can have written: if it did not run (for example
// skipped with CS8032), this does not compile.
using (var model = new Consumer.Tiny())
{
    Console.WriteLine($"consumer: {Consumer.Tiny.Accounting.Summary}");
    using var x = ones(2, 8);
    using var y = model.forward(x);
    Console.WriteLine($"consumer: forward [{string.Join(", ", y.shape)}], {((IPeftModel)model).TrainableParameters().Count} trainable tensors");
    Console.WriteLine($"consumer: adapter '{Consumer.Tiny.Adapters.Default}', width {model.Dims.Width}, the plan trains {Consumer.Tiny.TrainingPlan.TrainableParameters} parameters");
}

// The package's architectures, whose blocks the package's own assembly carries: a model is a configuration and a line.
var work = Directory.CreateTempSubdirectory("peftgen-consumer-").FullName;
try
{
    Consumer.Run.Architecture<Consumer.QwenFull, Consumer.MyQwen>("qwen2", work, PretrainedLoadOptions.Default, Consumer.MyQwen.Accounting.Summary);
    Consumer.Run.Architecture<Consumer.Gpt2Full, Consumer.MyGpt2>("gpt2", work, PretrainedLoadOptions.Gpt2, Consumer.MyGpt2.Accounting.Summary);
}
finally
{
    Directory.Delete(work, recursive: true);
}

namespace Consumer
{
    public static class TinyConfig
    {
        public const int Width = 8, Hidden = 16;
    }

    [PeftModel(typeof(TinyConfig))]
    [Lora(Rank = 2, Alpha = 4)]
    public partial class Tiny : nn.Module<Tensor, Tensor>
    {
        [Linear("Width", "Hidden")] public partial LoraLinear up { get; }
        [Linear("Hidden", "Width")] public partial LoraLinear down { get; }

        public override Tensor forward(Tensor x) => down.forward(nn.functional.relu(up.forward(x)));
    }

    /// <summary>Qwen2's shape at toy size: grouped-query attention, q/k/v bias, untied head.</summary>
    public static class TinyQwen2
    {
        public const int Vocab = 64, Context = 32, Width = 16, Layers = 2, Heads = 4, KvHeads = 2, Mlp = 32;
        public const double RmsNormEps = 1e-6, RopeTheta = 1000000.0;
        public const bool QkvBias = true;
    }

    public static class TinyGpt2
    {
        public const int Vocab = 64, Context = 32, Width = 16, Layers = 2, Heads = 2;
    }

    [PeftModel(typeof(TinyQwen2), ContextLength = "Context")]
    [Lora(Rank = 4, Alpha = 8, Targets = ["q_proj", "v_proj"])]
    public partial class MyQwen : Qwen2ForCausalLM { }

    [PeftModel(typeof(TinyGpt2), ContextLength = "Context")]
    [Lora(Rank = 4, Alpha = 8, Targets = ["c_attn"])]
    public partial class MyGpt2 : Gpt2LMHeadModel { }

    /// <summary>Every weight trains: saves the checkpoint the LoRA models load.</summary>
    [PeftModel(typeof(TinyQwen2), ContextLength = "Context")]
    [Trainable]
    public partial class QwenFull : Qwen2ForCausalLM { }

    [PeftModel(typeof(TinyGpt2), ContextLength = "Context")]
    [Trainable]
    public partial class Gpt2Full : Gpt2LMHeadModel { }

    public static class Run
    {
        /// <summary>
        /// Saves a checkpoint in Hugging Face's layout, loads it into the LoRA model through the library's loader,
        /// trains one step, saves the adapter (PEFT's layout) and loads it into a fresh model: both give the same logits.
        /// </summary>
        public static void Architecture<TFull, TLora>(string name, string work, PretrainedLoadOptions loadOptions, string summary)
            where TFull : nn.Module<Tensor, Tensor>, IPeftTrainableModel, new()
            where TLora : nn.Module<Tensor, Tensor>, IPeftTrainableModel, new()
        {
            var checkpoint = Path.Combine(work, name + "-base");
            var adapter = Path.Combine(work, name + "-adapter");
            using (var full = new TFull()) full.SaveTrained(checkpoint);

            using var model = new TLora();
            PretrainedLoader.Load(model, checkpoint, loadOptions);
            using (var trainer = model.CreateTrainer(new TrainerOptions { MaxSteps = 1, LearningRate = 1e-2, Precision = TrainingPrecision.Float32 }))
            {
                var result = trainer.Train(new RandomTokens());
                if (result.Steps.Count != 1) throw new InvalidOperationException($"{name}: {result.Steps.Count} steps ran, not one ({result.StopReason}).");
                Console.WriteLine($"consumer: {name}: {summary}; one step, loss {result.Steps[0].Loss:F3}");
            }
            model.SaveTrained(adapter);

            using var reloaded = new TLora();
            PretrainedLoader.Load(reloaded, checkpoint, loadOptions);
            reloaded.LoadAdapter(adapter);
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            model.eval();
            reloaded.eval();
            var ids = randint(0, 64, new long[] { 1, 8 }, dtype: ScalarType.Int64);
            var difference = (model.forward(ids) - reloaded.forward(ids)).abs().max().item<float>();
            if (difference > 1e-5f) throw new InvalidOperationException($"{name}: the reloaded adapter gives other logits (max difference {difference}).");
            Console.WriteLine($"consumer: {name}: checkpoint and adapter reloaded, logits equal");
        }
    }

    /// <summary>Random token batches over the toy vocabulary.</summary>
    public sealed class RandomTokens : IBatchSource
    {
        public long BatchesPerEpoch => 4;

        public TokenBatch GetBatch(long index)
        {
            const int batch = 2, seq = 8;
            var random = new Random((int)index);
            var ids = new long[batch * seq];
            for (var i = 0; i < ids.Length; i++) ids[i] = random.Next(64);
            var mask = new long[ids.Length];
            Array.Fill(mask, 1L);
            return new TokenBatch(ids, mask, (long[])ids.Clone(), batch, seq);
        }
    }
}
