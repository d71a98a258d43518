using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using PeftGen.Generators.Model;
using Xunit;

namespace PeftGen.Generators.Tests;

/// <summary>
/// Class parses are reused across compilations only while nothing they read changed: an edit inside a body elsewhere
/// reuses them; an edit to a constant, an attribute or a declaration another class reads parses again, and the
/// output follows it.
/// </summary>
public sealed class ParseCacheTests
{
    private const string Model = Models.Usings + """

        namespace Demo.Split;

        [PeftModel(typeof(SplitConfig))]
        public partial class SplitModel : nn.Module<Tensor, Tensor>
        {
            [Embedding("Vocab", "Width")] public partial TokenEmbedding wte { get; }
            [Stack("Layers")] public partial ModuleList<SplitBlock> h { get; }
            public override Tensor forward(Tensor ids) => wte.forward(ids);
        }
        """;

    private const string Block = Models.Usings + """

        namespace Demo.Split;

        [PeftModule]
        public partial class SplitBlock : nn.Module<Tensor, Tensor>
        {
            [Linear("Width", "Width"), Lora(Rank = 4)] public partial LoraLinear proj { get; }
            public override Tensor forward(Tensor x) => proj.forward(x);
        }
        """;

    private const string Config = """
        namespace Demo.Split;

        public static class SplitConfig { public const int Vocab = 64, Width = 16, Layers = 2; }
        """;

    private const string Unrelated = """
        namespace Demo.Other;

        public static class Helper
        {
            public static int Limit { get; } = 4096;
            private static readonly int s_seed = 7;
            public static int Twice(int x) => 2 * x;
            public static int Run() { return s_seed + 1; }
        }
        """;

    private const int ModelFile = 0, BlockFile = 1, ConfigFile = 2, UnrelatedFile = 3;

    [Fact]
    public void Edits_inside_bodies_and_initializers_elsewhere_reuse_every_parse()
    {
        var run = new Run(Model, Block, Config, Unrelated);
        var before = run.Generated();
        Assert.Equal(2, run.Generator.Parses.Parses);

        run.Edit(UnrelatedFile, "2 * x", "x + x + 0");                 // expression body
        run.Edit(UnrelatedFile, "return s_seed + 1;", "return s_seed;"); // block body
        run.Edit(UnrelatedFile, "= 4096", "= 40960");                  // property initializer
        run.Edit(UnrelatedFile, "= 7;", "= 8;");                       // field initializer (not a constant)
        run.Edit(UnrelatedFile, "public static int Run()", "// a comment\n    public static int Run()"); // trivia
        run.Edit(BlockFile, "=> proj.forward(x)", "=> proj.forward(x).relu()"); // the block's own body

        // The block's file changed, so the block was parsed again (its sites' locations point into that file); the model
        // read nothing that changed.
        Assert.Equal(3, run.Generator.Parses.Parses);
        Assert.Equal(11, run.Generator.Parses.Reuses);
        Assert.Equal(before, run.Generated());
        Assert.Empty(run.Diagnostics());
    }

    [Fact]
    public void A_constant_the_model_reads_from_another_file_parses_again()
    {
        var run = new Run(Model, Block, Config, Unrelated);
        var before = run.Accounting();

        run.Edit(ConfigFile, "Width = 16", "Width = 32");

        Assert.Equal(4, run.Generator.Parses.Parses);
        var after = run.Accounting();
        Assert.NotEqual(before, after);
        Assert.Equal(new Run(Model, Block, Config.Replace("Width = 16", "Width = 32", StringComparison.Ordinal), Unrelated).Accounting(), after);
    }

    [Fact]
    public void Removing_PeftModule_from_a_block_in_another_file_reports_the_model()
    {
        var run = new Run(Model, Block, Config, Unrelated);
        Assert.Empty(run.Diagnostics());

        run.Edit(BlockFile, "[PeftModule]", "");

        Assert.Contains(run.Diagnostics(), d => d.Id == "PEFT007");
    }

    [Fact]
    public void A_body_edit_in_another_part_of_a_partial_class_parses_it_again()
    {
        const string otherPart = """
            namespace Demo.Split;

            public partial class SplitModel
            {
                public int Helper() { return 1; }
            }
            """;
        var run = new Run(Model, Block, Config, otherPart);
        var parses = run.Generator.Parses.Parses;

        run.Edit(3, "return 1;", "return 1 + 1;");

        // Only the model's parse: its sites' locations may point into that file.
        Assert.Equal(parses + 1, run.Generator.Parses.Parses);
    }

    [Fact]
    public void Changed_references_parse_again()
    {
        var run = new Run(Model, Block, Config, Unrelated);
        var parses = run.Generator.Parses.Parses;
        var extra = MetadataReference.CreateFromFile(typeof(ParseCacheTests).Assembly.Location);

        run.Update(run.Compilation.AddReferences(extra));

        Assert.Equal(parses + 2, run.Generator.Parses.Parses);
        Assert.Empty(run.Diagnostics());
    }

    [Theory]
    [InlineData("public const int A = 1;", "public const int A = 2;", false)]            // a constant's value
    [InlineData("[System.Obsolete] public int B;", "public int B;", false)]             // an attribute
    [InlineData("public int B;", "public long B;", false)]                               // a type
    [InlineData("public int M(int x = 1) => x;", "public int M(int x = 2) => x;", false)] // a parameter default
    [InlineData("public int M() { return 1; }", "public int M() { return 2; }", true)]  // a body
    [InlineData("public int P { get; } = 1;", "public int P { get; } = 2;", true)]      // a property initializer
    [InlineData("public int M() { return 1; }", "public int M() {\n#nullable disable\n return 1; }", false)] // a directive
    [InlineData("public int B;", "public  int\n  B ; /* spaced */", true)]             // trivia
    [InlineData("public int M() => 1;", "public int M() => 2;", true)]                  // an expression body
    [InlineData("public abstract int M();", "public abstract int M() { return 1; }", false)] // a body where there was none
    public void Tree_shapes_differ_exactly_when_declarations_do(string member, string edited, bool same)
    {
        static TreeShape Shape(string member)
            => TreeShape.Of(CSharpSyntaxTree.ParseText($"public abstract class C {{ {member} }}", TestHelpers.ParseOptions, "C.cs"));

        Assert.Equal(same, Shape(member).SameDeclarations(Shape(edited), CancellationToken.None));
    }

    /// <summary>One driver and one generator instance, run again after each edit as the IDE does.</summary>
    private sealed class Run
    {
        private GeneratorDriver driver;

        public Run(params string[] sources)
        {
            Generator = new PeftGenerator();
            driver = CSharpGeneratorDriver.Create(new[] { Generator.AsSourceGenerator() }, parseOptions: TestHelpers.ParseOptions);
            Update(TestHelpers.CreateCompilation(sources));
        }

        public PeftGenerator Generator { get; }

        public CSharpCompilation Compilation { get; private set; } = null!;

        public void Update(CSharpCompilation compilation)
        {
            Compilation = compilation;
            driver = driver.RunGenerators(compilation);
        }

        public void Edit(int file, string find, string replace)
        {
            var tree = Compilation.SyntaxTrees.ElementAt(file);
            var text = tree.GetText().ToString();
            Assert.Contains(find, text, StringComparison.Ordinal);
            var edited = tree.WithChangedText(tree.GetText().Replace(text.IndexOf(find, StringComparison.Ordinal), find.Length, replace));
            Update(Compilation.ReplaceSyntaxTree(tree, edited));
        }

        public List<(string HintName, string Text)> Generated()
            => Result.GeneratedSources.Select(s => (s.HintName, s.SourceText.ToString())).ToList();

        public IReadOnlyList<Diagnostic> Diagnostics() => Result.Diagnostics;

        /// <summary>The model's generated source, where its accounting constants are.</summary>
        public string Accounting() => Generated().Single(s => s.HintName.Contains("SplitModel", StringComparison.Ordinal)).Text;

        private GeneratorRunResult Result => driver.GetRunResult().Results.Single();
    }
}
