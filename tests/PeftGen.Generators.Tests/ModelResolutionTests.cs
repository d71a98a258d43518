using System.Linq;
using Xunit;

namespace PeftGen.Generators.Tests;

/// <summary>How one block definition is resolved per model, which [Lora] wins where several apply, and what stays in float.</summary>
public sealed class ModelResolutionTests
{
    private const string SharedBlock = Models.Usings + """

        namespace Demo.Sizes;

        public static class Small { public const int Width = 16, Layers = 2, Mlp = 64; }
        public static class Large { public const int Width = 32, Layers = 4; }

        [PeftModel(typeof(Small))]
        public partial class SmallModel : nn.Module<Tensor, Tensor>
        {
            [Stack("Layers")] public partial ModuleList<Block> h { get; }
            public override Tensor forward(Tensor x) => x;
        }

        [PeftModel(typeof(Large))]
        public partial class LargeModel : nn.Module<Tensor, Tensor>
        {
            [Stack("Layers")] public partial ModuleList<Block> h { get; }
            public override Tensor forward(Tensor x) => x;
        }

        [PeftModule]
        public partial class Block : nn.Module<Tensor, Tensor>
        {
            [Linear("Width", [|"Mlp"|]), Lora(Rank = 4, Alpha = 8)] public partial LoraLinear up { get; }
            public override Tensor forward(Tensor x) => x;
        }
        """;

    [Fact]
    public void A_shared_block_is_checked_against_every_model_that_reaches_it()
    {
        var (source, span) = TestHelpers.Unmark(SharedBlock);
        var result = TestHelpers.Run(source);

        var diagnostic = Assert.Single(result.GeneratorDiagnostics);
        Assert.Equal("PEFT005", diagnostic.Id);
        Assert.Equal(span, diagnostic.Location.SourceSpan);
        Assert.Contains("Demo.Sizes.Large", diagnostic.GetMessage(System.Globalization.CultureInfo.InvariantCulture), System.StringComparison.Ordinal);

        // The valid model and the block (with its typed dimensions) are emitted; the model that cannot resolve the block is skipped.
        Assert.Equal(
            new[] { "Demo.Sizes.Block.Peft.Dims.g.cs", "Demo.Sizes.Block.Peft.g.cs", "Demo.Sizes.SmallModel.Peft.g.cs" },
            result.Sources.Select(s => s.HintName).OrderBy(n => n, System.StringComparer.Ordinal));
        Assert.Equal(2L * 4 * (16 + 64), result.Constant("Demo.Sizes.SmallModel+Accounting", "TrainableParameters"));
    }

    private const string Precedence = Models.Usings + """

        namespace Demo.Precedence;

        public static class Cfg { public const int Width = 64, Layers = 3; }

        [PeftModel(typeof(Cfg))]
        [Lora(Rank = 8, Alpha = 16)]
        public partial class Root : nn.Module<Tensor, Tensor>
        {
            [Stack("Layers")] public partial ModuleList<Block> h { get; }
            [Linear("Width", "Width")] public partial LoraLinear head { get; }
            public override Tensor forward(Tensor x) => x;
        }

        [PeftModule]
        [Lora(Rank = 2, Alpha = 4, Targets = new[] { "v" })]
        public partial class Block : nn.Module<Tensor, Tensor>
        {
            [Linear("Width", "Width"), Lora(Rank = 16, Alpha = 16)] public partial LoraLinear q { get; }
            [Linear("Width", "Width")] public partial LoraLinear k { get; }
            [Linear("Width", "Width")] public partial LoraLinear v { get; }
            [Linear("Width", "Width"), NoLora] public partial LoraLinear o { get; }
            public override Tensor forward(Tensor x) => x;
        }
        """;

    [Fact]
    public void Member_beats_block_class_beats_model_class_and_NoLora_excludes()
    {
        var result = TestHelpers.Run(Precedence);
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompilationErrors());

        // Per block: q rank 16 (member), k rank 8 (model), v rank 2 (block class, targeted), o none. Head: rank 8.
        const long perBlock = (16 + 8 + 2) * (64 + 64);
        Assert.Equal((3 * perBlock) + (8 * 128), result.Constant("Demo.Precedence.Root+Accounting", "LoraParameters_default"));

        var block = result.Source("Demo.Precedence.Block.Peft.g.cs");
        Assert.Contains("_q.AddAdapter(\"default\", new global::PeftGen.LoraConfig(16, 16d, 0d, false));", block, System.StringComparison.Ordinal);
        Assert.Contains("_v.AddAdapter(\"default\", new global::PeftGen.LoraConfig(2, 4d, 0d, false));", block, System.StringComparison.Ordinal);
        Assert.DoesNotContain("_k.AddAdapter", block, System.StringComparison.Ordinal);
        Assert.DoesNotContain("_o.AddAdapter", block, System.StringComparison.Ordinal);
        // The model adds its own adapter where the resolution gave it, by path: k only (q and v have their own
        // "default", o is [NoLora]); the head is the model class's own projection, so its constructor adds it directly.
        var root = result.Source("Demo.Precedence.Root.Peft.g.cs");
        Assert.Contains("foreach (var projection in global::PeftGen.PeftLayers.Projections(layers, \"h.*.k\")) projection.AddAdapter(\"default\", new global::PeftGen.LoraConfig(8, 16d, 0d, false));", root, System.StringComparison.Ordinal);
        Assert.Contains("_head.AddAdapter(\"default\", new global::PeftGen.LoraConfig(8, 16d, 0d, false));", root, System.StringComparison.Ordinal);
        Assert.DoesNotContain("CollectModel", root + block, System.StringComparison.Ordinal);
    }

    [Fact]
    public void A_model_wide_Quantize4Bit_keeps_the_output_head_and_NoQuantize_members_in_float()
    {
        var result = TestHelpers.Run(Models.QLoraHead);
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompilationErrors());

        // The model class's constructor builds lm_head in float; the block builds gate_proj in float and takes the
        // model's setting for the others.
        var root = result.Source("Demo.QHead.SmallLlamaQLora.Peft.g.cs");
        Assert.Contains("_lm_head = new global::PeftGen.LoraLinear(dims[\"Width\"], dims[\"Vocab\"], false);", root, System.StringComparison.Ordinal);
        var block = result.Source("Demo.QHead.QLayer.Peft.g.cs");
        Assert.Contains("_gate_proj = new global::PeftGen.LoraLinear(dims[\"Width\"], dims[\"Mlp\"], false, null, modelBaseDType);", block, System.StringComparison.Ordinal);
        Assert.Contains("_q_proj = new global::PeftGen.LoraLinear(dims[\"Width\"], dims[\"Width\"], false, modelQuantization, modelBaseDType);", block, System.StringComparison.Ordinal);
        Assert.Contains("_down_proj = new global::PeftGen.LoraLinear(dims[\"Mlp\"], dims[\"Width\"], false, modelQuantization, modelBaseDType);", block, System.StringComparison.Ordinal);

        // The accounting counts the same: embedding 256·64·4 = 65,536 and head 64·256·4 = 65,536 bytes in float32; per
        // layer q and v 4-bit (4,096 values: 2,048 packed + 64 absmax codes + 4 + 4 = 2,120 each), gate_proj float
        // (64·128·4 = 32,768), down_proj 4-bit (8,192 values: 4,096 + 128 + 4 + 4 = 4,232), LoRA r = 4 on q and v
        // (2 · 4 · 128 · 4 = 4,096): 45,336 per layer, 90,672 for two.
        Assert.Equal(65_536L + 90_672 + 65_536, result.Constant("Demo.QHead.SmallLlamaQLora+Accounting", "WeightBytes"));
    }

    private const string HeadRule = Models.Usings + """

        namespace Demo.HeadRule;

        public static class Cfg { public const int Width = 64, Vocab = 128; }

        [PeftModel(typeof(Cfg))]
        [Lora(Rank = 4, Alpha = 8)]
        [Quantize4Bit]
        public partial class Renamed : nn.Module<Tensor, Tensor>
        {
            [Linear("Width", "Vocab", Bias = false), CheckpointName("lm_head")] public partial LoraLinear output { get; }
            [Linear("Width", "Width", Bias = false)] public partial LoraLinear proj { get; }
            [Block] public partial Inner inner { get; }
            public override Tensor forward(Tensor x) => x;
        }

        [PeftModule]
        public partial class Inner : nn.Module<Tensor, Tensor>
        {
            [Linear("Width", "Width", Bias = false)] public partial LoraLinear lm_head { get; }
            public override Tensor forward(Tensor x) => x;
        }

        [PeftModel(typeof(Cfg))]
        [Lora(Rank = 4, Alpha = 8)]
        [Quantize4Bit]
        public partial class OwnSetting : nn.Module<Tensor, Tensor>
        {
            [Linear("Width", "Width", Bias = false)] public partial LoraLinear proj { get; }
            [Linear("Width", "Vocab", Bias = false), Quantize4Bit(BlockSize = 32)] public partial LoraLinear lm_head { get; }
            public override Tensor forward(Tensor x) => x;
        }
        """;

    [Fact]
    public void The_output_head_is_the_model_class_own_projection_checkpointed_as_lm_head_unless_it_asks_for_4_bits()
    {
        var result = TestHelpers.Run(HeadRule);
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompilationErrors());

        // By checkpoint name: 'output' is checkpointed as lm_head, so it stays float; a block's lm_head is not the head.
        var renamed = result.Source("Demo.HeadRule.Renamed.Peft.g.cs");
        Assert.Contains("_output = new global::PeftGen.LoraLinear(dims[\"Width\"], dims[\"Vocab\"], false);", renamed, System.StringComparison.Ordinal);
        Assert.Contains("_lm_head = new global::PeftGen.LoraLinear(dims[\"Width\"], dims[\"Width\"], false, modelQuantization, modelBaseDType);", result.Source("Demo.HeadRule.Inner.Peft.g.cs"), System.StringComparison.Ordinal);
        // Head 64·128·4 = 32,768 float; proj and inner.lm_head 4-bit, 2,120 each; LoRA r = 4 on all three:
        // 4 · (192 + 128 + 128) · 4 = 7,168.
        Assert.Equal(32_768L + 2_120 + 2_120 + 7_168, result.Constant("Demo.HeadRule.Renamed+Accounting", "WeightBytes"));

        // A member's own [Quantize4Bit] applies to the head too: 8,192 values in blocks of 32 with double quantization,
        // 4,096 packed + 256 absmax codes + 4 + 4 = 4,360; proj 2,120; LoRA 4 · (192 + 128) · 4 = 5,120.
        Assert.Contains("_lm_head = new global::PeftGen.LoraLinear(dims[\"Width\"], dims[\"Vocab\"], false, new global::PeftGen.Quant4BitOptions(global::PeftGen.QuantType.Nf4, 32, true, global::PeftGen.ComputeDType.Auto));",
            result.Source("Demo.HeadRule.OwnSetting.Peft.g.cs"), System.StringComparison.Ordinal);
        Assert.Equal(4_360L + 2_120 + 5_120, result.Constant("Demo.HeadRule.OwnSetting+Accounting", "WeightBytes"));
    }

    private const string PromptThroughBlock = Models.Usings + """

        namespace Demo.Trunk;

        public static class Cfg { public const int Vocab = 64, Context = 32, Width = 16, Layers = 2; }

        [PeftModel(typeof(Cfg), ContextLength = "Context")]
        [SoftPrompt(4)]
        public partial class PromptModel : nn.Module<Tensor, Tensor>
        {
            [Block] public partial Trunk transformer { get; }
            public override Tensor forward(Tensor x) => transformer.forward(x);
        }

        [PeftModule]
        public partial class Trunk : nn.Module<Tensor, Tensor>
        {
            [Embedding("Vocab", "Width")] public partial TokenEmbedding wte { get; }
            [Stack("Layers")] public partial ModuleList<Layer> h { get; }
            public override Tensor forward(Tensor x) => wte.forward(x);
        }

        [PeftModule]
        public partial class Layer : nn.Module<Tensor, Tensor>
        {
            [Embedding("Vocab", "Width")] public partial TokenEmbedding per_layer { get; }
            public override Tensor forward(Tensor x) => x;
        }
        """;

    [Fact]
    public void A_model_level_soft_prompt_reaches_the_token_embedding_of_a_block_but_not_one_inside_a_stack()
    {
        var result = TestHelpers.Run(PromptThroughBlock);

        Assert.Empty(result.GeneratorDiagnostics);
        var model = result.Sources.Single(s => s.HintName == "Demo.Trunk.PromptModel.Peft.g.cs").SourceText.ToString();
        Assert.Contains("PeftLayers.Find<global::PeftGen.TokenEmbedding>(layers, \"transformer.wte\")", model, System.StringComparison.Ordinal);
        Assert.Equal(4L * 16, result.Constant("Demo.Trunk.PromptModel+Accounting", "TrainableParameters"));

        var withoutTrunkEmbedding = PromptThroughBlock.Replace(
            "[Embedding(\"Vocab\", \"Width\")] public partial TokenEmbedding wte { get; }", "", System.StringComparison.Ordinal)
            .Replace("wte.forward(x)", "x", System.StringComparison.Ordinal);
        var diagnostic = Assert.Single(TestHelpers.Run(withoutTrunkEmbedding).GeneratorDiagnostics);
        Assert.Equal("PEFT303", diagnostic.Id);
    }
}
