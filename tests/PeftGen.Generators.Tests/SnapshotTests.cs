using System.Linq;
using Xunit;

namespace PeftGen.Generators.Tests;

/// <summary>The generated code per scenario, against checked-in snapshots; the generated compilation must have no errors.</summary>
public sealed class SnapshotTests
{
    [Theory]
    [InlineData("Gpt2", Models.Gpt2)]
    [InlineData("Llama", Models.Llama)]
    [InlineData("Nested", Models.Nested)]
    [InlineData("FullFineTuning", Models.FullFineTuning)]
    [InlineData("QLora", Models.QLora)]
    [InlineData("QLoraHead", Models.QLoraHead)]
    [InlineData("SoftPrompt", Models.SoftPrompt)]
    [InlineData("SharedSettings", Models.SharedSettings)]
    public void Generates_compilable_code(string scenario, string source)
        => VerifyScenario(scenario, source);

    private static void VerifyScenario(string scenario, string source)
    {
        var result = TestHelpers.Run(source);
        Assert.Empty(result.GeneratorDiagnostics.Where(d => d.Severity == Microsoft.CodeAnalysis.DiagnosticSeverity.Error));
        Assert.NotEmpty(result.Sources);
        foreach (var generated in result.Sources.OrderBy(s => s.HintName, System.StringComparer.Ordinal))
            Snapshot.Verify(scenario + "/" + generated.HintName.Replace(".g.cs", ""), generated.SourceText.ToString());
        var errors = result.CompilationErrors();
        Assert.True(errors.Count == 0, string.Join("\n", errors.Select(e => e.ToString())));
    }

    [Fact]
    public void Hint_names_follow_the_fully_qualified_metadata_name()
    {
        var result = TestHelpers.Run(Models.Nested);
        Assert.Equal(new[] { "Demo.Nested.Zoo_1.Small.Peft.g.cs" }, result.Sources.Select(s => s.HintName));
    }
}
