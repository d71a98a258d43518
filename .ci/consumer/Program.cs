using System;
using PeftGen;
using TorchSharp;
using static TorchSharp.torch;

// Uses members that only the generator inside the package can have written: if it did not run (for example
// skipped with CS8032), this does not compile.
using var model = new Consumer.Tiny();
Console.WriteLine($"consumer: {Consumer.Tiny.Accounting.Summary}");
using var x = ones(2, 8);
using var y = model.forward(x);
Console.WriteLine($"consumer: forward [{string.Join(", ", y.shape)}], {((IPeftModel)model).TrainableParameters().Count} trainable tensors");
Console.WriteLine($"consumer: adapter '{Consumer.Tiny.Adapters.Default}', width {model.Dims.Width}, the plan trains {Consumer.Tiny.TrainingPlan.TrainableParameters} parameters");

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
}
