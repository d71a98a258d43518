namespace PeftGen.Generators.Tests;

/// <summary>Model definitions written as a user would, used as generator inputs.</summary>
internal static class Models
{
    public const string Usings = """
        using PeftGen;
        using TorchSharp;
        using TorchSharp.Modules;
        using static TorchSharp.torch;
        """;

    /// <summary>GPT-2 small (124M, tied head) with LoRA r=8, alpha 16 on c_attn only.</summary>
    public const string Gpt2 = Usings + """

        namespace Demo.Gpt2;

        public static class Gpt2SmallConfig { public const int Vocab = 50257, Context = 1024, Width = 768, Layers = 12, Heads = 12; }

        [PeftModel(typeof(Gpt2SmallConfig), ContextLength = "Context", Tokenizer = PeftTokenizer.Gpt2)]
        public partial class Gpt2Small : nn.Module<Tensor, Tensor>
        {
            [Embedding("Vocab", "Width")] public partial TokenEmbedding wte { get; }
            [Embedding("Context", "Width")] public partial Embedding wpe { get; }
            [Stack("Layers")] public partial ModuleList<GptBlock> h { get; }
            [LayerNorm("Width")] public partial LayerNorm ln_f { get; }
            public override Tensor forward(Tensor ids) => ln_f.forward(wte.forward(ids));
        }

        [PeftModule]
        public partial class GptBlock : nn.Module<Tensor, Tensor>
        {
            [LayerNorm("Width")] public partial LayerNorm ln_1 { get; }
            [Block] public partial GptAttention attn { get; }
            [LayerNorm("Width")] public partial LayerNorm ln_2 { get; }
            [Block] public partial GptMlp mlp { get; }
            public override Tensor forward(Tensor x) => mlp.forward(ln_2.forward(attn.forward(ln_1.forward(x))));
        }

        [PeftModule]
        public partial class GptAttention : nn.Module<Tensor, Tensor>
        {
            [Linear("Width", "3 * Width", CheckpointLayout = WeightLayout.InOut)]
            [Lora(Rank = 8, Alpha = 16)]
            public partial LoraLinear c_attn { get; }
            [Linear("Width", "Width", CheckpointLayout = WeightLayout.InOut)] public partial LoraLinear c_proj { get; }
            public override Tensor forward(Tensor x)
            {
                var heads = Dims.Heads;
                return c_proj.forward(c_attn.forward(x).narrow(-1, 0, Dims.Width)).view(x.shape[0], x.shape[1], heads, -1).flatten(2);
            }
        }

        [PeftModule]
        public partial class GptMlp : nn.Module<Tensor, Tensor>
        {
            [Linear("Width", "4 * Width", CheckpointLayout = WeightLayout.InOut)] public partial LoraLinear c_fc { get; }
            [Linear("4 * Width", "Width", CheckpointLayout = WeightLayout.InOut)] public partial LoraLinear c_proj { get; }
            public override Tensor forward(Tensor x) => c_proj.forward(nn.functional.gelu(c_fc.forward(x)));
        }
        """;

    /// <summary>
    /// Llama-2-7B: 32 layers, 4096 wide, MLP 11008, RMSNorm, untied head; a model-wide [Lora] targets q_proj and v_proj.
    /// </summary>
    public const string Llama = Usings + """

        namespace Demo.Llama;

        public static class Llama2_7B { public const int Vocab = 32000, Context = 4096, Width = 4096, Layers = 32, Heads = 32, Mlp = 11008; }

        [PeftModel(typeof(Llama2_7B), ContextLength = "Context")]
        [Lora(Rank = 8, Alpha = 16, Dropout = 0.05, Targets = new[] { "q_proj", "v_proj" })]
        public partial class Llama2 : nn.Module<Tensor, Tensor>
        {
            [Embedding("Vocab", "Width")] public partial TokenEmbedding embed_tokens { get; }
            [Stack("Layers")] public partial ModuleList<LlamaLayer> layers { get; }
            [RmsNorm("Width", Eps = 1e-5)] public partial RmsNorm norm { get; }
            [Linear("Width", "Vocab", Bias = false)] public partial LoraLinear lm_head { get; }
            public override Tensor forward(Tensor ids) => lm_head.forward(norm.forward(embed_tokens.forward(ids)));
        }

        [PeftModule]
        public partial class LlamaLayer : nn.Module<Tensor, Tensor>
        {
            [RmsNorm("Width")] public partial RmsNorm input_layernorm { get; }
            [Block] public partial LlamaAttention self_attn { get; }
            [RmsNorm("Width")] public partial RmsNorm post_attention_layernorm { get; }
            [Block] public partial LlamaMlp mlp { get; }
            public override Tensor forward(Tensor x) => mlp.forward(post_attention_layernorm.forward(self_attn.forward(input_layernorm.forward(x))));
        }

        [PeftModule]
        public partial class LlamaAttention : nn.Module<Tensor, Tensor>
        {
            [Linear("Width", "Width", Bias = false)] public partial LoraLinear q_proj { get; }
            [Linear("Width", "Width", Bias = false)] public partial LoraLinear k_proj { get; }
            [Linear("Width", "Width", Bias = false)] public partial LoraLinear v_proj { get; }
            [Linear("Width", "Width", Bias = false)] public partial LoraLinear o_proj { get; }
            public override Tensor forward(Tensor x) => o_proj.forward(q_proj.forward(x) + k_proj.forward(x) + v_proj.forward(x));
        }

        [PeftModule]
        public partial class LlamaMlp : nn.Module<Tensor, Tensor>
        {
            [Linear("Width", "Mlp", Bias = false)] public partial LoraLinear gate_proj { get; }
            [Linear("Width", "Mlp", Bias = false)] public partial LoraLinear up_proj { get; }
            [Linear("Mlp", "Width", Bias = false)] public partial LoraLinear down_proj { get; }
            public override Tensor forward(Tensor x) => down_proj.forward(nn.functional.silu(gate_proj.forward(x)) * up_proj.forward(x));
        }
        """;

    /// <summary>A tiny QLoRA model: every projection in 4 bits, LoRA on the block's projections, a [Trainable] head kept in full precision.</summary>
    public const string QLora = Usings + """

        namespace Demo.Tiny;

        public static class TinyConfig { public const int Vocab = 512, Width = 64, Layers = 2, Hidden = 256; }

        [PeftModel(typeof(TinyConfig))]
        [Quantize4Bit(BlockSize = 64)]
        public partial class TinyQLora : nn.Module<Tensor, Tensor>
        {
            [Embedding("Vocab", "Width")] public partial TokenEmbedding wte { get; }
            [Stack("Layers")] public partial ModuleList<TinyBlock> h { get; }
            [Linear("Width", "Vocab", Bias = false), Trainable] public partial LoraLinear head { get; }
            public override Tensor forward(Tensor ids) => head.forward(wte.forward(ids));
        }

        [PeftModule]
        [Lora(Rank = 4, Alpha = 8)]
        public partial class TinyBlock : nn.Module<Tensor, Tensor>
        {
            [Linear("Width", "Hidden")] public partial LoraLinear up { get; }
            [Linear("Hidden", "Width"), Quantize4Bit(QuantType = QuantType.Fp4, BlockSize = 128, DoubleQuant = false)] public partial LoraLinear down { get; }
            [LayerNorm("Width")] public partial LayerNorm ln { get; }
            public override Tensor forward(Tensor x) => ln.forward(down.forward(up.forward(x)));
        }
        """;

    /// <summary>
    /// QLoRA on a Llama-shaped model as transformers sets it up: a model-wide [Quantize4Bit] stores every projection in
    /// 4 bits except the output head lm_head (kept in float by the head rule) and gate_proj ([NoQuantize]: float, frozen).
    /// </summary>
    public const string QLoraHead = Usings + """

        namespace Demo.QHead;

        public static class SmallLlama { public const int Vocab = 256, Width = 64, Layers = 2, Mlp = 128; }

        [PeftModel(typeof(SmallLlama))]
        [Lora(Rank = 4, Alpha = 8, Targets = ["q_proj", "v_proj"])]
        [Quantize4Bit]
        public partial class SmallLlamaQLora : nn.Module<Tensor, Tensor>
        {
            [Embedding("Vocab", "Width")] public partial TokenEmbedding embed_tokens { get; }
            [Stack("Layers")] public partial ModuleList<QLayer> layers { get; }
            [Linear("Width", "Vocab", Bias = false)] public partial LoraLinear lm_head { get; }
            public override Tensor forward(Tensor ids) => lm_head.forward(embed_tokens.forward(ids));
        }

        [PeftModule]
        public partial class QLayer : nn.Module<Tensor, Tensor>
        {
            [Linear("Width", "Width", Bias = false)] public partial LoraLinear q_proj { get; }
            [Linear("Width", "Width", Bias = false)] public partial LoraLinear v_proj { get; }
            [Linear("Width", "Mlp", Bias = false), NoQuantize] public partial LoraLinear gate_proj { get; }
            [Linear("Mlp", "Width", Bias = false)] public partial LoraLinear down_proj { get; }
            public override Tensor forward(Tensor x) => down_proj.forward(gate_proj.forward(q_proj.forward(x) + v_proj.forward(x)));
        }
        """;

    /// <summary>Prompt tuning only: a 20-token prompt on a 256-wide model, and a second named prompt.</summary>
    public const string SoftPrompt = Usings + """

        namespace Demo.Prompt;

        public static class PromptConfig { public const int Vocab = 50257, Context = 128, Width = 256; }

        [PeftModel(typeof(PromptConfig), ContextLength = "Context", Tokenizer = PeftTokenizer.Gpt2)]
        [SoftPrompt(20)]
        public partial class PromptModel : nn.Module<Tensor, Tensor>
        {
            [Embedding("Vocab", "Width")]
            [SoftPrompt(8, Name = "tenant_b", Init = SoftPromptInit.Text, InitText = "Define the word:")]
            public partial TokenEmbedding wte { get; }
            [RmsNorm("Width")] public partial RmsNorm norm { get; }
            public override Tensor forward(Tensor ids) => norm.forward(wte.forward(ids));
        }
        """;

    /// <summary>A model nested in a generic containing type, with a checkpoint name, [NoLora], [Trainable] and named adapters.</summary>
    public const string Nested = Usings + """

        namespace Demo.Nested;

        public static class SmallDims { public const long In = 32, Out = 48; }

        public static partial class Zoo<TTag>
        {
            [PeftModel(typeof(SmallDims))]
            public partial class Small : nn.Module<Tensor, Tensor>
            {
                [Linear("In", "Out"), CheckpointName("in_proj"), Lora(Rank = 4, Alpha = 8), Lora(Rank = 2, Alpha = 2, Adapter = "sql", UseRsLora = true)]
                internal partial LoraLinear input { get; }
                [Linear("Out", "(In + Out) / 2"), NoLora] public partial LoraLinear output { get; }
                [LayerNorm("(In + Out) / 2", Eps = 1e-6), Trainable] public partial LayerNorm ln { get; }
                public override Tensor forward(Tensor x) => ln.forward(output.forward(input.forward(x)));
            }
        }
        """;

    /// <summary>Full fine-tuning: [Trainable] on the model class makes every base weight train.</summary>
    public const string FullFineTuning = Usings + """

        namespace Demo.Full;

        public static class FullConfig { public const int Vocab = 64, Width = 16, Layers = 2; }

        [PeftModel(typeof(FullConfig))]
        [Trainable]
        public partial class FullModel : nn.Module<Tensor, Tensor>
        {
            [Embedding("Vocab", "Width")] public partial TokenEmbedding wte { get; }
            [Stack("Layers")] public partial ModuleList<FullBlock> h { get; }
            public override Tensor forward(Tensor ids) => wte.forward(ids);
        }

        [PeftModule]
        public partial class FullBlock : nn.Module<Tensor, Tensor>
        {
            [Linear("Width", "Width")] public partial LoraLinear proj { get; }
            [LayerNorm("Width")] public partial LayerNorm ln { get; }
            public override Tensor forward(Tensor x) => ln.forward(proj.forward(x));
        }
        """;

    /// <summary>
    /// One set of Llama-family blocks serving Llama-2-7B and Qwen2-7B: the norm epsilon and whether q/k/v have a bias
    /// come from each configuration (<c>EpsFrom</c>, <c>BiasFrom</c>), rope theta is read typed in forward
    /// (<c>Dims.RopeTheta</c>); Qwen2 has a second adapter and a soft prompt, named as generated constants.
    /// </summary>
    public const string SharedSettings = Usings + """

        namespace Demo.Shared;

        public static class Llama2_7B
        {
            public const int Vocab = 32000, Width = 4096, Layers = 32, Heads = 32, KvHeads = 32, Mlp = 11008;
            public const double RmsNormEps = 1e-5, RopeTheta = 10000.0;
            public const bool QkvBias = false;
        }

        public static class Qwen2_7B
        {
            public const int Vocab = 152064, Width = 3584, Layers = 28, Heads = 28, KvHeads = 4, Mlp = 18944;
            public const double RmsNormEps = 1e-6, RopeTheta = 1000000.0;
            public const bool QkvBias = true;
        }

        [PeftModel(typeof(Llama2_7B))]
        [Lora(Rank = 8, Alpha = 16, Targets = ["q_proj", "v_proj"])]
        public partial class Llama2 : nn.Module<Tensor, Tensor>
        {
            [Embedding("Vocab", "Width")] public partial TokenEmbedding embed_tokens { get; }
            [Stack("Layers")] public partial ModuleList<DecoderLayer> layers { get; }
            [RmsNorm("Width", EpsFrom = "RmsNormEps")] public partial RmsNorm norm { get; }
            [Linear("Width", "Vocab", Bias = false)] public partial LoraLinear lm_head { get; }
            public override Tensor forward(Tensor ids) => lm_head.forward(norm.forward(embed_tokens.forward(ids))).narrow(-1, 0, Dims.Vocab);
        }

        [PeftModel(typeof(Qwen2_7B))]
        [Lora(Rank = 8, Alpha = 16, Targets = ["q_proj", "v_proj"]), Lora(Rank = 4, Alpha = 8, Adapter = "sql", Targets = ["q_proj"])]
        [SoftPrompt(10, Name = "tenant_a")]
        public partial class Qwen2 : nn.Module<Tensor, Tensor>
        {
            [Embedding("Vocab", "Width")] public partial TokenEmbedding embed_tokens { get; }
            [Stack("Layers")] public partial ModuleList<DecoderLayer> layers { get; }
            [RmsNorm("Width", EpsFrom = "RmsNormEps")] public partial RmsNorm norm { get; }
            [Linear("Width", "Vocab", Bias = false)] public partial LoraLinear lm_head { get; }
            public override Tensor forward(Tensor ids)
            {
                using var scope = AdapterContext.Use(adapter: Adapters.Sql, softPrompt: SoftPrompts.TenantA);
                return lm_head.forward(norm.forward(embed_tokens.forward(ids)));
            }
        }

        [PeftModule]
        public partial class DecoderLayer : nn.Module<Tensor, Tensor>
        {
            [RmsNorm("Width", EpsFrom = "RmsNormEps")] public partial RmsNorm input_layernorm { get; }
            [Block] public partial Attention self_attn { get; }
            [RmsNorm("Width", EpsFrom = "RmsNormEps")] public partial RmsNorm post_attention_layernorm { get; }
            [Block] public partial Mlp mlp { get; }
            public override Tensor forward(Tensor x) => mlp.forward(post_attention_layernorm.forward(self_attn.forward(input_layernorm.forward(x))));
        }

        [PeftModule]
        public partial class Attention : nn.Module<Tensor, Tensor>
        {
            [Linear("Width", "Width", BiasFrom = "QkvBias")] public partial LoraLinear q_proj { get; }
            [Linear("Width", "KvHeads * Width / Heads", BiasFrom = "QkvBias")] public partial LoraLinear k_proj { get; }
            [Linear("Width", "KvHeads * Width / Heads", BiasFrom = "QkvBias")] public partial LoraLinear v_proj { get; }
            [Linear("Width", "Width", Bias = false)] public partial LoraLinear o_proj { get; }
            public override Tensor forward(Tensor x)
            {
                long heads = Dims.Heads, kvHeads = Dims.KvHeads, headDim = Dims.Width / heads;
                double theta = Dims.RopeTheta;
                var q = q_proj.forward(x) * (Dims.QkvBias ? 1.0 : theta / theta);
                return o_proj.forward(q + k_proj.forward(x).repeat_interleave(heads / kvHeads, dim: -1) + v_proj.forward(x).repeat_interleave(headDim / headDim * heads / kvHeads, dim: -1));
            }
        }

        [PeftModule]
        public partial class Mlp : nn.Module<Tensor, Tensor>
        {
            [Linear("Width", "Mlp", Bias = false)] public partial LoraLinear gate_proj { get; }
            [Linear("Width", "Mlp", Bias = false)] public partial LoraLinear up_proj { get; }
            [Linear("Mlp", "Width", Bias = false)] public partial LoraLinear down_proj { get; }
            public override Tensor forward(Tensor x) => down_proj.forward(nn.functional.silu(gate_proj.forward(x)) * up_proj.forward(x));
        }
        """;
}
