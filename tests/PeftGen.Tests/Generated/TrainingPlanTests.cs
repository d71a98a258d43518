using System;
using System.IO;
using System.Linq;
using PeftGen.Data;
using PeftGen.Precision;
using PeftGen.Tests.Training;
using PeftGen.Training;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Generated;

public static class PlanConfig
{
    public const int Vocab = TrainingFixtures.Vocab, Context = 32, Width = 16, Layers = 1;
    public const double NormEps = 1e-5;
    public const bool QkvBias = true;
}

/// <summary>
/// A generated causal LM whose compile-time plan trains one of each group: LoRA adapter <c>default</c> (decays), the
/// soft prompt and the [Trainable] final norm (do not); its block reads its norm epsilon and q bias from the configuration.
/// </summary>
[PeftModel(typeof(PlanConfig), ContextLength = "Context")]
[Lora(Rank = 2, Alpha = 4), Lora(Rank = 2, Alpha = 4, Adapter = "sql")]
[SoftPrompt(3)]
public partial class PlanLm : nn.Module<Tensor, Tensor>, ICausalLanguageModel
{
    [Embedding("Vocab", "Width")] public partial TokenEmbedding wte { get; }
    [Stack("Layers")] public partial ModuleList<PlanBlock> h { get; }
    [LayerNorm("Width", EpsFrom = "NormEps"), Trainable] public partial LayerNorm ln_f { get; }

    public Tensor ForwardHidden(Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        var x = wte.forward(inputIds);
        foreach (var block in h) x = block.forward(x);
        return wte.DropVirtualTokens(ln_f.forward(x)).MoveToOuterDisposeScope();
    }

    public Tensor HeadWeight => wte.Weight;

    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        return ForwardHidden(ids).matmul(HeadWeight.t()).MoveToOuterDisposeScope();
    }
}

[PeftModule]
public partial class PlanBlock : nn.Module<Tensor, Tensor>
{
    [RmsNorm("Width", EpsFrom = "NormEps")] public partial RmsNorm norm { get; }
    [Linear("Width", "Width", BiasFrom = "QkvBias")] public partial LoraLinear q_proj { get; }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return (x + ComputePrecision.Cast(q_proj.forward(norm.forward(x))).to(x.dtype)).MoveToOuterDisposeScope();
    }
}

/// <summary>The generated trainer API at run time: the compile-time plan, its weight-decay groups, and saving what trained.</summary>
[Collection(nameof(SerialTorchTests))]
public sealed class TrainingPlanTests : IDisposable
{
    private readonly string folder = Path.Combine(Path.GetTempPath(), "peftgen-plan-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public void The_plan_is_the_compile_time_trainable_set_and_settings_come_from_the_configuration()
    {
        Assert.Equal(new TrainingPlan(PlanLm.Adapters.Default, PlanLm.SoftPrompts.Default, false, PlanLm.Accounting.TrainableParameters), PlanLm.TrainingPlan);
        using var model = new PlanLm();
        Assert.Equal(PlanConfig.NormEps, model.Dims.NormEps);
        Assert.True(model.h[0].Dims.QkvBias);
        Assert.NotNull(model.h[0].q_proj.Bias);
        Assert.Equal(16L, model.h[0].Dims.Width);
    }

    [Fact]
    public void Norms_biases_and_soft_prompts_are_kept_out_of_weight_decay()
    {
        using var model = new PlanLm();
        // Another adapter made active at run time: the plan puts the compile-time one back.
        model.SetActiveAdapter(PlanLm.Adapters.Sql);

        var groups = model.ParameterGroups();

        var decay = Assert.Single(groups, g => g.Decays);
        var noDecay = Assert.Single(groups, g => !g.Decays);
        Assert.Equal(new[] { "h.0.q_proj.lora_A.default.weight", "h.0.q_proj.lora_B.default.weight" }, decay.Parameters.Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal(new[] { "ln_f.bias", "ln_f.weight", "wte.soft_prompts.default.prompt_embeddings" }, noDecay.Parameters.Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal(PlanLm.Accounting.TrainableParameters, groups.SelectMany(g => g.Parameters).Sum(p => p.Parameter.numel()));
        Assert.Equal(PlanLm.Adapters.Default, model.h[0].q_proj.ActiveAdapter);
    }

    [Fact]
    public void Weight_decay_changes_only_the_decay_group()
    {
        using var plain = new PlanLm();
        using var decayed = new PlanLm();
        using (no_grad())
        {
            var source = plain.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, parameter) in decayed.named_parameters()) parameter.copy_(source[name]);
        }
        // One step: both runs see the same gradients, so any difference is the decay itself.
        var options = new TrainerOptions { MaxSteps = 1, LearningRate = 0.1, WeightDecay = 0, Precision = TrainingPrecision.Float32, LossChunkSize = 16 };
        var batches = new ExampleBatches(TrainingFixtures.CountingExamples(8, seed: 1), batchSize: 4, padId: TrainingFixtures.Eos, seed: 3);
        using (var trainer = plain.CreateTrainer(options)) trainer.Train(batches);
        using (var trainer = decayed.CreateTrainer(options with { WeightDecay = 0.5 }))
        {
            Assert.Equal(new[] { ParameterGroup.DecayName, ParameterGroup.NoDecayName }, trainer.ParameterGroups.Select(g => g.Name));
            trainer.Train(batches);
        }

        var after = plain.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, parameter) in decayed.named_parameters().Where(p => p.parameter.requires_grad))
        {
            var same = parameter.allclose(after[name], rtol: 0, atol: 0);
            if (name.Contains(".lora_A.", StringComparison.Ordinal)) Assert.False(same, $"{name} did not decay.");
            else if (!name.Contains(".lora_B.", StringComparison.Ordinal)) Assert.True(same, $"{name} decayed.");
        }
    }

    [Fact]
    public void Save_trained_writes_the_adapter_the_prompt_and_the_trained_norm()
    {
        using var model = new PlanLm();

        var files = model.SaveTrained(folder, new TrainedSaveOptions { BaseModelNameOrPath = "plan-base" });

        Assert.Contains("adapter_config.json", files);
        Assert.Contains(Path.Combine("default", "adapter_model.safetensors"), files);
        Assert.Contains("model.safetensors", files);
        Assert.All(files, f => Assert.True(File.Exists(Path.Combine(folder, f)), f));
        using var loaded = new PlanLm();
        loaded.LoadAdapter(folder, PlanLm.Adapters.Default, expectedBaseModel: "plan-base");
        loaded.LoadSoftPrompt(Path.Combine(folder, PlanLm.SoftPrompts.Default), "restored");
    }
}
