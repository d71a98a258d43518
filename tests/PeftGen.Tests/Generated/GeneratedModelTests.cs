using System.Linq;
using PeftGen;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Generated;

public static class TinyAccountingConfig
{
    public const int Vocab = 64, Context = 16, Width = 16, Layers = 2;
}

/// <summary>A small model through the generator: member, block-class and model-wide adapters, [Trainable], a user field.</summary>
[PeftModel(typeof(TinyAccountingConfig), ContextLength = "Context")]
[Lora(Rank = 2, Alpha = 4, Adapter = "wide", Targets = new[] { "c_proj" })]
public partial class AccountingModel : nn.Module<Tensor, Tensor>
{
    [Embedding("Vocab", "Width")] public partial TokenEmbedding wte { get; }
    [Embedding("Context", "Width")] public partial Embedding wpe { get; }
    [Stack("Layers")] public partial ModuleList<AccountingBlock> h { get; }
    [LayerNorm("Width"), Trainable] public partial LayerNorm ln_f { get; }

    private readonly Dropout drop = nn.Dropout(0.1);

    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var x = drop.forward(wte.forward(ids) + wpe.forward(arange(ids.shape[1])));
        foreach (var block in h) x = block.forward(x);
        return ln_f.forward(x).MoveToOuterDisposeScope();
    }
}

[PeftModule]
public partial class AccountingBlock : nn.Module<Tensor, Tensor>
{
    [LayerNorm("Width")] public partial LayerNorm ln_1 { get; }
    [Block] public partial AccountingAttention attn { get; }

    public override Tensor forward(Tensor x) => x + attn.forward(ln_1.forward(x));
}

[PeftModule]
public partial class AccountingAttention : nn.Module<Tensor, Tensor>
{
    [Linear("Width", "3 * Width", CheckpointLayout = WeightLayout.InOut), Lora(Rank = 4, Alpha = 8)] public partial LoraLinear c_attn { get; }
    [Linear("Width", "Width")] public partial LoraLinear c_proj { get; }

    public override Tensor forward(Tensor x) => c_proj.forward(c_attn.forward(x).narrow(-1, 0, Dims.Width));
}

/// <summary>QLoRA and prompt tuning through the generator: every projection in 4 bits but the [Trainable] head.</summary>
[PeftModel(typeof(TinyAccountingConfig), ContextLength = "Context")]
[Quantize4Bit(BlockSize = 32)]
[SoftPrompt(4)]
public partial class QuantizedAccountingModel : nn.Module<Tensor, Tensor>
{
    [Embedding("Vocab", "Width")] public partial TokenEmbedding wte { get; }
    [Stack("Layers")] public partial ModuleList<AccountingBlock> h { get; }
    [Linear("Width", "Vocab", Bias = false), Trainable] public partial LoraLinear head { get; }

    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var x = wte.forward(ids);
        foreach (var block in h) x = block.forward(x);
        return head.forward(x).MoveToOuterDisposeScope();
    }
}

/// <summary>The generated code at run time: counts equal the compile-time accounting, names follow the members.</summary>
public sealed class GeneratedModelTests
{
    [Fact]
    public void Real_parameter_counts_equal_the_compile_time_constants()
    {
        using var model = new AccountingModel();
        var parameters = model.named_parameters().ToList();

        Assert.Equal(AccountingModel.Accounting.AllParameters, parameters.Sum(p => p.parameter.numel()));
        Assert.Equal(AccountingModel.Accounting.TrainableParameters, parameters.Where(p => p.parameter.requires_grad).Sum(p => p.parameter.numel()));
        Assert.Equal(AccountingModel.Accounting.LoraParameters_wide, parameters.Where(p => p.name.Contains(".wide.", System.StringComparison.Ordinal)).Sum(p => p.parameter.numel()));
        foreach (var member in AccountingModel.Accounting.Members)
        {
            var real = parameters
                .Where(p => Matches(member.Path, p.name) && !p.name.Contains(".lora_", System.StringComparison.Ordinal))
                .Sum(p => p.parameter.numel());
            Assert.True(member.BaseParameters == real, $"{member.Path}: compile time {member.BaseParameters}, run time {real}.");
        }
    }

    [Fact]
    public void Layers_list_every_layer_with_its_checkpoint_path()
    {
        using var model = new AccountingModel();
        Assert.Equal(
            new[] { "wte", "wpe", "h.0.ln_1", "h.0.attn.c_attn", "h.0.attn.c_proj", "h.1.ln_1", "h.1.attn.c_attn", "h.1.attn.c_proj", "ln_f" },
            model.Layers.Select(l => l.Path));
        Assert.Equal(new[] { "ln_f" }, model.Layers.Where(l => l.Trainable).Select(l => l.Path));
        Assert.Equal(WeightLayout.InOut, model.Layers.Single(l => l.Path == "h.1.attn.c_attn").CheckpointLayout);
        Assert.Same(model.h[1].attn.c_proj, model.Layers.Single(l => l.Path == "h.1.attn.c_proj").Module);
    }

    [Fact]
    public void Checkpoint_names_are_the_member_names_and_user_fields_are_registered()
    {
        using var model = new AccountingModel();
        var names = model.named_modules().Select(m => m.name).ToHashSet();
        Assert.Contains("h.0.attn.c_attn", names);
        Assert.Contains("drop", names);
        Assert.DoesNotContain(names, n => n.Contains('<', System.StringComparison.Ordinal) || n.StartsWith('_'));
        Assert.Contains("h.1.attn.c_proj.lora_A.wide.weight", model.state_dict().Keys);
    }

    [Fact]
    public void The_first_adapter_is_active_and_the_only_one_that_trains()
    {
        using var model = new AccountingModel();
        Assert.Equal(AccountingModel.Adapters.Default, model.h[0].attn.c_attn.ActiveAdapter);
        Assert.Null(model.h[0].attn.c_proj.ActiveAdapter);
        Assert.False(model.h[0].attn.c_proj.LoraA(AccountingModel.Adapters.Wide).requires_grad);
        using var output = model.forward(tensor(new long[,] { { 1, 2, 3 } }));
        Assert.Equal(new long[] { 1, 3, 16 }, output.shape);
    }

    [Fact]
    public void Four_bit_models_count_logical_parameters_and_real_bytes()
    {
        using var model = new QuantizedAccountingModel();
        var projections = model.Layers.Select(l => l.Module).OfType<LoraLinear>().ToList();
        var quantized = projections.Where(p => p.IsQuantized).ToList();
        Assert.Equal(4, quantized.Count);
        Assert.False(model.head.IsQuantized);

        var parameters = model.parameters().ToList();
        var logicalQuantized = quantized.Sum(p => p.InFeatures * p.OutFeatures);
        Assert.Equal(QuantizedAccountingModel.Accounting.AllParameters, parameters.Sum(p => p.numel()) + logicalQuantized);
        Assert.Equal(QuantizedAccountingModel.Accounting.TrainableParameters, parameters.Where(p => p.requires_grad).Sum(p => p.numel()));
        Assert.Equal(
            QuantizedAccountingModel.Accounting.WeightBytes,
            parameters.Sum(p => p.numel() * 4) + quantized.Sum(p => p.QuantizedWeight!.StorageBytes));
    }

    private static bool Matches(string template, string parameterName)
    {
        var parts = template.Split('.');
        var names = parameterName.Split('.');
        if (names.Length <= parts.Length) return false;
        for (var i = 0; i < parts.Length; i++)
        {
            if (parts[i] != "*" && parts[i] != names[i]) return false;
        }
        return true;
    }
}
