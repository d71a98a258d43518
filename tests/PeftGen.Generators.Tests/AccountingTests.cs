using PeftGen.Generators.Accounting;
using PeftGen.Generators.Lora;
using PeftGen.Generators.Model;
using PeftGen.Generators.Quantization;
using Xunit;

namespace PeftGen.Generators.Tests;

/// <summary>Compile-time accounting: the pure function on hand-made specs, and the constants the generator emits.</summary>
public sealed class AccountingTests
{
    [Fact]
    public void Gpt2_small_with_lora_on_c_attn_prints_peft_line()
    {
        var result = TestHelpers.Run(Models.Gpt2);
        Assert.Equal("trainable params: 294,912 || all params: 124,734,720 || trainable%: 0.2364", result.Constant("Demo.Gpt2.Gpt2Small+Accounting", "Summary"));
        Assert.Equal(124_439_808L, result.Constant("Demo.Gpt2.Gpt2Small+Accounting", "BaseParameters"));
        Assert.Equal(124_439_808L, result.Constant("Demo.Gpt2.Gpt2Small+Accounting", "FrozenParameters"));
    }

    [Fact]
    public void Llama2_7b_with_model_wide_lora_on_q_and_v_prints_peft_line()
    {
        var result = TestHelpers.Run(Models.Llama);
        Assert.Equal("trainable params: 4,194,304 || all params: 6,742,609,920 || trainable%: 0.0622", result.Constant("Demo.Llama.Llama2+Accounting", "Summary"));
        Assert.Equal(4_194_304L, result.Constant("Demo.Llama.Llama2+Accounting", "LoraParameters_default"));
    }

    [Fact]
    public void One_set_of_blocks_counts_llama_and_qwen2_as_transformers_does()
    {
        // The bias of q/k/v comes from each configuration's QkvBias: the base counts are transformers' own for
        // meta-llama/Llama-2-7b-hf (6,738,415,616) and Qwen/Qwen2-7B (7,615,616,512).
        var result = TestHelpers.Run(Models.SharedSettings);
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Equal(6_738_415_616L, result.Constant("Demo.Shared.Llama2+Accounting", "BaseParameters"));
        Assert.Equal(7_615_616_512L, result.Constant("Demo.Shared.Qwen2+Accounting", "BaseParameters"));
        // LoRA r = 8 on q (3584 → 3584) and v (3584 → 512) in 28 layers and the 10-token prompt train; "sql" waits frozen.
        Assert.Equal((28L * 8 * ((3584 + 3584) + (3584 + 512))) + (10 * 3584), result.Constant("Demo.Shared.Qwen2+Accounting", "TrainableParameters"));
    }

    [Fact]
    public void Soft_prompt_of_20_tokens_on_a_256_wide_model_trains_5120_parameters()
    {
        var result = TestHelpers.Run(Models.SoftPrompt);
        Assert.Equal(5_120L, result.Constant("Demo.Prompt.PromptModel+Accounting", "TrainableParameters"));
        Assert.Equal(8L * 256, result.Constant("Demo.Prompt.PromptModel+Accounting", "SoftPromptParameters_tenant_b"));
        Assert.Equal((50257L * 256) + 256 + (28 * 256), result.Constant("Demo.Prompt.PromptModel+Accounting", "AllParameters"));
    }

    [Fact]
    public void Trainable_model_class_trains_every_base_weight()
    {
        var result = TestHelpers.Run(Models.FullFineTuning);
        const long all = (64 * 16) + (2 * ((16 * 16) + 16 + (2 * 16)));
        Assert.Equal(all, result.Constant("Demo.Full.FullModel+Accounting", "AllParameters"));
        Assert.Equal(all, result.Constant("Demo.Full.FullModel+Accounting", "TrainableParameters"));
        Assert.Empty(result.GeneratorDiagnostics);
    }

    [Fact]
    public void Lora_adds_rank_times_in_plus_out_and_only_the_active_adapter_trains()
    {
        var spec = new AccountingSpec(
            new[]
            {
                Layer("q", instances: 3, parameters: (10 * 20) + 20, Adapter("a", 4 * (10 + 20)), Adapter("b", 2 * (10 + 20))),
                Layer("norm", instances: 1, parameters: 2 * 10),
            }.ToEquatableArray(),
            EquatableArray<AccountedPrompt>.Empty,
            ActiveAdapter: "a",
            ActivePrompt: null);

        var result = ParameterAccounting.Compute(spec);

        Assert.Equal((3 * 220) + 20, result.BaseParameters);
        Assert.Equal(result.BaseParameters + (3 * 120) + (3 * 60), result.AllParameters);
        Assert.Equal(3 * 120, result.TrainableParameters);
        Assert.Equal(result.AllParameters - result.TrainableParameters, result.FrozenParameters);
        Assert.Equal(new[] { new NamedCount("a", 360), new NamedCount("b", 180) }, result.Adapters);
        Assert.Equal(16 * result.BaseParameters, result.FullFineTuningBytes);
        Assert.Equal((4 * result.AllParameters) + (12 * result.TrainableParameters), result.TrainingBytes);
    }

    [Fact]
    public void Trainable_members_count_their_base_weights()
    {
        var layer = Layer("head", instances: 2, parameters: 100) with { Trainable = true };
        var result = ParameterAccounting.Compute(new AccountingSpec(new[] { layer }.ToEquatableArray(), EquatableArray<AccountedPrompt>.Empty, null, null));
        Assert.Equal(200, result.TrainableParameters);
        Assert.Equal(200, result.Members[0].TrainableParameters);
    }

    [Theory]
    [InlineData(4096L * 4096, 64, true, (4096L * 4096 / 2) + 262_144 + (4 * 1024) + 4)]
    [InlineData(4096L * 4096, 64, false, (4096L * 4096 / 2) + (4 * 262_144))]
    [InlineData(100L, 64, true, 50 + 2 + 4 + 4)]
    [InlineData(101L, 32, false, 51 + (4 * 4))]
    public void Four_bit_weights_take_packed_codes_plus_quantization_state(long values, int blockSize, bool doubleQuant, long expectedBytes)
        => Assert.Equal(expectedBytes, QuantSpec.StorageBytes(values, blockSize, doubleQuant));

    [Fact]
    public void Four_bit_layers_keep_logical_counts_and_use_real_bytes()
    {
        var layer = Layer("w", instances: 1, parameters: (64 * 64) + 64) with { QuantizedValues = 64 * 64, Quantization = new QuantSpec("Nf4", 64, true, "Auto", null) };
        var result = ParameterAccounting.Compute(new AccountingSpec(new[] { layer }.ToEquatableArray(), EquatableArray<AccountedPrompt>.Empty, null, null));
        Assert.Equal((64 * 64) + 64, result.AllParameters);
        Assert.Equal((64 * 64 / 2) + 64 + 4 + 4 + (64 * 4), result.WeightBytes);
    }

    [Theory]
    [InlineData(294_912L, 124_734_720L, "trainable params: 294,912 || all params: 124,734,720 || trainable%: 0.2364")]
    [InlineData(0L, 1_000L, "trainable params: 0 || all params: 1,000 || trainable%: 0.0000")]
    [InlineData(1L, 3L, "trainable params: 1 || all params: 3 || trainable%: 33.3333")]
    [InlineData(0L, 0L, "trainable params: 0 || all params: 0 || trainable%: 0.0000")]
    public void Summary_matches_peft_format(long trainable, long all, string expected)
        => Assert.Equal(expected, ParameterAccounting.Summary(trainable, all));

    private static ResolvedLayer Layer(string path, long instances, long parameters, params ResolvedAdapter[] adapters)
        => new(path, LayerKind.Linear, instances, parameters, 0, null, false, adapters.ToEquatableArray());

    private static ResolvedAdapter Adapter(string name, long parameters)
        => new(new AdapterSpec(name, 1, 1, 0, false, EquatableArray<LoraTarget>.Empty, null, null), parameters, FromModel: false);
}
