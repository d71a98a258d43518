using static TorchSharp.torch;

namespace PeftGen;

/// <summary>What kind of layer a <see cref="PeftLayer"/> is.</summary>
public enum PeftLayerKind
{
    /// <summary>A <see cref="LoraLinear"/> projection.</summary>
    Projection = 0,

    /// <summary>A <see cref="TokenEmbedding"/>.</summary>
    TokenEmbedding = 1,

    /// <summary>A TorchSharp <c>Embedding</c> (for example learned positions).</summary>
    Embedding = 2,

    /// <summary>A TorchSharp <c>LayerNorm</c>.</summary>
    LayerNorm = 3,

    /// <summary>An <see cref="RmsNorm"/>.</summary>
    RmsNorm = 4,
}

/// <summary>
/// One layer of a PEFT model with its full checkpoint path (<c>transformer.h.0.attn.c_attn</c>). The generator lists
/// every layer of a model this way, so the runtime can freeze, merge, save and load without reflection.
/// </summary>
/// <param name="Path">Dot-separated module path, as in the model's checkpoints.</param>
/// <param name="Kind">The kind of layer.</param>
/// <param name="Module">The layer.</param>
/// <param name="CheckpointLayout">How checkpoints store a projection's weight.</param>
/// <param name="Trainable">Whether the layer's own weights are trained (<see cref="TrainableAttribute"/>).</param>
public sealed record PeftLayer(string Path, PeftLayerKind Kind, nn.Module Module, WeightLayout CheckpointLayout, bool Trainable);
