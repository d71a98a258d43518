using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp.Modules;

namespace PeftGen.Checkpoints;

/// <summary>What a model tensor is, for loading and saving.</summary>
internal enum ModelTensorRole
{
    /// <summary>A projection's base weight: read into a float base, quantized as it arrives into a 4-bit one (<see cref="LoraLinear.LoadBase"/>).</summary>
    ProjectionWeight,

    /// <summary>A projection's base bias, loaded with its weight.</summary>
    ProjectionBias,

    /// <summary>A parameter of an embedding or norm, copied in place.</summary>
    Parameter,
}

/// <summary>One base tensor of a model under its model key (<c>{layer path}.{name}</c>).</summary>
/// <param name="Key">The model key, for example <c>transformer.h.0.attn.c_attn.weight</c>.</param>
/// <param name="Layer">The layer it belongs to.</param>
/// <param name="Role">How it is loaded.</param>
/// <param name="Parameter">The parameter, for <see cref="ModelTensorRole.Parameter"/>.</param>
/// <param name="StoredShape">Its shape as checkpoints store it.</param>
/// <param name="Transposed">Whether checkpoints store it transposed (a Conv1D weight, <c>In × Out</c>).</param>
internal sealed record ModelTensor(string Key, PeftLayer Layer, ModelTensorRole Role, Parameter? Parameter, long[] StoredShape, bool Transposed);

/// <summary>Lists a model's base tensors, the way checkpoints name and shape them. Adapters are not base tensors.</summary>
internal static class ModelTensors
{
    public static IReadOnlyList<ModelTensor> Of(IPeftModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var tensors = new List<ModelTensor>();
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var layer in model.Layers)
        {
            foreach (var tensor in OfLayer(layer))
            {
                if (!keys.Add(tensor.Key))
                    throw new ArgumentException($"The model lists the tensor '{tensor.Key}' twice; every layer needs its own path.", nameof(model));
                tensors.Add(tensor);
            }
        }
        return tensors;
    }

    private static IEnumerable<ModelTensor> OfLayer(PeftLayer layer)
    {
        if (layer.Module is LoraLinear projection)
        {
            var transposed = layer.CheckpointLayout == WeightLayout.InOut;
            var shape = transposed
                ? new[] { projection.InFeatures, projection.OutFeatures }
                : new[] { projection.OutFeatures, projection.InFeatures };
            yield return new ModelTensor(layer.Path + ".weight", layer, ModelTensorRole.ProjectionWeight, null, shape, transposed);
            if (projection.Bias is not null)
                yield return new ModelTensor(layer.Path + ".bias", layer, ModelTensorRole.ProjectionBias, null, new[] { projection.OutFeatures }, false);
            yield break;
        }
        if (layer.Kind == PeftLayerKind.Projection)
            throw new ArgumentException($"Layer '{layer.Path}' is listed as a projection but is a {layer.Module.GetType().Name}, not a {nameof(LoraLinear)}.");

        // Direct parameters only: soft prompts hang below the token embedding as submodules and are adapters.
        foreach (var (name, parameter) in layer.Module.named_parameters(recurse: false))
            yield return new ModelTensor($"{layer.Path}.{name}", layer, ModelTensorRole.Parameter, parameter, parameter.shape, false);
    }

    public static string Shape(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";
}
