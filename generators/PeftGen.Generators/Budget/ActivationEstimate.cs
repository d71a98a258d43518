using System;
using System.Collections.Generic;
using System.Linq;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Budget;

/// <summary>
/// The sizes the activation estimate reads, taken from the resolved model: hidden size and vocabulary from the token
/// embedding, layers from the deepest stack of projections, MLP width and inputs from the widest projection out of the
/// hidden state, heads from the configuration's <c>Heads</c>, LoRA's saved values from the active adapter.
/// </summary>
/// <remarks>
/// What autograd keeps for backward, per token and layer, counted in float32 (the compute dtype of
/// <c>TrainingPrecision.Float32</c>, and of <c>Auto</c> where bfloat16 is not fast): attention <c>6·h</c> (the norm's
/// input, the q/k/v projections' input, Q, K, V, the output projection's input) plus <c>a·s</c> softmax probabilities;
/// the MLP <c>2·h + 2·k·f</c> (the norm's input, the input of the <c>k</c> projections out of the hidden state, and
/// per such projection its output and the activation's or product's output). After the layers: the final norm's and
/// the head's input and the float32 gradient the chunked loss hands autograd (<c>3·h</c>), and one chunk of float32
/// logits (<c>min(b·s, rows)·V</c>, rows as <c>ChunkedCrossEntropy</c> sizes them). docs/dsl.md#memory-budget states it.
/// </remarks>
/// <param name="MlpInputs">k: projections of width f out of the hidden state (2 for a gated MLP, 1 for GPT-2's).</param>
/// <param name="LoraValuesPerToken">Saved by the active adapter per token over the whole model: rank, plus the
/// dropout output when dropout is on.</param>
/// <param name="LogitChunkRows">Rows of one chunk of logits of the chunked loss.</param>
internal sealed record ActivationEstimate(
    long Layers,
    long Hidden,
    long Heads,
    long MlpWidth,
    long MlpInputs,
    long Vocab,
    long LoraValuesPerToken,
    long LogitChunkRows)
{
    /// <summary>Bytes per saved value: float32.</summary>
    public const long BytesPerValue = 4;

    /// <summary>The configuration constant that names the number of attention heads.</summary>
    public const string HeadsConstant = "Heads";

    /// <summary><c>ChunkedCrossEntropy.AutoChunkBytes</c>: the automatic chunk keeps its float32 logits within this.</summary>
    private const long LogitChunkBytes = 24L * 1024 * 1024;

    /// <summary>Values saved per token that do not grow with the sequence: <c>L·(8h + 2kf) + 3h + LoRA</c>.</summary>
    public long ValuesPerToken => checked((Layers * ((8 * Hidden) + (2 * MlpInputs * MlpWidth))) + (3 * Hidden) + LoraValuesPerToken);

    /// <summary>Bytes of activations for <paramref name="batch"/> sequences of <paramref name="sequence"/> tokens.</summary>
    /// <exception cref="OverflowException">The estimate does not fit a long.</exception>
    public long Bytes(long batch, long sequence)
    {
        checked
        {
            var tokens = batch * sequence;
            var attention = Layers * batch * Heads * sequence * sequence;
            return (BytesPerValue * ((tokens * ValuesPerToken) + attention)) + (Math.Min(tokens, LogitChunkRows) * Vocab * BytesPerValue);
        }
    }

    /// <summary>The estimate's sizes, or null with what is missing (a token embedding, or a <c>Heads</c> constant).</summary>
    public static ActivationEstimate? From(RootSpec root, IReadOnlyList<ResolvedLayer> layers, string? activeAdapter, out string missing)
    {
        missing = "";
        var token = layers.FirstOrDefault(l => l.Kind == LayerKind.TokenEmbedding && l.Dimensions.Count == 2);
        if (token is null)
        {
            missing = "a token embedding ([Embedding] of type TokenEmbedding), which gives the hidden size and the vocabulary";
            return null;
        }
        var heads = root.Constants.FirstOrDefault(c => c.Name == HeadsConstant && c.Kind == ConfigValueKind.Integer);
        if (heads is null)
        {
            missing = "the number of attention heads, an integer constant 'Heads' of '" + root.ConfigType + "'";
            return null;
        }

        var vocab = token.Dimensions[0];
        var hidden = token.Dimensions[1];
        var projections = layers.Where(l => l.Kind == LayerKind.Linear && l.Dimensions.Count == 2).ToList();
        var depth = projections.Count == 0 ? 0 : projections.Max(p => p.Instances);
        var mlp = projections.Where(p => p.Instances == depth && p.Dimensions[0] == hidden && p.Dimensions[1] > hidden && p.Dimensions[1] != vocab).ToList();
        var width = mlp.Count == 0 ? 0 : mlp.Max(p => p.Dimensions[1]);
        var lora = checked(projections.Sum(p => p.Instances * p.Adapters.Where(a => a.Name == activeAdapter)
            .Sum(a => a.Adapter.Rank + (a.Adapter.Dropout > 0 ? p.Dimensions[0] : 0))));
        var rows = Math.Min(Math.Max(LogitChunkBytes / (Math.Max(vocab, 1) * BytesPerValue), 8), 4096);
        return new ActivationEstimate(depth, hidden, heads.Value, width, mlp.Count(p => p.Dimensions[1] == width), vocab, lora, rows);
    }
}
