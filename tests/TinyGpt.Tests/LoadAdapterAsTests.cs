using System;
using System.IO;
using System.Linq;
using PeftGen;
using PeftGen.Architectures;
using PeftGen.Formats;
using TinyGpt.Jobs;
using TinyGpt.Models;
using Xunit;
using static TorchSharp.torch;

namespace TinyGpt.Tests;

/// <summary>
/// An adapter trained at another rank loads under a new name beside the compiled-in one (PEFT's
/// <c>load_adapter(path, adapter_name)</c>), and computes what the model it was trained on computes.
/// </summary>
[Collection("torch")]
public sealed class LoadAdapterAsTests : IDisposable
{
    private readonly string folder = Path.Combine(Path.GetTempPath(), "peftgen-load-as-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public void A_rank_4_adapter_loads_as_a_new_adapter_of_a_rank_16_model_and_matches_its_own_model()
    {
        using var scope = NewDisposeScope();
        manual_seed(21);
        // The adapter's own model: rank 4, alpha 8, trained (here: B made non-zero) and saved as PEFT does.
        using var rank4 = WithBase(new TinyGptLoraRank4());
        ModelsTests.RandomizeLoraB(rank4);
        rank4.SaveAdapter(folder);

        using var model = WithBase(new TinyGptLora());
        ModelsTests.RandomizeLoraB(model);
        var defaultB = model.Projections().First().Layer.LoraB(TinyGptLora.Adapters.Default).clone();
        model.LoadAdapterAs(folder, "tenant_b");

        var ids = tensor(Enumerable.Range(1, 24).Select(i => (long)(i * 37 % 8000)).ToArray(), new long[] { 2, 12 });
        rank4.eval();
        model.eval();
        using var noGrad = no_grad();
        var expected = rank4.forward(ids);
        Tensor withNew, withDefault;
        using (AdapterContext.Use(adapter: "tenant_b")) withNew = model.forward(ids);
        withDefault = model.forward(ids);

        Assert.True((expected - withNew).abs().max().item<float>() < 1e-4);
        Assert.True((expected - withDefault).abs().max().item<float>() > 1e-2, "the default adapter must still be the active one");
        var layer = model.Projections().First().Layer;
        Assert.Equal(4, layer.AdapterConfig("tenant_b").Rank);
        Assert.Equal(16, layer.AdapterConfig(TinyGptLora.Adapters.Default).Rank);
        Assert.Equal(TinyGptLora.Adapters.Default, layer.ActiveAdapter);
        Assert.False(layer.LoraA("tenant_b").requires_grad);
        Assert.True(layer.LoraB(TinyGptLora.Adapters.Default).eq(defaultB).all().item<bool>());
        // The compile-time accounting describes the declared adapter only, and still equals the real declared parameters.
        Assert.Equal(TinyGptLora.Accounting.TrainableParameters, ((nn.Module)model).parameters().Where(p => p.requires_grad).Sum(p => p.numel()));
    }

    [Fact]
    public void A_taken_name_or_a_folder_that_does_not_fit_changes_nothing()
    {
        using var scope = NewDisposeScope();
        using var rank4 = new TinyGptLoraRank4();
        rank4.SaveAdapter(folder);
        using var model = new TinyGptLora();
        Assert.Throws<ArgumentException>(() => model.LoadAdapterAs(folder, TinyGptLora.Adapters.Default));
        Assert.Throws<ArgumentException>(() => model.LoadAdapterAs(folder, "has.dot"));

        // A lora_A of the wrong shape: every problem is listed and no projection gains an adapter.
        var broken = Path.Combine(folder, "broken");
        Directory.CreateDirectory(broken);
        File.Copy(Path.Combine(folder, "adapter_config.json"), Path.Combine(broken, "adapter_config.json"));
        var config = File.ReadAllText(Path.Combine(broken, "adapter_config.json")).Replace("\"r\": 4", "\"r\": 8");
        File.WriteAllText(Path.Combine(broken, "adapter_config.json"), config);
        File.Copy(Path.Combine(folder, "adapter_model.safetensors"), Path.Combine(broken, "adapter_model.safetensors"));
        var error = Assert.Throws<CheckpointMismatchException>(() => model.LoadAdapterAs(broken, "tenant_c"));
        Assert.Contains(error.Mismatches, m => m.Kind == CheckpointMismatchKind.WrongShape);
        Assert.DoesNotContain("tenant_c", model.AdapterNames());
    }

    private static T WithBase<T>(T model) where T : Gpt2LMHeadModel
    {
        TinyModels.LoadBase(model, BaseFolder.Shipped);
        return model;
    }
}
