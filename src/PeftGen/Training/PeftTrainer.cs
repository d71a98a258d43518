using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading;
using PeftGen.Data;
using PeftGen.IO;
using PeftGen.Precision;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftGen.Training;

/// <summary>
/// Trains the given parameters of a causal LM (all of them for full fine-tuning; adapters or a soft prompt for
/// PEFT) with AdamW, warm-up + cosine learning rate, gradient accumulation and clipping, a chunked vocabulary
/// head, periodic evaluation and atomic checkpoints. Progress is reported through events (<see cref="StepCompleted"/>,
/// <see cref="Evaluated"/>, <see cref="Warning"/>, <see cref="CheckpointSaved"/>); nothing is printed.
/// </summary>
/// <remarks>
/// Batches are right-padded and the model is causal, so a real token never attends to padding and the attention
/// mask is not needed; padding positions carry label -100 and cost nothing in the loss (only labelled positions reach
/// the vocabulary head). Not thread-safe: one run at a time per trainer.
/// <para>Events are raised synchronously on the training thread, between steps, so a handler may read or save the
/// parameters and sees exactly the state after that step. This is why the trainer takes no <c>IProgress&lt;T&gt;</c>:
/// <c>Progress&lt;T&gt;</c> posts its reports to the thread pool, where they would race the next step.</para>
/// </remarks>
public sealed class PeftTrainer : IDisposable
{
    private readonly nn.Module module;
    private readonly ICausalLanguageModel model;
    private readonly IReadOnlyList<(string Name, Parameter Parameter)> trainable;
    private readonly TrainerOptions options;
    private readonly IReadOnlyList<ParameterGroup> groups;
    private readonly AdamWOptimizer optimizer;
    // The loss's chunk of logits, reused by every step and evaluation instead of allocated each time.
    private readonly ChunkedCrossEntropy.Workspace lossWorkspace = new();
    // Dynamic loss scaling: float16 compute only.
    private readonly LossScaler? lossScaler;
    private readonly FreedMemoryRelease? memoryRelease;
    private int completedSteps;
    private bool resumed;
    private bool precisionWarned;

    /// <summary>Creates a trainer; weight decay applies to matrices, not to 1-D tensors (<see cref="ParameterGroup.ByShape"/>).</summary>
    /// <param name="model">The model: an <see cref="nn.Module"/> that implements <see cref="ICausalLanguageModel"/>.</param>
    /// <param name="trainable">The parameters to train, with their names (checkpoint keys); all must require grad.</param>
    /// <param name="options">Run settings.</param>
    public PeftTrainer(nn.Module model, IReadOnlyList<(string Name, Parameter Parameter)> trainable, TrainerOptions options)
        : this(model, trainable, ParameterGroup.ByShape(trainable ?? throw new ArgumentNullException(nameof(trainable))), options)
    {
    }

    /// <summary>
    /// Creates a trainer over parameter groups: <see cref="TrainerOptions.WeightDecay"/> applies to the groups that
    /// <see cref="ParameterGroup.Decays"/> only. A generated model makes its groups with
    /// <see cref="PeftTraining.CreateTrainer"/> (no decay on norms, biases and soft prompts).
    /// </summary>
    /// <param name="model">The model: an <see cref="nn.Module"/> that implements <see cref="ICausalLanguageModel"/>.</param>
    /// <param name="groups">The parameters to train, with their names (checkpoint keys), by group; all must require grad.</param>
    /// <param name="options">Run settings.</param>
    public PeftTrainer(nn.Module model, IReadOnlyList<ParameterGroup> groups, TrainerOptions options)
        : this(model, (groups ?? throw new ArgumentNullException(nameof(groups))).SelectMany(g => g.Parameters).ToList(), groups, options)
    {
    }

    // trainable: every parameter of the groups, in the order gradients are summed and clipped.
    internal PeftTrainer(nn.Module model, IReadOnlyList<(string Name, Parameter Parameter)> trainable, IReadOnlyList<ParameterGroup> groups, TrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        this.model = model as ICausalLanguageModel
            ?? throw new ArgumentException($"{model.GetType().Name} does not implement {nameof(ICausalLanguageModel)}.", nameof(model));
        if (trainable.Count == 0) throw new ArgumentException("Nothing to train.", nameof(trainable));
        foreach (var (name, parameter) in trainable)
        {
            if (!parameter.requires_grad) throw new ArgumentException($"Parameter '{name}' does not require grad.", nameof(trainable));
        }
        options.Validate();
        module = model;
        this.trainable = trainable;
        this.groups = groups;
        this.options = options;
        optimizer = new AdamWOptimizer(groups, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay);
        ComputeDType = PrecisionSupport.ComputeDType(options.Precision, this.model.HeadDevice());
        if (ComputeDType == ScalarType.Float16) lossScaler = new LossScaler(options.LossScaling);
        if (options.ReleaseFreedMemory) memoryRelease = new FreedMemoryRelease();
        if (options.NativeMmapThresholdBytes is { } threshold) ProcessMemory.TrySetNativeMmapThreshold(threshold);
    }

    /// <summary>
    /// The dtype of the matrix products in training and evaluation, resolved from <see cref="TrainerOptions.Precision"/>
    /// and the model's device. Under bfloat16 the trainable parameters, their gradients and the optimizer state stay
    /// float32 (master weights); only the products are cast.
    /// </summary>
    public ScalarType ComputeDType { get; }

    /// <summary>
    /// The dynamic loss scaling of a float16 run (<see cref="TrainerOptions.LossScaling"/>): its current scale and
    /// count; checkpoints save it. Null in bfloat16 and float32, which need none.
    /// </summary>
    public LossScaler? LossScaler => lossScaler;

    /// <summary>Raised after every optimizer step (or skipped step).</summary>
    public event EventHandler<TrainingStep>? StepCompleted;

    /// <summary>Raised after every evaluation.</summary>
    public event EventHandler<EvaluationResult>? Evaluated;

    /// <summary>Raised when a step is skipped or the run stops because of a NaN/Inf loss or gradient.</summary>
    public event EventHandler<TrainingWarning>? Warning;

    /// <summary>Raised after a checkpoint was written (its path).</summary>
    public event EventHandler<string>? CheckpointSaved;

    /// <summary>Optimizer steps completed so far (after a resume, including the restored ones).</summary>
    public int CompletedSteps => completedSteps;

    /// <summary>The parameters being trained, by weight-decay group.</summary>
    public IReadOnlyList<ParameterGroup> ParameterGroups => groups;

    /// <summary>The optimizer (its state is what checkpoints save).</summary>
    public AdamWOptimizer Optimizer => optimizer;

    /// <summary>
    /// Restores parameters, optimizer state, torch's generator and (float16) the loss scale from a checkpoint; the next
    /// <see cref="Train"/> continues from the step it was written at.
    /// </summary>
    public void Resume(string checkpointPath)
    {
        ArgumentNullException.ThrowIfNull(checkpointPath);
        completedSteps = TrainingCheckpoint.Load(checkpointPath, trainable, optimizer, lossScaler);
        resumed = true;
    }

    /// <summary>
    /// Runs from the current step to <see cref="TrainerOptions.MaxSteps"/>. Optimizer step <c>s</c> reads batches
    /// <c>s × accumulation … s × accumulation + accumulation − 1</c> of <paramref name="train"/>, so a resumed run
    /// sees the same data as an uninterrupted one.
    /// </summary>
    public TrainingResult Train(IBatchSource train, IBatchSource? validation = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(train);
        if (!resumed) random.manual_seed(options.Seed);
        // A crash during an earlier save can leave a temp file beside the checkpoint; it is never read, only removed.
        if (options.CheckpointDirectory is not null) AtomicFile.CleanStaleTemps(options.CheckpointDirectory);
        resumed = false;
        if (!precisionWarned)
        {
            // An explicit bfloat16 or float16 on a CPU that emulates it: said once, before the first step.
            precisionWarned = true;
            if (options.Precision != TrainingPrecision.Auto && PrecisionSupport.SlowComputeWarning(ComputeDType, this.model.HeadDevice()) is { } slow)
                Warning?.Invoke(this, new TrainingWarning(completedSteps, slow));
        }

        var steps = new List<TrainingStep>();
        var evaluations = new List<EvaluationResult>();
        EvaluationResult? best = null;
        Tensor[]? bestParameters = null;
        var stopReason = TrainingStopReason.Completed;
        int skipped = 0;
        module.train();
        while (completedSteps < options.MaxSteps)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                stopReason = TrainingStopReason.Cancelled;
                break;
            }
            var (record, scaleChange) = RunStep(train, completedSteps);
            completedSteps++;
            steps.Add(record);
            StepCompleted?.Invoke(this, record);
            if (record.Skipped && scaleChange == LossScaleChange.BackedOff)
            {
                // float16's range, not the model: expected now and then, and at the start while the scale finds its level.
                skipped++;
                Warning?.Invoke(this, new TrainingWarning(record.Step, $"Skipped step {record.Step}: float16 gradients overflowed at loss scale {LossScaler.Format(record.LossScale)}; parameters and optimizer state unchanged, loss scale lowered to {LossScaler.Format(lossScaler!.Scale)}."));
            }
            else if (record.Skipped)
            {
                skipped++;
                string atMinimum = scaleChange == LossScaleChange.NonFiniteAtMinimum
                    ? $", even at the minimum loss scale {LossScaler.Format(record.LossScale)}"
                    : "";
                if (options.OnNonFinite == NonFiniteAction.Stop)
                {
                    Warning?.Invoke(this, new TrainingWarning(record.Step, $"Stopping: non-finite loss or gradient at step {record.Step} (loss {record.Loss}, gradient norm {record.GradientNorm}{atMinimum})."));
                    stopReason = TrainingStopReason.NonFinite;
                    break;
                }
                Warning?.Invoke(this, new TrainingWarning(record.Step, $"Skipped step {record.Step}: non-finite loss or gradient (loss {record.Loss}, gradient norm {record.GradientNorm}{atMinimum}); parameters and optimizer state unchanged."));
            }

            bool last = completedSteps == options.MaxSteps;
            if (validation is not null && (last || (options.EvaluateEvery > 0 && completedSteps % options.EvaluateEvery == 0)))
            {
                var evaluation = Evaluate(validation);
                evaluations.Add(evaluation);
                if (options.RestoreBestEvaluation && (best is null || evaluation.Loss < best.Loss))
                {
                    best = evaluation;
                    bestParameters = KeepCopy(bestParameters);
                }
                Evaluated?.Invoke(this, evaluation);
            }
            if (options.CheckpointEvery > 0 && completedSteps % options.CheckpointEvery == 0)
            {
                var path = Path.Combine(options.CheckpointDirectory!, TrainingCheckpoint.FileName);
                TrainingCheckpoint.Save(path, completedSteps, options.Seed, trainable, optimizer, lossScaler);
                CheckpointSaved?.Invoke(this, path);
            }
        }

        if (bestParameters is not null)
        {
            using (no_grad())
            {
                for (int i = 0; i < trainable.Count; i++) trainable[i].Parameter.copy_(bestParameters[i]);
            }
            foreach (var copy in bestParameters) copy.Dispose();
        }

        var timed = steps.Where(s => !s.Skipped).Select(s => s.Seconds).Order().ToArray();
        double totalSeconds = steps.Sum(s => s.Seconds);
        // Current first: the peak read after it covers it even when other threads grow the process in between.
        var finalResident = ProcessMemory.CurrentResidentBytes();
        var peakResident = ProcessMemory.PeakResidentBytes();
        return new TrainingResult(steps, evaluations, stopReason, skipped,
            timed.Length == 0 ? 0 : timed[timed.Length / 2],
            totalSeconds > 0 ? steps.Sum(s => s.Tokens) / totalSeconds : 0,
            peakResident, finalResident, PrecisionSupport.Name(ComputeDType), best);
    }

    /// <summary>
    /// Mean validation loss per labelled token and perplexity, in eval mode without gradients, over
    /// <see cref="TrainerOptions.EvaluationBatches"/> batches (0: one pass).
    /// </summary>
    public EvaluationResult Evaluate(IBatchSource validation)
    {
        ArgumentNullException.ThrowIfNull(validation);
        long batches = options.EvaluationBatches > 0 ? options.EvaluationBatches : validation.BatchesPerEpoch;
        bool wasTraining = module.training;
        module.eval();
        try
        {
            using var precision = ComputePrecision.Use(ComputeDType);
            var (sum, count) = ValidationLoss.Summed(model, validation, batches, options.LossChunkSize, lossWorkspace);
            double loss = count > 0 ? sum / count : double.NaN;
            return new EvaluationResult(completedSteps, loss, count > 0 ? Metrics.Perplexity.FromMeanLoss(loss) : double.NaN, count);
        }
        finally
        {
            module.train(wasTraining);
        }
    }

    // Copies the trainable parameters to the CPU (into the previous copy's tensors when there is one).
    private Tensor[] KeepCopy(Tensor[]? previous)
    {
        using var _ = no_grad();
        if (previous is null) return trainable.Select(t => zeros_like(t.Parameter, device: CPU).copy_(t.Parameter).DetachFromDisposeScope()).ToArray();
        for (int i = 0; i < trainable.Count; i++) previous[i].copy_(trainable[i].Parameter);
        return previous;
    }

    // One optimizer step, and what it did to the loss scale (float16; LossScaleChange.None otherwise).
    private (TrainingStep Record, LossScaleChange ScaleChange) RunStep(IBatchSource train, int step)
    {
        var clock = Stopwatch.StartNew();
        double learningRate = LearningRateSchedule.At(step, options.MaxSteps, options.WarmupSteps, options.LearningRate, options.MinLearningRateRatio);
        int accumulation = options.GradientAccumulationSteps;
        var batches = new TokenBatch[accumulation];
        long labelled = 0, tokens = 0;
        for (int k = 0; k < accumulation; k++)
        {
            batches[k] = train.GetBatch((long)step * accumulation + k);
            labelled += batches[k].LabelledTokens;
            tokens += batches[k].RealTokens;
        }

        Gradients.Zero(trainable);
        double lossSum = 0;
        double gradientNorm = double.NaN;
        bool finite = true;
        double lossScale = lossScaler?.Scale ?? 1;
        var scaleChange = LossScaleChange.None;
        if (labelled > 0)
        {
            var device = model.HeadDevice();
            using var precision = ComputePrecision.Use(ComputeDType);
            foreach (var batch in batches)
            {
                using var scope = NewDisposeScope();
                var hidden = model.ForwardHidden(batch.InputIdsTensor(device));
                var (sum, _) = CausalLmLoss.Sum(hidden, model.HeadWeight, batch.LabelsTensor(device), options.LossChunkSize, lossWorkspace);
                double value = sum.to(ScalarType.Float64).item<double>();
                lossSum += value;
                if (!double.IsFinite(value))
                {
                    finite = false;
                    break;
                }
                // Dividing by the whole step's labelled tokens makes accumulated gradients equal one big batch's.
                using var divisor = labelled.ToScalar();
                var objective = sum.div(divisor);
                if (lossScaler is not null)
                {
                    using var scaleFactor = lossScale.ToScalar();
                    objective = objective.mul(scaleFactor);
                }
                objective.backward();
                // Autograd has added every returned gradient into .grad: let go of the wrappers PeftGen's functions kept.
                ReturnedGradients.Release();
            }
            if (finite)
            {
                // Under loss scaling the gradients are still scaled here: their norm is too, and so is an overflow.
                gradientNorm = Gradients.Norm(trainable);
                finite = double.IsFinite(gradientNorm);
                if (lossScaler is not null)
                {
                    scaleChange = lossScaler.Update(finite);
                    gradientNorm /= lossScale;
                }
            }
            if (finite)
            {
                // Unscaling and clipping are one pass over the gradients.
                Gradients.Clip(trainable, gradientNorm, options.MaxGradNorm, unscale: 1 / lossScale);
                optimizer.Step(learningRate);
            }
        }
        Gradients.Zero(trainable);
        // Part of the step's time: what the release costs is paid here.
        memoryRelease?.AfterStep();
        clock.Stop();
        double meanLoss = labelled > 0 ? lossSum / labelled : double.NaN;
        return (new TrainingStep(step + 1, options.MaxSteps, meanLoss, learningRate, gradientNorm, tokens, labelled, clock.Elapsed.TotalSeconds, !finite, lossScale),
            scaleChange);
    }

    /// <summary>Frees the optimizer state and the loss workspace.</summary>
    public void Dispose()
    {
        optimizer.Dispose();
        lossWorkspace.Dispose();
    }
}
