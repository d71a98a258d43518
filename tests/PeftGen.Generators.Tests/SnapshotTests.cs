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
    public void Generates_compilable_code(string scenario, string source)
        => VerifyScenario(scenario, source);

    /// <summary>
    /// The 4-bit and soft prompt runtime APIs (<c>LoraLinear.QuantizeBase</c>, <c>TokenEmbedding.AddSoftPrompt</c>,
    /// <c>TokenEmbedding.SetSoftPromptTrainable</c>, <c>SoftPromptConfig</c>) come from other branches. Until they are merged, errors naming exactly those members are
    /// the only ones tolerated; every other error still fails.
    /// </summary>
    [Theory]
    [InlineData("QLora", Models.QLora, "QuantizeBase")]
    [InlineData("SoftPrompt", Models.SoftPrompt, "AddSoftPrompt", "SetSoftPromptTrainable", "SoftPromptConfig")]
    public void Generates_compilable_code_for_runtime_features_of_other_branches(string scenario, string source, params string[] pendingMembers)
    {
        var missing = pendingMembers.Where(m => !RuntimeHas(m)).ToArray();
        VerifyScenario(scenario, source, missing);
    }

    private static void VerifyScenario(string scenario, string source, params string[] missingRuntimeMembers)
    {
        var result = TestHelpers.Run(source);
        Assert.Empty(result.GeneratorDiagnostics.Where(d => d.Severity == Microsoft.CodeAnalysis.DiagnosticSeverity.Error));
        Assert.NotEmpty(result.Sources);
        foreach (var generated in result.Sources.OrderBy(s => s.HintName, System.StringComparer.Ordinal))
            Snapshot.Verify(scenario + "/" + generated.HintName.Replace(".g.cs", ""), generated.SourceText.ToString());
        var errors = result.CompilationErrors(missingRuntimeMembers);
        Assert.True(errors.Count == 0, string.Join("\n", errors.Select(e => e.ToString())));
    }

    private static bool RuntimeHas(string member)
        => typeof(LoraLinear).GetMethod(member) is not null
            || typeof(TokenEmbedding).GetMethod(member) is not null
            || typeof(LoraLinear).Assembly.GetType("PeftGen." + member) is not null;

    [Fact]
    public void Hint_names_follow_the_fully_qualified_metadata_name()
    {
        var result = TestHelpers.Run(Models.Nested);
        Assert.Equal(new[] { "Demo.Nested.Zoo_1.Small.Peft.g.cs" }, result.Sources.Select(s => s.HintName));
    }
}
