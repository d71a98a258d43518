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

/// <summary>Lookups in a model's layer list, used by generated constructors.</summary>
public static class PeftLayers
{
    /// <summary>The layer at <paramref name="path"/>, as <typeparamref name="T"/>.</summary>
    /// <exception cref="System.Collections.Generic.KeyNotFoundException">No layer of that type has that path.</exception>
    public static T Find<T>(System.Collections.Generic.IReadOnlyList<PeftLayer> layers, string path) where T : nn.Module
    {
        System.ArgumentNullException.ThrowIfNull(layers);
        foreach (var layer in layers)
        {
            if (layer.Path == path && layer.Module is T module) return module;
        }
        throw new System.Collections.Generic.KeyNotFoundException($"The model has no {typeof(T).Name} layer at '{path}'.");
    }

    /// <summary>
    /// The projections whose paths match any of <paramref name="patterns"/>, in layer order. In a pattern, <c>*</c>
    /// stands for one whole path segment, a stack index (<c>h.*.attn.c_attn</c> matches <c>h.0.attn.c_attn</c>,
    /// <c>h.1.attn.c_attn</c>, …); checkpoint names never contain <c>*</c> or <c>.</c>.
    /// </summary>
    public static System.Collections.Generic.List<LoraLinear> Projections(System.Collections.Generic.IReadOnlyList<PeftLayer> layers, params string[] patterns)
    {
        System.ArgumentNullException.ThrowIfNull(layers);
        System.ArgumentNullException.ThrowIfNull(patterns);
        var split = System.Array.ConvertAll(patterns, p => p.Split('.'));
        var result = new System.Collections.Generic.List<LoraLinear>();
        foreach (var layer in layers)
        {
            if (layer.Module is not LoraLinear projection) continue;
            var segments = layer.Path.Split('.');
            if (System.Array.Exists(split, pattern => Matches(pattern, segments))) result.Add(projection);
        }
        return result;
    }

    private static bool Matches(string[] pattern, string[] segments)
    {
        if (pattern.Length != segments.Length) return false;
        for (var i = 0; i < pattern.Length; i++)
        {
            if (pattern[i] != "*" && pattern[i] != segments[i]) return false;
        }
        return true;
    }
}
