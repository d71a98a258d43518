using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Xunit;

namespace PeftGen.Generators.Tests;

/// <summary>
/// Every argument of every PeftGen attribute, one at a time, set to hostile values (null, NaN, ±∞, empty, huge,
/// undefined enum values, repeats): the generator never fails (CS8785), never emits code that does not compile, and
/// a model that does not compile cleanly always carries a PEFT diagnostic saying why.
/// </summary>
public sealed class ArgumentFuzzTests
{
    /// <summary>A valid model that uses every attribute and argument; each <c>@Slot@</c> is one argument.</summary>
    private const string Template = Models.Usings + """

        namespace Fuzz;

        public static class Cfg { public const int Vocab = 50257, Context = 64, Width = 16, Layers = 2, Heads = 2; }

        [PeftModel(@Config@, ContextLength = @ContextLength@, Tokenizer = @Tokenizer@, BaseDType = @BaseDType@, MemoryBudget = @MemoryBudget@, Batch = @Batch@, Sequence = @Sequence@)]
        [Lora(Rank = @ClassRank@, Alpha = @ClassAlpha@, Dropout = @ClassDropout@, UseRsLora = @ClassRsLora@, Adapter = @ClassAdapter@, Targets = @Targets@)]
        [SoftPrompt(@VirtualTokens@, Init = @Init@, InitText = @InitText@, Name = @PromptName@)]
        @ExtraModelAttribute@
        public partial class M : nn.Module<Tensor, Tensor>
        {
            [Embedding(@EmbeddingCount@, @EmbeddingDim@)] public partial TokenEmbedding wte { get; }
            [Stack(@StackCount@)] public partial ModuleList<B> h { get; }
            [LayerNorm(@LayerNormDim@, Eps = @LayerNormEps@)] public partial LayerNorm ln { get; }
            [Linear(@LinearIn@, @LinearOut@, Bias = @Bias@, CheckpointLayout = @Layout@), Trainable] public partial LoraLinear head { get; }
            public override Tensor forward(Tensor x) => x;
        }

        [PeftModule]
        [Quantize4Bit(QuantType = @QuantType@, BlockSize = @BlockSize@, DoubleQuant = @DoubleQuant@, ComputeDType = @ComputeDType@)]
        public partial class B : nn.Module<Tensor, Tensor>
        {
            [Linear("Width", "Width"), Lora(Rank = @MemberRank@, Alpha = @MemberAlpha@, Dropout = @MemberDropout@, Adapter = @MemberAdapter@)]
            @ExtraMemberAttribute@
            public partial LoraLinear q_proj { get; }
            [Linear("Width", "Width"), CheckpointName(@CheckpointName@)] public partial LoraLinear value { get; }
            [Linear("Width", "Width"), NoLora] public partial LoraLinear o_proj { get; }
            [RmsNorm(@RmsNormDim@, Eps = @RmsNormEps@)] public partial RmsNorm norm { get; }
            public override Tensor forward(Tensor x) => x;
        }
        """;

    private static readonly Dictionary<string, string> Valid = new()
    {
        ["Config"] = "typeof(Cfg)", ["ContextLength"] = "\"Context\"", ["Tokenizer"] = "PeftTokenizer.Gpt2",
        ["BaseDType"] = "BaseDType.BFloat16", ["MemoryBudget"] = "\"1 GiB\"", ["Batch"] = "2", ["Sequence"] = "8",
        ["ClassRank"] = "4", ["ClassAlpha"] = "8", ["ClassDropout"] = "0.05", ["ClassRsLora"] = "false", ["ClassAdapter"] = "\"default\"",
        ["Targets"] = "[\"q_proj\", \"v_proj\"]",
        ["VirtualTokens"] = "4", ["Init"] = "SoftPromptInit.Text", ["InitText"] = "\"Define:\"", ["PromptName"] = "\"tenant\"",
        ["ExtraModelAttribute"] = "", ["ExtraMemberAttribute"] = "",
        ["EmbeddingCount"] = "\"Vocab\"", ["EmbeddingDim"] = "\"Width\"", ["StackCount"] = "\"Layers\"",
        ["LayerNormDim"] = "\"Width\"", ["LayerNormEps"] = "1e-5",
        ["LinearIn"] = "\"Width\"", ["LinearOut"] = "\"Vocab\"", ["Bias"] = "false", ["Layout"] = "WeightLayout.OutIn",
        ["QuantType"] = "QuantType.Nf4", ["BlockSize"] = "64", ["DoubleQuant"] = "true", ["ComputeDType"] = "ComputeDType.Auto",
        ["MemberRank"] = "2", ["MemberAlpha"] = "4", ["MemberDropout"] = "0", ["MemberAdapter"] = "\"sql\"",
        ["CheckpointName"] = "\"v_proj\"", ["RmsNormDim"] = "\"Width\"", ["RmsNormEps"] = "1e-6",
    };

    private static readonly string Huge = "\"" + new string('w', 5000) + "\"";

    private static readonly string[] Ints = { "0", "-1", "1", "48", "4096", "int.MinValue", "int.MaxValue" };
    private static readonly string[] Doubles = { "double.NaN", "double.PositiveInfinity", "double.NegativeInfinity", "0", "-0.0", "-1", "1", "double.MaxValue", "double.Epsilon" };
    private static readonly string[] Bools = { "true", "false" };
    private static readonly string[] Names = { "null", "\"\"", "\" \"", "\"a.b\"", "\"default\"", "\"sql\"", "\"tenant\"", "\"line\\nbreak \\\" quote\"", "\"\\uD800\"", Huge };
    private static readonly string[] Dimensions =
    {
        "null", "\"\"", "\"0\"", "\"-1\"", "\"Width - 16\"", "\"Width / 0\"", "\"Width / 3\"", "\"Widht\"", "\"(Width\"", "\"3 * Width\"",
        "\"9223372036854775807\"", "\"99999999999999999999\"", "\"4000000000\"", "\"Width * Width * Width * Width * Width * Width * Width * Width * Width * Width * Width * Width * Width * Width * Width * Width\"",
    };
    private static readonly string[] Targets =
    {
        "null", "[]", "[null]", "[\"\"]", "[\"q_proj\", \"q_proj\"]", "[\"q_prj\", \"v_proj\"]", "[\"q_proj\", null]", "[\"value\"]",
        "[\"o_proj\"]", "[\"ln\"]", "[\"h\"]", "new string[0]", "new[] { " + Huge + " }",
    };

    private static string[] Enum(string type, params string[] members)
        => members.Select(m => type + "." + m).Concat(new[] { $"({type})(-1)", $"({type})999", $"({type})int.MaxValue" }).ToArray();

    private static readonly Dictionary<string, string[]> Hostile = new()
    {
        ["Config"] = new[] { "null", "typeof(int)", "typeof(string)", "typeof(M)", "typeof(System.Collections.Generic.List<>)" },
        ["ContextLength"] = new[] { "\"\"", "\"4\"" }.Concat(Dimensions).ToArray(),
        ["Tokenizer"] = Enum("PeftTokenizer", "None", "Gpt2"),
        ["BaseDType"] = Enum("BaseDType", "Float32", "BFloat16", "Float16"),
        ["MemoryBudget"] = Names.Concat(new[] { "\"24GiB\"", "\"1 B\"", "\"0.5 B\"", "\"9999999999 TiB\"", "\"8 EiB\"" }).ToArray(),
        ["Batch"] = Ints, ["Sequence"] = Ints,
        ["ClassRank"] = Ints, ["ClassAlpha"] = Doubles, ["ClassDropout"] = Doubles, ["ClassRsLora"] = Bools, ["ClassAdapter"] = Names,
        ["Targets"] = Targets,
        ["VirtualTokens"] = Ints, ["Init"] = Enum("SoftPromptInit", "Random", "SampleVocab", "Text"), ["InitText"] = Names, ["PromptName"] = Names,
        ["ExtraModelAttribute"] = new[]
        {
            "[Lora(Rank = 4, Alpha = 8, Adapter = \"default\")]", "[SoftPrompt(4, Name = \"tenant\")]", "[Lora(Rank = 2, Adapter = \"other\", Targets = [\"q_prj\"])]",
            "[Quantize4Bit]", "[Trainable]", "[PeftModule]", "[Lora(Rank = 2, Adapter = \"second\", Targets = [\"o_proj\"])]",
        },
        ["ExtraMemberAttribute"] = new[] { "[Lora(Rank = 2, Adapter = \"sql\")]", "[Lora(Targets = [\"q_proj\"], Adapter = \"t\")]", "[NoLora]", "[Trainable]", "[SoftPrompt(2)]", "[Quantize4Bit(BlockSize = 32)]", "[NoQuantize]" },
        ["EmbeddingCount"] = Dimensions, ["EmbeddingDim"] = Dimensions, ["StackCount"] = Dimensions,
        ["LayerNormDim"] = Dimensions, ["LayerNormEps"] = Doubles,
        ["LinearIn"] = Dimensions, ["LinearOut"] = Dimensions, ["Bias"] = Bools, ["Layout"] = Enum("WeightLayout", "OutIn", "InOut"),
        ["QuantType"] = Enum("QuantType", "Nf4", "Fp4"), ["BlockSize"] = Ints, ["DoubleQuant"] = Bools,
        ["ComputeDType"] = Enum("ComputeDType", "Auto", "Float32", "BFloat16", "Float16"),
        ["MemberRank"] = Ints, ["MemberAlpha"] = Doubles, ["MemberDropout"] = Doubles, ["MemberAdapter"] = Names,
        ["CheckpointName"] = Names, ["RmsNormDim"] = Dimensions, ["RmsNormEps"] = Doubles,
    };

    /// <summary>What the generator reports when its own output is missing: a partial property or constructor without the generated half.</summary>
    private static readonly HashSet<string> MissingGeneratedCode = new(StringComparer.Ordinal) { "CS9248", "CS1729" };

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var (slot, values) in Hostile)
        {
            foreach (var value in values.Distinct(StringComparer.Ordinal)) data.Add(slot, value);
        }
        return data;
    }

    [Fact]
    public void The_template_is_a_valid_model_and_every_argument_is_fuzzed()
    {
        var result = TestHelpers.Run(Source(null, null));
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompilationErrors());
        Assert.Equal(Valid.Keys.OrderBy(k => k, StringComparer.Ordinal), Hostile.Keys.OrderBy(k => k, StringComparer.Ordinal));
        Assert.All(Valid.Keys, slot => Assert.Contains("@" + slot + "@", Template, StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_hostile_argument_compiles_or_is_reported(string slot, string value)
    {
        var source = Source(slot, value);
        var input = TestHelpers.CreateCompilation(source);
        // The case itself must be valid C#: only the generated halves may be missing before the generator runs.
        var inputErrors = input.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error && !MissingGeneratedCode.Contains(d.Id)).ToList();
        Assert.True(inputErrors.Count == 0, "The fuzz case is not valid C#: " + string.Join("; ", inputErrors));

        var result = TestHelpers.Run(source);
        Assert.Null(result.RunResult.Exception);
        var foreign = result.GeneratorDiagnostics.Where(d => !d.Id.StartsWith("PEFT", StringComparison.Ordinal)).ToList();
        Assert.True(foreign.Count == 0, "The generator failed: " + string.Join("; ", foreign));
        Assert.DoesNotContain(result.GeneratorDiagnostics, d => d.Id == "PEFT000");

        var generatedProblems = result.Output.GetDiagnostics()
            .Where(d => d.Severity >= DiagnosticSeverity.Warning && d.Location.SourceTree is { } tree && tree.FilePath.EndsWith(".g.cs", StringComparison.Ordinal))
            .ToList();
        Assert.True(generatedProblems.Count == 0, "Generated code does not compile: " + string.Join("; ", generatedProblems));

        var peftErrors = result.GeneratorDiagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        var outputErrors = result.Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.True(peftErrors.Count > 0 || outputErrors.Count == 0,
            "The model does not compile and no PEFT error says why: " + string.Join("; ", outputErrors.Take(5)));
    }

    [Theory]
    [InlineData("[Lora(Rank = 4), Lora(Rank = 2)]", "PEFT106")]
    [InlineData("[SoftPrompt(4), SoftPrompt(2)]", "PEFT306")]
    [InlineData("[Lora(Rank = 4, Adapter = \"a\"), Lora(Rank = 2, Adapter = \"a\", Targets = [\"q_proj\"])]", "PEFT106")]
    public void Repeated_attributes_are_reported(string attributes, string id)
    {
        var source = Source("ExtraModelAttribute", attributes)
            .Replace("[Lora(Rank = 4, Alpha = 8, Dropout = 0.05, UseRsLora = false, Adapter = \"default\", Targets = [\"q_proj\", \"v_proj\"])]", "", StringComparison.Ordinal)
            .Replace("[SoftPrompt(4, Init = SoftPromptInit.Text, InitText = \"Define:\", Name = \"tenant\")]", "", StringComparison.Ordinal);
        var result = TestHelpers.Run(source);
        Assert.Contains(result.GeneratorDiagnostics, d => d.Id == id);
        Assert.DoesNotContain(result.Output.GetDiagnostics(), d => d.Severity == DiagnosticSeverity.Error && d.Location.SourceTree?.FilePath.EndsWith(".g.cs", StringComparison.Ordinal) == true);
    }

    private static string Source(string? slot, string? value)
    {
        var source = Template;
        foreach (var (name, valid) in Valid) source = source.Replace("@" + name + "@", name == slot ? value : valid, StringComparison.Ordinal);
        return source;
    }
}
