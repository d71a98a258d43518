using System;
using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using PeftGen.Generators.Diagnostics;
using Xunit;

namespace PeftGen.Generators.Tests;

/// <summary>One case per diagnostic ID: it fires at the marked span, and nothing broken is emitted.</summary>
public sealed class DiagnosticsTests
{
    private const string Config = "public static class Cfg { public const int Width = 16, Vocab = 32, Context = 8, Layers = 2; }";

    private static string Model(string classAttributes, string members, string extra = "", string header = "public partial class [|M|]")
        => Models.Usings + $$"""

            namespace Demo;
            {{Config}}
            [PeftModel(typeof(Cfg), ContextLength = "Context")]
            {{classAttributes}}
            {{header}} : nn.Module<Tensor, Tensor>
            {
                {{members}}
                public override Tensor forward(Tensor x) => x;
            }
            {{extra}}
            """;

    private const string Projection = """[Linear("Width", "Width"), Lora(Rank = 4, Alpha = 8)] public partial LoraLinear proj { get; }""";
    private const string TokenEmbedding = """[Embedding("Vocab", "Width")] public partial TokenEmbedding wte { get; }""";
    private const string Plain = """[Linear("Width", "Width")] public partial LoraLinear proj { get; }""";
    private const string TwoPlain = Plain + "\n" + """[Linear("Width", "Width"), CheckpointName("v_proj")] public partial LoraLinear value { get; }""";
    private const string Head = """[Linear("Width", "Vocab", Bias = false)] public partial LoraLinear lm_head { get; }""";
    private const string FloatGate = """[Linear("Width", "Width"), NoQuantize] public partial LoraLinear gate { get; }""";
    private const string OwnQuantizedHead = """[Linear("Width", "Vocab", Bias = false), Quantize4Bit(BlockSize = 32)] public partial LoraLinear lm_head { get; }""";
    private const string PlainBlock = """[PeftModule] public partial class B : nn.Module<Tensor, Tensor> { [Linear("Width", "Width")] public partial LoraLinear q_proj { get; } [Linear("Width", "Width")] public partial LoraLinear k_proj { get; } public override Tensor forward(Tensor x) => x; }""";

    public static TheoryData<string, string> Cases => new()
    {
        { "PEFT001", Model("", Projection, header: "public class [|M|]") },
        { "PEFT001", Models.Usings + "\nnamespace Demo;\n" + Config + "\npublic static class [|Outer|]\n{\n[PeftModel(typeof(Cfg))]\npublic partial class M : nn.Module<Tensor, Tensor>\n{\n" + Projection + "\npublic override Tensor forward(Tensor x) => x;\n}\n}" },
        { "PEFT002", Model("", Projection, header: "public partial class [|M|]<T>") },
        { "PEFT003", Model("", """[Linear("Width", "Width")] public LoraLinear [|proj|] { get; } = null!;""", header: "public partial class M") },
        { "PEFT004", Model("", """[Linear("Width", "Width")] public partial LayerNorm [|proj|] { get; }""", header: "public partial class M") },
        { "PEFT005", Model("", """[Linear("Width", [|"Widht"|]), Lora] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT005", Model("", """[Linear("Width", [|"Width - 16"|]), Lora] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT005", Model("", """[Linear("Width", [|"2 * (Width"|]), Lora] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT005", Model("", "[Block] public partial B b { get; }", """[PeftModule] public partial class B : nn.Module<Tensor, Tensor> { [Linear([|"Depth"|], "Width"), Lora] public partial LoraLinear p { get; } public override Tensor forward(Tensor x) => x; }""", header: "public partial class M") },
        { "PEFT006", (Model("", Projection, "public static class Empty { public const string Name = \"x\"; }", header: "public partial class M")).Replace("[PeftModel(typeof(Cfg)", "[PeftModel([|typeof(Empty)|]") },
        { "PEFT007", Model("", "[[|Block|]] public partial Plain b { get; }", "public sealed class Plain : nn.Module<Tensor, Tensor> { public Plain() : base(\"p\") { } public override Tensor forward(Tensor x) => x; }", header: "public partial class M") },
        { "PEFT008", Model("", """[Linear("Width", "Width"), LayerNorm("Width")] public partial LoraLinear [|proj|] { get; }""", header: "public partial class M") },
        { "PEFT009", Model("", Projection + "\n[Block] public partial B b { get; }", "[PeftModule] public partial class B : nn.Module<Tensor, Tensor> { [Block] public partial B [|inner|] { get; } public override Tensor forward(Tensor x) => x; }", header: "public partial class M") },
        { "PEFT010", Model("", """[Linear("Width", "Width")] public partial LoraLinear proj { get; }""") },
        { "PEFT011", Model("[PeftModule]", Projection) },
        { "PEFT012", Model("", """[Linear("Width", "Width"), Lora, CheckpointName([|"attn.q"|])] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT012", Model("", """[Linear("Width", "Width"), Lora, CheckpointName([|"*"|])] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT012", Model("", Projection + "\n" + """[Linear("Width", "Width"), CheckpointName("proj")] public partial LoraLinear [|other|] { get; }""", header: "public partial class M") },
        { "PEFT013", Model("", Projection + "\npublic [|M|](int seed) : base(\"M\") { }", header: "public partial class M") },
        { "PEFT014", Model("[Lora([|Targets = null|])]", Plain, header: "public partial class M") },
        { "PEFT014", Model("[Lora(Targets = new[] { \"proj\", [|null|] })]", Plain, header: "public partial class M") },
        { "PEFT014", Model("", """[Linear("Width", "Width"), Lora(Rank = 4, [|Adapter = null|])] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT014", Model("", Projection, header: "public partial class M").Replace("ContextLength = \"Context\"", "[|ContextLength = null|]") },
        { "PEFT014", Model("[SoftPrompt(4, [|Name = null|])]", TokenEmbedding + "\n" + Projection, header: "public partial class M") },
        { "PEFT014", Model("[SoftPrompt(4, [|InitText = null|])]", TokenEmbedding + "\n" + Projection, header: "public partial class M") },
        { "PEFT014", Model("", """[Linear("Width", "Width"), Lora, CheckpointName([|null|])] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT014", Model("", """[Linear([|null|], "Width"), Lora] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT015", Model("", """[Linear("Width", "Width"), Lora(Rank = 4), Quantize4Bit([|QuantType = (QuantType)7|])] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT015", Model("[SoftPrompt(4, [|Init = (SoftPromptInit)(-1)|])]", TokenEmbedding + "\n" + Projection, header: "public partial class M") },
        { "PEFT016", Model("", Projection + "\n" + """[LayerNorm("Width", [|Eps = 0|])] public partial LayerNorm ln { get; }""", header: "public partial class M") },
        { "PEFT016", Model("", Projection + "\n" + """[RmsNorm("Width", [|Eps = double.NaN|])] public partial RmsNorm norm { get; }""", header: "public partial class M") },
        { "PEFT017", Model("", """[Linear("4000000000", "4000000000"), Lora(Rank = 4)] public partial LoraLinear proj { get; }""") },
        { "PEFT018", Model("", Projection).Replace("[|M|] : nn.Module<Tensor, Tensor>", "[|M|]", StringComparison.Ordinal).Replace("public override Tensor forward", "public Tensor forward", StringComparison.Ordinal) },
        { "PEFT018", Model("", Projection, "public abstract class NamelessBase : nn.Module<Tensor, Tensor> { protected NamelessBase() : base(\"b\") { } }").Replace("[|M|] : nn.Module<Tensor, Tensor>", "[|M|] : NamelessBase", StringComparison.Ordinal) },
        { "PEFT016", Model("", Projection + "\n" + """[RmsNorm("Width", [|EpsFrom = "ZeroEps"|])] public partial RmsNorm norm { get; }""", header: "public partial class M").Replace("Layers = 2; }", "Layers = 2; public const double ZeroEps = 0; }", StringComparison.Ordinal) },
        { "PEFT019", Model("", Projection + "\n" + """[RmsNorm("Width", [|EpsFrom = "NormEps"|])] public partial RmsNorm norm { get; }""", header: "public partial class M") },
        { "PEFT019", Model("", Projection + "\n[Block] public partial B b { get; }", """[PeftModule] public partial class B : nn.Module<Tensor, Tensor> { [Linear("Width", "Width", [|BiasFrom = "QkvBias"|])] public partial LoraLinear p { get; } public override Tensor forward(Tensor x) => x; }""", header: "public partial class M") },
        { "PEFT020", Model("", """[Linear("Width", "Width", [|BiasFrom = "Width"|]), Lora(Rank = 4)] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT020", Model("", Projection + "\n" + """[LayerNorm("Width", [|EpsFrom = "Flag"|])] public partial LayerNorm ln { get; }""", header: "public partial class M").Replace("Layers = 2; }", "Layers = 2; public const bool Flag = true; }", StringComparison.Ordinal) },
        { "PEFT021", Model("", """[Linear("Width", "Width", Bias = false, [|BiasFrom = "Flag"|]), Lora(Rank = 4)] public partial LoraLinear proj { get; }""", header: "public partial class M").Replace("Layers = 2; }", "Layers = 2; public const bool Flag = true; }", StringComparison.Ordinal) },
        { "PEFT021", Model("", Projection + "\n" + """[RmsNorm("Width", Eps = 1e-6, [|EpsFrom = "NormEps"|])] public partial RmsNorm norm { get; }""", header: "public partial class M").Replace("Layers = 2; }", "Layers = 2; public const double NormEps = 1e-6; }", StringComparison.Ordinal) },
        { "PEFT022", Model("", Projection + "\npublic static class [|Adapters|] { public const string Sql = \"sql\"; }", header: "public partial class M") },
        { "PEFT022", Model("", "[Block] public partial B b { get; }", """[PeftModule] public partial class B : nn.Module<Tensor, Tensor> { [Linear("Width", "Width"), Lora(Rank = 4)] public partial LoraLinear p { get; } public int [|Dims|] => 1; public override Tensor forward(Tensor x) => x; }""", header: "public partial class M") },
        { "PEFT023", Model("", "", """[PeftModule] public partial class B : nn.Module<Tensor, Tensor> { [Linear("Width", "Width"), Lora(Rank = 4)] public partial LoraLinear p { get; } public override Tensor forward(Tensor x) => x; }""").Replace("[|M|] : nn.Module<Tensor, Tensor>", "[|M|] : B", StringComparison.Ordinal) },
        { "PEFT101", Model("", """[Linear("Width", "Width"), Lora([|Rank = 0|])] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT102", Model("", """[Linear("Width", "Width"), Lora([|Rank = 17|])] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT102", Model("[Lora(Rank = 4), Lora([|Rank = 20|], Adapter = \"big\")]", "[Stack(\"Layers\")] public partial ModuleList<B> h { get; }", """[PeftModule] public partial class B : nn.Module<Tensor, Tensor> { [Linear("Width", "Width")] public partial LoraLinear p { get; } public override Tensor forward(Tensor x) => x; }""", header: "public partial class M") },
        { "PEFT103", Model("", """[Linear("Width", "Width"), Lora(Rank = 4, [|Alpha = -1|])] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT103", Model("", """[Linear("Width", "Width"), Lora(Rank = 4, [|Alpha = double.PositiveInfinity|])] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT103", Model("", """[Linear("Width", "Width"), Lora(Rank = 4, [|Alpha = double.NaN|])] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT104", Model("", """[Linear("Width", "Width"), Lora(Rank = 4, [|Dropout = 1.0|])] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT105", Model("", Projection + "\n[LayerNorm(\"Width\"), [|Lora|]] public partial LayerNorm ln { get; }", header: "public partial class M") },
        { "PEFT105", Model("", Projection + "\n[[|NoLora|]] public int Count { get; set; }", header: "public partial class M") },
        { "PEFT106", Model("", """[Linear("Width", "Width"), Lora(Rank = 4), Lora(Rank = 2, [|Adapter = "default"|])] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT107", Model("", """[Linear("Width", "Width"), Lora(Rank = 4, [|Adapter = "a.b"|])] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT108", Model("[Lora(Rank = 4, Targets = [[|\"prj\"|], \"proj\"])]", Plain, header: "public partial class M") },
        { "PEFT108", Model("[Lora(Rank = 4, Targets = new[] { \"proj\", [|\"q_prj\"|] })]", Plain + "\n[Block] public partial B b { get; }", PlainBlock, header: "public partial class M") },
        { "PEFT108", Model("", Plain + "\n[Block] public partial B b { get; }", PlainBlock.Replace("[PeftModule]", "[PeftModule, Lora(Rank = 4, Targets = [\"q_proj\", [|\"proj\"|]])]"), header: "public partial class M") },
        { "PEFT108", Model("[Lora(Rank = 4), Lora(Rank = 2, Adapter = \"sql\", Targets = [[|\"v_prj\"|]])]", TwoPlain, header: "public partial class M") },
        { "PEFT109", Model("[[|Lora(Rank = 4)|]]", """[Linear("Width", "Width"), Lora(Rank = 2)] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT109", Model("[Lora(Rank = 4), [|Lora(Rank = 2, Adapter = \"sql\", Targets = [\"v_proj\"])|]]", Plain + "\n" + """[Linear("Width", "Width"), CheckpointName("v_proj"), NoLora] public partial LoraLinear value { get; }""", header: "public partial class M") },
        { "PEFT110", Model("", """[Linear("Width", "Width"), Lora(Rank = 4, [|Targets = ["proj"]|])] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT111", Model("[Lora(Rank = 4, Targets = [\"proj\", [|\"proj\"|]])]", Plain, header: "public partial class M") },
        { "PEFT201", Model("", """[Linear("Width", "Width"), Lora(Rank = 4), Quantize4Bit([|BlockSize = 48|])] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT202", Model("", Projection + "\n[LayerNorm(\"Width\"), [|Quantize4Bit|]] public partial LayerNorm ln { get; }", header: "public partial class M") },
        { "PEFT203", Model("", """[Linear("Width", "Width"), Quantize4Bit, [|Trainable|]] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT203", Model("[Trainable]", """[Linear("Width", "Width"), Quantize4Bit] public partial LoraLinear proj { get; }""") },
        { "PEFT204", Model("[[|Quantize4Bit|]]", Plain, header: "public partial class M") },
        { "PEFT204", Model("", """[Linear("Width", "Width"), [|Quantize4Bit(BlockSize = 32)|]] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT205", Model("", Projection + "\n[LayerNorm(\"Width\"), [|NoQuantize|]] public partial LayerNorm ln { get; }", header: "public partial class M") },
        { "PEFT205", Model("", Projection + "\n[[|NoQuantize|]] public LoraLinear shortcut => proj;", header: "public partial class M") },
        { "PEFT206", Model("", """[Linear("Width", "Width"), Lora(Rank = 4), Quantize4Bit, [|NoQuantize|]] public partial LoraLinear proj { get; }""", header: "public partial class M") },
        { "PEFT207", Model("[[|Quantize4Bit|], Lora(Rank = 4)]", Head, header: "public partial class M") },
        { "PEFT207", Model("[[|Quantize4Bit|]]", Projection.Replace("Lora(", "NoQuantize, Lora(", StringComparison.Ordinal), header: "public partial class M") },
        { "PEFT207", Model("", "[Block] public partial B b { get; }", "[PeftModule, [|Quantize4Bit|]] public partial class B : nn.Module<Tensor, Tensor> { [Linear(\"Width\", \"Width\"), Lora(Rank = 4), Trainable] public partial LoraLinear p { get; } public override Tensor forward(Tensor x) => x; }", header: "public partial class M") },
        { "PEFT301", Model("[SoftPrompt([|0|])]", TokenEmbedding + "\n" + Projection, header: "public partial class M") },
        { "PEFT302", Model("[SoftPrompt([|8|])]", TokenEmbedding, header: "public partial class M") },
        { "PEFT303", Model("[[|SoftPrompt(4)|]]", Projection, header: "public partial class M") },
        { "PEFT304", Model("[SoftPrompt(4, [|Init = SoftPromptInit.Text|])]", TokenEmbedding, header: "public partial class M") },
        { "PEFT305", Model("[SoftPrompt(4, [|Init = SoftPromptInit.Text|], InitText = \"hello\")]", TokenEmbedding, header: "public partial class M") },
        { "PEFT307", Model("[SoftPrompt(4, [|Init = SoftPromptInit.Text|], InitText = \"hello\")]", TokenEmbedding, header: "public partial class M").Replace("ContextLength = \"Context\")", "ContextLength = \"Context\", Tokenizer = PeftTokenizer.Gpt2)") },
        { "PEFT306", Model("[SoftPrompt(4), [|SoftPrompt(2)|]]", TokenEmbedding, header: "public partial class M") },
        { "PEFT308", Model("[SoftPrompt(4, [|Name = \"a.b\"|])]", TokenEmbedding, header: "public partial class M") },
        { "PEFT401", Model("[Trainable]", Plain, header: "public partial class M").Replace("ContextLength = \"Context\")", "ContextLength = \"Context\", [|BaseDType = BaseDType.BFloat16|])", StringComparison.Ordinal) },
        { "PEFT402", Model("[Quantize4Bit, Lora(Rank = 4)]", """[Linear("Width", "Width", Bias = false)] public partial LoraLinear proj { get; }""", header: "public partial class M").Replace("ContextLength = \"Context\")", "ContextLength = \"Context\", [|BaseDType = BaseDType.Float16|])", StringComparison.Ordinal) },
        { "PEFT403", Model("", TokenEmbedding + "\n" + Projection, header: "public partial class M").Replace("ContextLength = \"Context\")", "ContextLength = \"Context\", [|MemoryBudget = \"24GiB\"|], Sequence = 8)", StringComparison.Ordinal).Replace("Layers = 2; }", "Layers = 2, Heads = 2; }", StringComparison.Ordinal) },
        { "PEFT404", Model("", TokenEmbedding + "\n" + Projection, header: "public partial class M").Replace("ContextLength = \"Context\")", "ContextLength = \"Context\", [|MemoryBudget = \"1 KiB\"|], Sequence = 8)", StringComparison.Ordinal).Replace("Layers = 2; }", "Layers = 2, Heads = 2; }", StringComparison.Ordinal) },
        { "PEFT405", Model("", TokenEmbedding + "\n" + Projection, header: "public partial class M").Replace("ContextLength = \"Context\")", "ContextLength = \"Context\", [|Sequence = 0|])", StringComparison.Ordinal).Replace("Layers = 2; }", "Layers = 2, Heads = 2; }", StringComparison.Ordinal) },
        { "PEFT405", Model("", TokenEmbedding + "\n" + Projection, header: "public partial class M").Replace("ContextLength = \"Context\")", "ContextLength = \"Context\", [|Batch = -1|], Sequence = 8)", StringComparison.Ordinal).Replace("Layers = 2; }", "Layers = 2, Heads = 2; }", StringComparison.Ordinal) },
        { "PEFT405", Model("", TokenEmbedding + "\n" + Projection, header: "public partial class M").Replace("ContextLength = \"Context\")", "ContextLength = \"Context\", [|Sequence = 9|])", StringComparison.Ordinal).Replace("Layers = 2; }", "Layers = 2, Heads = 2; }", StringComparison.Ordinal) },
        { "PEFT405", Model("", TokenEmbedding + "\n" + Projection, header: "public partial class M").Replace("ContextLength = \"Context\")", "Batch = int.MaxValue, [|Sequence = int.MaxValue|])", StringComparison.Ordinal).Replace("Layers = 2; }", "Layers = 2, Heads = 2; }", StringComparison.Ordinal) },
        { "PEFT406", Model("", TokenEmbedding + "\n" + Projection, header: "public partial class M").Replace("ContextLength = \"Context\")", "ContextLength = \"Context\", [|MemoryBudget = \"1 GiB\"|])", StringComparison.Ordinal).Replace("Layers = 2; }", "Layers = 2, Heads = 2; }", StringComparison.Ordinal) },
        { "PEFT407", Model("", TokenEmbedding + "\n" + Projection, header: "public partial class M").Replace("ContextLength = \"Context\")", "ContextLength = \"Context\", [|Sequence = 8|])", StringComparison.Ordinal) },
        { "PEFT407", Model("", Projection, header: "public partial class M").Replace("ContextLength = \"Context\")", "ContextLength = \"Context\", [|Sequence = 8|])", StringComparison.Ordinal).Replace("Layers = 2; }", "Layers = 2, Heads = 2; }", StringComparison.Ordinal) },
        { "PEFT308", Model("[SoftPrompt(4, [|Name = \"\"|])]", TokenEmbedding, header: "public partial class M") },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Reports_the_diagnostic_at_the_culprit(string id, string markedSource)
    {
        var (source, span) = TestHelpers.Unmark(markedSource);
        var result = TestHelpers.Run(source);

        var matching = result.GeneratorDiagnostics.Where(d => d.Id == id).ToList();
        Assert.True(matching.Count > 0, $"{id} was not reported. Reported: {string.Join("; ", result.GeneratorDiagnostics)}");
        Assert.Contains(matching, d => d.Location.SourceSpan == span && d.Location.GetLineSpan().Path == TestHelpers.InputPath);
        // On the real syntax tree, so that #pragma warning disable and editor squiggles work.
        Assert.All(matching, d => Assert.Equal(LocationKind.SourceFile, d.Location.Kind));
        var descriptor = DiagnosticDescriptors.ById(id);
        Assert.Equal(descriptor.DefaultSeverity, matching[0].Severity);

        // Invalid targets are skipped, never emitted broken.
        var generatedErrors = result.Output.GetDiagnostics()
            .Where(d => d.Severity == DiagnosticSeverity.Error && d.Location.SourceTree is { } tree && tree.FilePath.EndsWith(".g.cs", StringComparison.Ordinal))
            .ToList();
        Assert.True(generatedErrors.Count == 0, string.Join("\n", generatedErrors));
    }

    [Fact]
    public void A_missing_setting_names_the_model_and_the_constants_it_could_be()
    {
        var (source, _) = TestHelpers.Unmark(Model("", Projection + "\n" + """[RmsNorm("Width", EpsFrom = "NormEps")] public partial RmsNorm norm { get; }""")
            .Replace("Layers = 2; }", "Layers = 2; public const double RmsNormEps = 1e-6, RopeTheta = 1e4; }", StringComparison.Ordinal));
        var diagnostic = Assert.Single(TestHelpers.Run(source).GeneratorDiagnostics);
        Assert.Equal(
            "EpsFrom of 'M.norm' names 'NormEps', which is not a constant of 'Demo.Cfg' (reached by model 'M'); declare 'public const double NormEps = …;' in 'Demo.Cfg', or name one of its double constants: 'RmsNormEps', 'RopeTheta'",
            diagnostic.GetMessage(System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public void Warnings_can_be_suppressed_with_pragma()
    {
        var (source, _) = TestHelpers.Unmark(Model("", """[Linear("Width", "Width")] public partial LoraLinear proj { get; }"""));
        var result = TestHelpers.Run(source.Replace("[PeftModel(", "#pragma warning disable PEFT010\n[PeftModel(", StringComparison.Ordinal));
        Assert.DoesNotContain(result.GeneratorDiagnostics, d => d.Id == "PEFT010" && !d.IsSuppressed);
    }

    [Fact]
    public void Every_diagnostic_has_a_test_case()
    {
        // PEFT000 reports a generator bug, so no valid or invalid model provokes it; TotalityTests inject the failure.
        var tested = Cases.Select(c => (string)c[0]).Append("PEFT000").Concat(ReferencedBlockTests.DiagnosticIds).ToHashSet();
        Assert.All(DiagnosticDescriptors.All, d => Assert.Contains(d.Id, tested));
    }

    [Fact]
    public void A_misspelt_target_names_the_nearest_projections()
    {
        var (source, _) = TestHelpers.Unmark(Model("[Lora(Rank = 4, Targets = [\"q_prj\"])]", Plain + "\n[Block] public partial B b { get; }", PlainBlock));
        var diagnostic = Assert.Single(TestHelpers.Run(source).GeneratorDiagnostics);
        Assert.Equal(
            "Target 'q_prj' of adapter 'default' matches no projection in model 'M' (its own projections and those of every block it reaches); the nearest projection names are 'q_proj', 'k_proj', 'proj'",
            diagnostic.GetMessage(System.Globalization.CultureInfo.InvariantCulture));
    }

    [Theory]
    [InlineData("[Lora(Rank = 4, Targets = [\"proj\", \"v_proj\"])]", TwoPlain)]
    [InlineData("[Lora(Rank = 4, Targets = new[] { \"value\" }), Lora(Rank = 2, Adapter = \"sql\", Targets = [])]", TwoPlain)]
    [InlineData("[Lora(Rank = 4, Targets = [\"k_proj\"])]", Plain + "\n[Block] public partial B b { get; }")]
    [InlineData("[Quantize4Bit, Lora(Rank = 4)]", Plain)]
    [InlineData("[Quantize4Bit, Lora(Rank = 4)]", Plain + "\n" + Head + "\n" + FloatGate)]
    [InlineData("[Quantize4Bit, Lora(Rank = 4)]", Plain + "\n" + OwnQuantizedHead)]
    [InlineData("[Lora(Rank = 4)]", Plain + "\n" + FloatGate)]
    [InlineData("[SoftPrompt(4, Name = \"tenant_a\"), SoftPrompt(2, Name = \"tenant_b\")]", TokenEmbedding)]
    public void Valid_targets_and_names_report_nothing(string classAttributes, string members)
    {
        var (source, _) = TestHelpers.Unmark(Model(classAttributes, members, PlainBlock));
        var result = TestHelpers.Run(source);
        Assert.Empty(result.GeneratorDiagnostics);
        Assert.Empty(result.CompilationErrors());
    }

    [Theory]
    [InlineData(Models.Gpt2)]
    [InlineData(Models.Llama)]
    [InlineData(Models.QLora)]
    [InlineData(Models.QLoraHead)]
    [InlineData(Models.SoftPrompt)]
    [InlineData(Models.Nested)]
    [InlineData(Models.FullFineTuning)]
    [InlineData(Models.SharedSettings)]
    public void Valid_models_report_nothing(string source)
        => Assert.Empty(TestHelpers.Run(source).GeneratorDiagnostics);

    [Fact]
    public void Every_diagnostic_is_documented_and_tracked()
    {
        var root = RepositoryRoot();
        var docs = File.ReadAllText(Path.Combine(root, "docs", "diagnostics.md"));
        var releases = File.ReadAllText(Path.Combine(root, "generators", "PeftGen.Generators", "AnalyzerReleases.Unshipped.md"));
        foreach (var descriptor in DiagnosticDescriptors.All)
        {
            Assert.Contains($"\n## {descriptor.Id}\n", docs.Replace("\r\n", "\n", StringComparison.Ordinal), StringComparison.Ordinal);
            Assert.Contains($"{descriptor.Id} |", releases, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Help_links_point_at_the_shipped_docs_section()
    {
        // Relative to the repository root and to the package root, which ships docs/diagnostics.md at the same path.
        var root = RepositoryRoot();
        var project = File.ReadAllText(Path.Combine(root, "src", "PeftGen", "PeftGen.csproj"));
        Assert.Contains("PackagePath=\"docs/diagnostics.md\"", project, StringComparison.Ordinal);
        foreach (var descriptor in DiagnosticDescriptors.All)
        {
            // "## PEFT001" gets the anchor "peft001" on GitHub and in Markdown renderers.
            Assert.Equal("docs/diagnostics.md#" + descriptor.Id.ToLowerInvariant(), descriptor.HelpLinkUri);
            var file = descriptor.HelpLinkUri.Substring(0, descriptor.HelpLinkUri.IndexOf('#', StringComparison.Ordinal));
            Assert.True(File.Exists(Path.Combine(root, file)), $"{descriptor.Id} links to {file}, which does not exist.");
        }
    }

    private static string RepositoryRoot() => RepositoryPaths.Root;
}
