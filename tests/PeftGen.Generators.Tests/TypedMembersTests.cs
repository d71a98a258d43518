using System;
using System.Linq;
using Microsoft.CodeAnalysis;
using Xunit;

namespace PeftGen.Generators.Tests;

/// <summary>
/// The typed surface of a model: adapter and soft prompt names as constants, dimensions as properties, and the
/// compile-time training plan. A typo in any of them is a compile error in the user's code, not a run-time failure.
/// </summary>
public sealed class TypedMembersTests
{
    private static string Source(string classAttributes, string extra = "") => Models.Usings + $$"""

        namespace Demo.Typed;

        public static class Cfg { public const int Width = 16, Vocab = 32, Heads = 4; public const double RopeTheta = 1e4; public const bool QkvBias = true; }
        public static class Narrow { public const int Width = 16, Vocab = 32; }

        [PeftModel(typeof(Cfg))]
        {{classAttributes}}
        public partial class M : nn.Module<Tensor, Tensor>
        {
            [Embedding("Vocab", "Width")] public partial TokenEmbedding wte { get; }
            [Block] public partial B b { get; }
            public override Tensor forward(Tensor x) => x;
        }

        [PeftModule]
        public partial class B : nn.Module<Tensor, Tensor>
        {
            [Linear("Width", "Width")] public partial LoraLinear q_proj { get; }
            [Linear("Width", "Width")] public partial LoraLinear v_proj { get; }
            public override Tensor forward(Tensor x) => x;
        }
        {{extra}}
        """;

    [Fact]
    public void Adapter_and_prompt_names_become_pascal_case_constants()
    {
        var result = TestHelpers.Run(Source(
            """[Lora(Rank = 4), Lora(Rank = 2, Adapter = "sql"), Lora(Rank = 2, Adapter = "tenant_a"), Lora(Rank = 2, Adapter = "tenant-a"), Lora(Rank = 2, Adapter = "adapters"), Lora(Rank = 2, Adapter = "7b")]""" + "\n"
            + """[SoftPrompt(4, Name = "support_bot"), SoftPrompt(2)]"""));
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompilationErrors());

        Assert.Equal("default", result.Constant("Demo.Typed.M+Adapters", "Default"));
        Assert.Equal("sql", result.Constant("Demo.Typed.M+Adapters", "Sql"));
        Assert.Equal("tenant_a", result.Constant("Demo.Typed.M+Adapters", "TenantA"));
        // Two names that map to one identifier, and a name that would equal its class's: later ones get a suffix.
        Assert.Equal("tenant-a", result.Constant("Demo.Typed.M+Adapters", "TenantA_2"));
        Assert.Equal("adapters", result.Constant("Demo.Typed.M+Adapters", "Adapters_2"));
        Assert.Equal("7b", result.Constant("Demo.Typed.M+Adapters", "_7b"));
        Assert.Equal("support_bot", result.Constant("Demo.Typed.M+SoftPrompts", "SupportBot"));
        Assert.Equal("default", result.Constant("Demo.Typed.M+SoftPrompts", "Default"));

        var source = result.Source("Demo.Typed.M.Peft.g.cs");
        Assert.Contains("TrainingPlan { get; } = new(Adapters.Default, SoftPrompts.SupportBot, false, Accounting.TrainableParameters);", source, StringComparison.Ordinal);
    }

    [Fact]
    public void A_model_without_adapters_or_prompts_gets_no_name_classes_and_a_plan_of_what_trains()
    {
        var result = TestHelpers.Run(Source("[Trainable]"));
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Null(result.Output.GetTypeByMetadataName("Demo.Typed.M+Adapters"));
        Assert.Null(result.Output.GetTypeByMetadataName("Demo.Typed.M+SoftPrompts"));
        Assert.Contains("TrainingPlan { get; } = new(null, null, true, Accounting.TrainableParameters);", result.Source("Demo.Typed.M.Peft.g.cs"), StringComparison.Ordinal);
    }

    [Fact]
    public void Names_and_dimensions_are_checked_by_the_compiler()
    {
        const string use = """
            public static class Use
            {
                public static void Run(M model)
                {
                    using var scope = AdapterContext.Use(adapter: M.Adapters.Sql);
                    long heads = model.Dims.Heads;
                    double theta = model.Dims.RopeTheta;
                    bool bias = model.Dims.QkvBias;
                    ModelDims byName = model.Dims;
                    PeftGen.Training.TrainingPlan plan = M.TrainingPlan;
                }
            }
            """;
        var valid = TestHelpers.Run(Source("""[Lora(Rank = 4), Lora(Rank = 2, Adapter = "sql")]""", use));
        Assert.Empty(valid.CompilationErrors());

        var typo = TestHelpers.Run(Source("""[Lora(Rank = 4), Lora(Rank = 2, Adapter = "sql")]""", use.Replace("M.Adapters.Sql", "M.Adapters.Sqll", StringComparison.Ordinal)));
        Assert.Contains(typo.CompilationErrors(), d => d.Id == "CS0117" && d.GetMessage(System.Globalization.CultureInfo.InvariantCulture).Contains("Sqll", StringComparison.Ordinal));
    }

    [Fact]
    public void A_block_reads_typed_only_what_every_model_reaching_it_declares()
    {
        const string narrowModel = """
            [PeftModel(typeof(Narrow)), Lora(Rank = 4)]
            public partial class N : nn.Module<Tensor, Tensor>
            {
                [Block] public partial B b { get; }
                public override Tensor forward(Tensor x) => x;
            }
            """;
        var shared = TestHelpers.Run(Source("[Lora(Rank = 4)]", narrowModel));
        Assert.Empty(shared.GeneratorDiagnostics);
        var block = shared.Output.GetTypeByMetadataName("Demo.Typed.B+Dimensions")!;
        Assert.Equal(new[] { "Width", "Vocab" }, block.GetMembers().OfType<IPropertySymbol>().Where(p => !p.IsIndexer).Select(p => p.Name));
        // Each model's own Dimensions still has all of its configuration.
        Assert.NotNull(shared.Output.GetTypeByMetadataName("Demo.Typed.M+Dimensions")!.GetMembers("Heads").SingleOrDefault());

        // A block that reads Heads, which N's configuration lacks, does not compile: at run time it would throw for N.
        var reading = TestHelpers.Run(Source("[Lora(Rank = 4)]", narrowModel).Replace(
            "[Linear(\"Width\", \"Width\")] public partial LoraLinear v_proj { get; }",
            "[Linear(\"Width\", \"Width\")] public partial LoraLinear v_proj { get; }\n    public long HeadCount => Dims.Heads;", StringComparison.Ordinal));
        Assert.Contains(reading.CompilationErrors(), d => d.Id == "CS1061" && d.Location.SourceTree!.FilePath == TestHelpers.InputPath);
    }

    [Fact]
    public void A_constant_named_like_a_member_of_ModelDims_stays_readable_by_name()
    {
        var result = TestHelpers.Run(Source("[Lora(Rank = 4)]").Replace("public const bool QkvBias = true;", "public const int Names = 3, @class = 2;", StringComparison.Ordinal));
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompilationErrors());
        var dims = result.Output.GetTypeByMetadataName("Demo.Typed.M+Dimensions")!;
        Assert.Single(dims.GetMembers("class"));
        Assert.Contains("new(\"Names\", 3L),", result.Source("Demo.Typed.M.Peft.g.cs"), StringComparison.Ordinal);
        Assert.DoesNotContain("public long Names", result.Source("Demo.Typed.M.Peft.g.cs"), StringComparison.Ordinal);
    }
}
