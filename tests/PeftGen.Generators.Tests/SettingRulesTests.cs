using System;
using System.Linq;
using PeftGen.Generators.Model;
using Xunit;

namespace PeftGen.Generators.Tests;

/// <summary>
/// The generator and the runtime agree on every default and valid range: an attribute written without arguments
/// parses to what <c>new XAttribute()</c> holds, and the generator's checks accept exactly what the runtime's
/// <c>Validate</c> methods accept. (<c>SettingRules</c> here is the generator's linked copy.)
/// </summary>
public sealed class SettingRulesTests
{
    private const string Defaults = Models.Usings + """

        namespace Demo.Defaults;

        public static class Cfg { public const int Vocab = 64, Width = 16; }

        [PeftModel(typeof(Cfg))]
        [SoftPrompt(4)]
        public partial class M : nn.Module<Tensor, Tensor>
        {
            [Embedding("Vocab", "Width")] public partial TokenEmbedding wte { get; }
            [Linear("Width", "Width"), Lora, Quantize4Bit] public partial LoraLinear proj { get; }
            [LayerNorm("Width")] public partial LayerNorm ln { get; }
            [RmsNorm("Width")] public partial RmsNorm norm { get; }
            public override Tensor forward(Tensor x) => x;
        }
        """;

    [Fact]
    public void Attributes_without_arguments_parse_to_the_attributes_own_defaults()
    {
        var result = TestHelpers.Run(Defaults);
        Assert.Empty(result.GeneratorDiagnostics);
        var model = result.RunResult.TrackedSteps[TrackingNames.Models].SelectMany(s => s.Outputs).Select(o => (ClassSpec)o.Value).Single();
        var proj = model.Members.Single(m => m.Name == "proj");

        var lora = new LoraAttribute();
        var adapter = Assert.Single(proj.Lora);
        Assert.Equal((lora.Adapter, lora.Rank, lora.Alpha, lora.Dropout, lora.UseRsLora, lora.Targets.Length),
            (adapter.Name, adapter.Rank, adapter.Alpha, adapter.Dropout, adapter.UseRsLora, adapter.Targets.Count));

        var quantize = new Quantize4BitAttribute();
        var quant = proj.Quantization!;
        Assert.Equal((quantize.QuantType.ToString(), quantize.BlockSize, quantize.DoubleQuant, quantize.ComputeDType.ToString()),
            (quant.QuantType, quant.BlockSize, quant.DoubleQuant, quant.ComputeDType));

        var linear = new LinearAttribute("Width", "Width");
        Assert.Equal((linear.Bias, linear.CheckpointLayout.ToString()), (proj.Bias, proj.CheckpointLayout));
        Assert.Equal(new LayerNormAttribute("Width").Eps, model.Members.Single(m => m.Name == "ln").Eps);
        Assert.Equal(new RmsNormAttribute("Width").Eps, model.Members.Single(m => m.Name == "norm").Eps);

        var softPrompt = new SoftPromptAttribute(4);
        var prompt = Assert.Single(model.ClassSoftPrompts);
        Assert.Equal((softPrompt.Name, softPrompt.Init.ToString(), softPrompt.InitText), (prompt.Name, prompt.Init, prompt.InitText));

        var peftModel = new PeftModelAttribute(typeof(int));
        Assert.Equal(peftModel.Tokenizer.ToString(), model.Root!.Tokenizer);
        Assert.Null(model.Root.ContextLength);
        Assert.Equal("", peftModel.ContextLength);
    }

    [Fact]
    public void Runtime_configs_default_to_the_attributes_defaults()
    {
        var options = new Quant4BitOptions();
        var quantize = new Quantize4BitAttribute();
        Assert.Equal((quantize.QuantType, quantize.BlockSize, quantize.DoubleQuant, quantize.ComputeDType),
            (options.QuantType, options.BlockSize, options.DoubleQuant, options.ComputeDType));
        Assert.Equal(new LoraAttribute().Dropout, new LoraConfig(1, 1).Dropout);
        var prompt = new SoftPromptConfig(1);
        Assert.Equal((new SoftPromptAttribute(1).Init, new SoftPromptAttribute(1).InitText), (prompt.Init, prompt.InitText));
    }

    public static TheoryData<double> Doubles => new() { double.NaN, double.NegativeInfinity, -1, -0.0, 0, double.Epsilon, 0.5, 1 - 1e-16, 1, 8, double.MaxValue, double.PositiveInfinity };

    public static TheoryData<int> Ints => new() { int.MinValue, -1, 0, 1, 16, 31, 32, 48, 64, 4096, 8192, int.MaxValue };

    [Theory]
    [MemberData(nameof(Doubles))]
    public void The_generator_accepts_the_alphas_and_dropouts_the_runtime_accepts(double value)
    {
        Assert.Equal(SettingRules.IsValidAlpha(value), Accepts(() => new LoraConfig(1, value).Validate(16, 16)));
        Assert.Equal(SettingRules.IsValidDropout(value), Accepts(() => new LoraConfig(1, 1, value).Validate(16, 16)));
    }

    [Theory]
    [MemberData(nameof(Ints))]
    public void The_generator_accepts_the_ranks_block_sizes_and_prompt_lengths_the_runtime_accepts(int value)
    {
        Assert.Equal(SettingRules.IsValidRank(value), Accepts(() => new LoraConfig(value, 1).Validate(int.MaxValue, int.MaxValue)));
        Assert.Equal(SettingRules.IsValidQuantBlockSize(value), Accepts(() => new Quant4BitOptions(BlockSize: value).Validate()));
        Assert.Equal(SettingRules.IsValidVirtualTokens(value), Accepts(() => new SoftPromptConfig(value).Validate()));
    }

    private static bool Accepts(Action validate)
    {
        try
        {
            validate();
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
