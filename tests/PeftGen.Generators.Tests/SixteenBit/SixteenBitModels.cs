namespace PeftGen.Generators.Tests.SixteenBit;

/// <summary>Models whose frozen bases are built in 16 bits (<c>[PeftModel(..., BaseDType = BaseDType.BFloat16)]</c>).</summary>
internal static class SixteenBitModels
{
    /// <summary>
    /// Two blocks of a biased projection (LoRA r = 4 from the model class), a frozen MLP projection and a [Trainable]
    /// one; a float32 token embedding, norm and soft prompt; a frozen head. Hand-computed in <see cref="SixteenBitTests"/>.
    /// </summary>
    public const string Small = Models.Usings + """

        namespace Demo.Half;

        public static class HalfCfg { public const int Vocab = 32, Width = 16, Mlp = 48, Layers = 2, Heads = 2; }

        [PeftModel(typeof(HalfCfg), BaseDType = BaseDType.BFloat16, Batch = 2, Sequence = 8, MemoryBudget = "1 MiB")]
        [Lora(Rank = 4, Alpha = 8, Targets = ["q_proj"])]
        [SoftPrompt(4)]
        public partial class HalfModel : nn.Module<Tensor, Tensor>
        {
            [Embedding("Vocab", "Width")] public partial TokenEmbedding wte { get; }
            [Stack("Layers")] public partial ModuleList<HalfBlock> h { get; }
            [RmsNorm("Width")] public partial RmsNorm norm { get; }
            [Linear("Width", "Vocab", Bias = false)] public partial LoraLinear lm_head { get; }
            public override Tensor forward(Tensor ids) => lm_head.forward(norm.forward(wte.forward(ids)));
        }

        [PeftModule]
        public partial class HalfBlock : nn.Module<Tensor, Tensor>
        {
            [Linear("Width", "Width")] public partial LoraLinear q_proj { get; }
            [Linear("Width", "Mlp", Bias = false)] public partial LoraLinear up_proj { get; }
            [Linear("Mlp", "Width", Bias = false), Trainable] public partial LoraLinear down_proj { get; }
            public override Tensor forward(Tensor x) => down_proj.forward(up_proj.forward(q_proj.forward(x)));
        }
        """;

    /// <summary>The same blocks with a model-wide [Quantize4Bit(BlockSize = 32)]: 4-bit weights stay 4-bit, their biases follow BaseDType.</summary>
    public static string Quantized => Small
        .Replace("[SoftPrompt(4)]", "[Quantize4Bit(BlockSize = 32)]", System.StringComparison.Ordinal)
        .Replace(", Batch = 2, Sequence = 8, MemoryBudget = \"1 MiB\"", "", System.StringComparison.Ordinal);
}
