using PeftGen;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TinyGpt.Models;

/// <summary>GPT-2's initialisation for training from scratch: N(0, 0.02) weights, zero biases, residual projections scaled by 1/√(2·layers).</summary>
public static class GptInit
{
    /// <summary>Re-initialises every layer of a freshly built model of <paramref name="layers"/> blocks.</summary>
    public static void Apply(IPeftModel model, long layers)
    {
        using var _ = no_grad();
        var residualStd = 0.02 / System.Math.Sqrt(2.0 * layers);
        foreach (var layer in model.Layers)
        {
            switch (layer.Module)
            {
                case LoraLinear projection:
                    var std = layer.Path.EndsWith("c_proj", System.StringComparison.Ordinal) ? residualStd : 0.02;
                    projection.Weight.normal_(0, std);
                    projection.Bias?.zero_();
                    break;
                case TokenEmbedding tokens:
                    tokens.Weight.normal_(0, 0.02);
                    break;
                case Embedding positions:
                    positions.weight!.normal_(0, 0.01);
                    break;
            }
        }
    }
}
