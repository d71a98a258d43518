using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using PeftGen.Generators.Diagnostics;
using Xunit;

namespace PeftGen.Generators.Tests;

/// <summary>
/// Blocks from referenced assemblies: a model uses [PeftModule] blocks that another assembly built (as the package's
/// architectures are), read from metadata only; what cannot work is reported where the model refers to the block.
/// </summary>
public sealed class ReferencedBlockTests
{
    /// <summary>The IDs these tests provoke (DiagnosticsTests checks every ID has a case somewhere).</summary>
    public static readonly string[] DiagnosticIds = ["PEFT501", "PEFT502"];

    private const string Blocks = """
        namespace Lib
        {
            [PeftModule]
            public partial class Attention : nn.Module<Tensor, Tensor>
            {
                [Linear("Width", "Width", BiasFrom = "QkvBias")] public partial LoraLinear q_proj { get; }
                [Linear("Width", "KvHeads * Width / Heads", BiasFrom = "QkvBias")] public partial LoraLinear k_proj { get; }
                [Linear("Width", "Width", Bias = false)] public partial LoraLinear o_proj { get; }
                public override Tensor forward(Tensor x) => o_proj.forward(q_proj.forward(x));
            }

            [PeftModule]
            public partial class Trunk : nn.Module<Tensor, Tensor>
            {
                [Embedding("Vocab", "Width")] public partial TokenEmbedding embed_tokens { get; }
                [Stack("Layers")] public partial ModuleList<Attention> layers { get; }
                [RmsNorm("Width", EpsFrom = "RmsNormEps")] public partial RmsNorm norm { get; }
                public override Tensor forward(Tensor x) => x;
            }

            /// <summary>An architecture's head class: a model class derives from it.</summary>
            [PeftModule]
            public abstract partial class ForCausalLM : nn.Module<Tensor, Tensor>
            {
                [Block] public partial Trunk model { get; }
                [Linear("Width", "Vocab", Bias = false)] public partial LoraLinear lm_head { get; }
                public override Tensor forward(Tensor x) => lm_head.forward(model.forward(x));
            }
        }
        """;

    private const string Config = """
        public static class Cfg
        {
            public const int Vocab = 64, Width = 16, Layers = 2, Heads = 4, KvHeads = 2;
            public const double RmsNormEps = 1e-6;
            public const bool QkvBias = true;
        }
        """;

    internal static string Library => Models.Usings + "\n" + Blocks;

    internal static string User(string body) => Models.Usings + "\nnamespace App\n{\n" + Config + "\n" + body + "\n}\n";

    internal const string DerivedWithLora = """
        [PeftModel(typeof(Cfg))]
        [Lora(Rank = 4, Alpha = 8, Targets = ["q_proj", "lm_head"])]
        public partial class MyModel : Lib.ForCausalLM { }
        """;

    /// <summary>A model deriving from the head class, and one holding the trunk as a member with a head of its own.</summary>
    public static TheoryData<string> ValidModels => new()
    {
        DerivedWithLora,
        """
        [PeftModel(typeof(Cfg))]
        [Lora(Rank = 4, Alpha = 8, Targets = ["q_proj"])]
        [Quantize4Bit]
        public partial class MyModel : Lib.ForCausalLM { }
        """,
        """
        [PeftModel(typeof(Cfg))]
        [Trainable]
        public partial class MyModel : Lib.ForCausalLM { }
        """,
        """
        [PeftModel(typeof(Cfg))]
        [SoftPrompt(4)]
        public partial class MyModel : Lib.ForCausalLM { }
        """,
        """
        [PeftModel(typeof(Cfg))]
        [Lora(Rank = 4, Alpha = 8, Targets = ["q_proj", "lm_head"])]
        public partial class MyModel : nn.Module<Tensor, Tensor>
        {
            [Block] public partial Lib.Trunk model { get; }
            [Linear("Width", "Vocab", Bias = false)] public partial LoraLinear lm_head { get; }
            public override Tensor forward(Tensor x) => lm_head.forward(model.forward(x));
        }
        """,
    };

    [Theory]
    [MemberData(nameof(ValidModels))]
    public void A_model_over_referenced_blocks_compiles_and_accounts_as_over_the_same_blocks_in_source(string model)
    {
        var referenced = TestHelpers.Run([TestHelpers.Library("Lib", Library)], User(model));
        Assert.Empty(referenced.GeneratorDiagnostics);
        Assert.Empty(referenced.CompilationErrors());
        // Only the model's file: the blocks' code is the referenced assembly's.
        Assert.Equal(["App.MyModel.Peft.g.cs"], referenced.Sources.Select(s => s.HintName).ToArray());

        var inSource = TestHelpers.Run(User(model), Library);
        Assert.Empty(inSource.GeneratorDiagnostics);
        Assert.Empty(inSource.CompilationErrors());
        foreach (var field in new[] { "Summary", "AllParameters", "TrainableParameters", "WeightBytes" })
            Assert.Equal(inSource.Constant("App.MyModel+Accounting", field), referenced.Constant("App.MyModel+Accounting", field));
    }

    [Fact]
    public void A_model_deriving_from_a_head_block_lists_its_layers_first_under_checkpoint_names()
    {
        var result = TestHelpers.Run([TestHelpers.Library("Lib", Library)], User(DerivedWithLora));
        var source = result.Source("App.MyModel.Peft.g.cs");
        Snapshot.Verify("ReferencedHead/App.MyModel.Peft", source);
        Assert.Contains("private MyModel(Dimensions peftDims) : base(peftDims)", source, StringComparison.Ordinal);
        Assert.Contains("base.CollectPeftLayers(prefix, trainAll, layers);", source, StringComparison.Ordinal);
        // Model-class adapters reach the referenced projections by path, as they reach a block of this compilation.
        Assert.Contains("\"model.layers.*.q_proj\"", source, StringComparison.Ordinal);
        Assert.Contains("\"lm_head\"", source, StringComparison.Ordinal);
    }

    // TorchSharp's Module.to indexes a module's public properties by name: a model class may have one public Dims only.
    [Fact]
    public void A_head_class_keeps_its_dims_protected_so_a_model_deriving_from_it_has_one_public_dims()
    {
        var result = TestHelpers.Run(User(DerivedWithLora), Library);
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompilationErrors());
        Assert.Contains("protected Dimensions Dims { get; }", result.Source("Lib.ForCausalLM.Peft.g.cs"), StringComparison.Ordinal);
        Assert.Contains("public Dimensions Dims { get; }", result.Source("Lib.Attention.Peft.g.cs"), StringComparison.Ordinal);
        var publicDims = new List<IPropertySymbol>();
        for (var type = result.Output.GetTypeByMetadataName("App.MyModel"); type is not null; type = type.BaseType)
            publicDims.AddRange(type.GetMembers("Dims").OfType<IPropertySymbol>().Where(p => p.DeclaredAccessibility == Accessibility.Public && !p.IsStatic));
        Assert.Equal("App.MyModel", Assert.Single(publicDims).ContainingType.ToDisplayString());
    }

    [Fact]
    public void A_dimension_the_configuration_lacks_is_reported_where_the_model_names_the_referenced_block()
    {
        var (source, span) = TestHelpers.Unmark(User("""
            [PeftModel(typeof(Cfg))]
            [Lora(Rank = 4, Alpha = 8)]
            public partial class [|MyModel|] : Lib.ForCausalLM { }
            """).Replace("Heads = 4, KvHeads = 2", "Heads = 4", StringComparison.Ordinal));
        var result = TestHelpers.Run([TestHelpers.Library("Lib", Library)], source);

        var diagnostic = Assert.Single(result.GeneratorDiagnostics);
        Assert.Equal("PEFT005", diagnostic.Id);
        Assert.Equal(span, diagnostic.Location.SourceSpan);
        Assert.Contains("KvHeads", diagnostic.GetMessage(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
        Assert.Empty(result.Sources);
    }

    [Fact]
    public void PEFT501_a_block_whose_assembly_did_not_run_the_generator()
    {
        var library = TestHelpers.Library("Plain", Models.Usings + """

            namespace Plain;
            [PeftModule]
            public class Block : nn.Module<Tensor, Tensor>
            {
                public Block() : base("b") { }
                [Linear("Width", "Width")] public LoraLinear proj { get; } = new LoraLinear(16, 16, true);
                public override Tensor forward(Tensor x) => x;
            }
            """, generate: false);
        var (source, span) = TestHelpers.Unmark(User("""
            [PeftModel(typeof(Cfg))]
            [Lora(Rank = 4, Alpha = 8)]
            public partial class MyModel : nn.Module<Tensor, Tensor>
            {
                [[|Block|]] public partial Plain.Block b { get; }
                public override Tensor forward(Tensor x) => x;
            }
            """));
        AssertReported("PEFT501", span, TestHelpers.Run([library], source), "'Plain'");
    }

    [Fact]
    public void PEFT502_an_abstract_referenced_block_held_as_a_member()
    {
        var (source, span) = TestHelpers.Unmark(User("""
            [PeftModel(typeof(Cfg))]
            [Lora(Rank = 4, Alpha = 8)]
            public partial class MyModel : nn.Module<Tensor, Tensor>
            {
                [[|Block|]] public partial Lib.ForCausalLM b { get; }
                public override Tensor forward(Tensor x) => x;
            }
            """));
        AssertReported("PEFT502", span, TestHelpers.Run([TestHelpers.Library("Lib", Library)], source), "abstract");
    }

    private static void AssertReported(string id, Microsoft.CodeAnalysis.Text.TextSpan span, GeneratorResult result, string messagePart)
    {
        var diagnostic = Assert.Single(result.GeneratorDiagnostics, d => d.Id == id);
        Assert.Equal(span, diagnostic.Location.SourceSpan);
        Assert.Equal(LocationKind.SourceFile, diagnostic.Location.Kind);
        Assert.Equal(DiagnosticDescriptors.ById(id).DefaultSeverity, diagnostic.Severity);
        Assert.Contains(messagePart, diagnostic.GetMessage(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
        // Nothing broken is emitted for the model.
        Assert.DoesNotContain(result.Sources, s => s.HintName == "App.MyModel.Peft.g.cs");
    }
}
