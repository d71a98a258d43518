using static TorchSharp.torch;

namespace PeftGen.Training;

/// <summary>
/// What training, evaluation and generation need from a causal language model: final hidden states and the
/// vocabulary head. Logits are <c>hidden · HeadWeightᵀ</c>; the trainer computes them in chunks inside the loss so
/// that <c>tokens × vocabulary</c> logits are never held for a whole batch.
/// </summary>
public interface ICausalLanguageModel
{
    /// <summary>
    /// Final hidden states, <c>batch × seq × dim</c>, one per real input token (a model with a soft prompt drops the
    /// virtual positions itself). <paramref name="inputIds"/> is <c>batch × seq</c> int64.
    /// </summary>
    Tensor ForwardHidden(Tensor inputIds);

    /// <summary>
    /// The vocabulary head, <c>vocab × dim</c> (tied to the token embedding or not). Callers never dispose it and read it
    /// inside a dispose scope, so it may return the model's own tensor or a new wrapper at every read (TorchSharp's
    /// <c>Embedding.weight</c> makes one); <see cref="CausalLanguageModelExtensions.HeadDevice"/> reads its device.
    /// </summary>
    Tensor HeadWeight { get; }

    /// <summary>
    /// Whether rows of different lengths may share a batch by left padding: the model takes its position ids from
    /// <see cref="Inference.KeyValueCache.PositionIds"/> and attends through <see cref="Inference.CausalAttention"/>,
    /// so a padded row computes what it would alone. The package's architectures do; a model that does not say so is
    /// decoded in batches of equal-length prompts.
    /// </summary>
    bool SupportsLeftPadding => false;
}
