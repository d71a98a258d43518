namespace PeftGen.Training;

/// <summary>
/// What a generated model trains, resolved by the generator at compile time: the adapter and soft prompt that train,
/// whether every base weight trains, and how many parameters that is (the model's
/// <c>Accounting.TrainableParameters</c>).
/// </summary>
/// <param name="Adapter">The LoRA adapter that trains (the model's active adapter), or null.</param>
/// <param name="SoftPrompt">The soft prompt that trains (the first one declared), or null.</param>
/// <param name="FullFineTuning">Whether every base weight trains (<see cref="TrainableAttribute"/> on the model class).</param>
/// <param name="TrainableParameters">The parameters that train, counted at compile time.</param>
public sealed record TrainingPlan(string? Adapter, string? SoftPrompt, bool FullFineTuning, long TrainableParameters);

/// <summary>
/// A generated <see cref="IPeftModel"/> that knows what it trains: every <c>[PeftModel]</c> class implements it, so
/// <see cref="PeftTraining.CreateTrainer"/> and <see cref="PeftTraining.SaveTrained"/> work on it, and on it only.
/// </summary>
public interface IPeftTrainableModel : IPeftModel
{
    /// <summary>What the model trains, as resolved at compile time.</summary>
    TrainingPlan TrainingPlan { get; }

    /// <summary>The model's compile-time accounting (its generated <c>Accounting</c> constants) as a value.</summary>
    ModelAccounting Accounting { get; }
}

/// <summary>What <see cref="PeftTraining.SaveTrained"/> records beside the trained tensors.</summary>
public sealed record TrainedSaveOptions
{
    /// <summary>Written as <c>base_model_name_or_path</c> in adapter files (and checked when they are loaded).</summary>
    public string? BaseModelNameOrPath { get; init; }

    /// <summary>The base model's layers, written as a prompt-tuning adapter's <c>num_layers</c> (PEFT records it).</summary>
    public int? NumLayers { get; init; }

    /// <summary>The base model's attention heads, written as a prompt-tuning adapter's <c>num_attention_heads</c>.</summary>
    public int? NumAttentionHeads { get; init; }

    /// <summary>How trained base weights are written (tied weights, <c>config.json</c>, dtype); null for the defaults.</summary>
    public Checkpoints.PretrainedSaveOptions? Weights { get; init; }
}
