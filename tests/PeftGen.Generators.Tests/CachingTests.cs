using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using System.Runtime.CompilerServices;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Xunit;

namespace PeftGen.Generators.Tests;

/// <summary>The pipeline is incremental: unrelated edits reuse every step; a rank edit recomputes.</summary>
public sealed class CachingTests
{
    private const string Unrelated = """
        namespace Demo.Other;
        public static class Helper { public static int Twice(int x) => 2 * x; }
        """;

    private static readonly string[] TrackedSteps =
    {
        TrackingNames.ModelParses, TrackingNames.ModuleParses, TrackingNames.Models, TrackingNames.Modules, TrackingNames.AllModules,
        TrackingNames.ResolvedModels, TrackingNames.Diagnostics, TrackingNames.Sites, TrackingNames.BlockDimensions,
    };

    /// <summary>The steps whose outputs reach the generated source (the parses and sites reach only the reporting).</summary>
    private static readonly string[] SourceSteps =
    {
        TrackingNames.Models, TrackingNames.Modules, TrackingNames.AllModules, TrackingNames.ResolvedModels, TrackingNames.Diagnostics,
        TrackingNames.BlockDimensions,
    };

    [Fact]
    public void Rerun_on_a_cloned_compilation_is_fully_cached()
    {
        var first = TestHelpers.Run(Models.Gpt2, Unrelated);
        var second = first.Driver.RunGenerators(first.Input.Clone()).GetRunResult().Results.Single();
        AssertAllCached(second);
    }

    [Fact]
    public void Unrelated_edit_is_fully_cached()
    {
        var first = TestHelpers.Run(Models.Gpt2, Unrelated);
        var edited = ReplaceTree(first.Input, 1, Unrelated.Replace("2 * x", "x + x", StringComparison.Ordinal));
        var second = first.Driver.RunGenerators(edited).GetRunResult().Results.Single();
        AssertAllCached(second);
    }

    [Fact]
    public void An_edit_that_only_shifts_lines_in_the_models_file_leaves_every_source_output_cached()
    {
        var first = TestHelpers.Run(Models.Gpt2, Unrelated);
        var shifted = Models.Gpt2.Replace("namespace Demo.Gpt2;", "// A comment that moves every declaration down.\n\nnamespace Demo.Gpt2;", StringComparison.Ordinal)
            .Replace("public partial class GptBlock", "\n\npublic partial class GptBlock", StringComparison.Ordinal);
        var second = first.Driver.RunGenerators(ReplaceTree(first.Input, 0, shifted)).GetRunResult().Results.Single();

        // The parses record new locations, but the specs, the resolved models and the diagnostics are equal.
        Assert.Contains(Outputs(second, TrackingNames.ModelParses), o => o.Reason == IncrementalStepRunReason.Modified);
        foreach (var name in SourceSteps)
        {
            Assert.All(Outputs(second, name), o => Assert.True(
                o.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, $"Step {name} output was {o.Reason}."));
        }
        var sourceOutputs = second.TrackedOutputSteps["SourceOutput"]
            .Where(step => step.Inputs.Any(input => input.Source.Name is TrackingNames.Modules or TrackingNames.ResolvedModels or TrackingNames.BlockDimensions))
            .SelectMany(step => step.Outputs)
            .ToList();
        Assert.NotEmpty(sourceOutputs);
        Assert.All(sourceOutputs, o => Assert.Equal(IncrementalStepRunReason.Cached, o.Reason));
    }

    [Fact]
    public void A_diagnostic_follows_its_argument_when_lines_shift()
    {
        var source = Models.Gpt2.Replace("[Lora(Rank = 8, Alpha = 16)]", "[Lora(Rank = 8, Alpha = 16, Targets = [\"c_atn\"])]", StringComparison.Ordinal);
        var first = TestHelpers.Run(source, Unrelated);
        var shifted = source.Replace("namespace Demo.Gpt2;", "// Two lines more.\n\nnamespace Demo.Gpt2;", StringComparison.Ordinal);
        var second = first.Driver.RunGeneratorsAndUpdateCompilation(ReplaceTree(first.Input, 0, shifted), out _, out var diagnostics);

        var before = Assert.Single(first.GeneratorDiagnostics);
        var after = Assert.Single(diagnostics);
        Assert.Equal("PEFT110", after.Id);
        Assert.Equal(before.Location.GetLineSpan().StartLinePosition.Line + 2, after.Location.GetLineSpan().StartLinePosition.Line);
        Assert.Equal("Targets = [\"c_atn\"]", after.Location.SourceTree!.GetText().ToString(after.Location.SourceSpan));
        Assert.All(Outputs(second.GetRunResult().Results.Single(), TrackingNames.ResolvedModels), o => Assert.NotEqual(IncrementalStepRunReason.Modified, o.Reason));
    }

    [Fact]
    public void Rank_edit_recomputes_the_model()
    {
        var first = TestHelpers.Run(Models.Gpt2, Unrelated);
        var edited = ReplaceTree(first.Input, 0, Models.Gpt2.Replace("Rank = 8", "Rank = 4", StringComparison.Ordinal));
        var second = first.Driver.RunGenerators(edited).GetRunResult().Results.Single();

        Assert.Contains(Outputs(second, TrackingNames.Modules), o => o.Reason == IncrementalStepRunReason.Modified);
        Assert.Contains(Outputs(second, TrackingNames.ResolvedModels), o => o.Reason == IncrementalStepRunReason.Modified);
        var summary = second.GeneratedSources.Single(s => s.HintName == "Demo.Gpt2.Gpt2Small.Peft.g.cs").SourceText.ToString();
        Assert.Contains("trainable params: 147,456 ||", summary, StringComparison.Ordinal);
    }

    [Fact]
    public void A_model_over_referenced_blocks_is_cached_across_an_unrelated_edit_and_holds_no_roslyn_object()
    {
        var library = TestHelpers.Library("Lib", ReferencedBlockTests.Library);
        var first = TestHelpers.Run([library], ReferencedBlockTests.User(ReferencedBlockTests.DerivedWithLora), Unrelated);
        foreach (var name in new[] { TrackingNames.ModelParses, TrackingNames.Models, TrackingNames.ResolvedModels })
        {
            foreach (var (value, _) in Outputs(first.RunResult, name)) AssertNoRoslynObjects(value, name);
        }

        var edited = ReplaceTree(first.Input, 1, Unrelated.Replace("2 * x", "x + x", StringComparison.Ordinal));
        var second = first.Driver.RunGenerators(edited).GetRunResult().Results.Single();
        foreach (var name in new[] { TrackingNames.Models, TrackingNames.ResolvedModels })
        {
            Assert.All(Outputs(second, name), o => Assert.True(
                o.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, $"Step {name} output was {o.Reason}."));
        }
    }

    [Fact]
    public void Tracked_outputs_hold_no_compilation_symbol_or_syntax()
    {
        var result = TestHelpers.Run(Models.Gpt2, Models.QLora.Replace("namespace Demo.Tiny;", "namespace Demo.Tiny2;", StringComparison.Ordinal));
        var steps = result.RunResult.TrackedSteps;
        Assert.All(TrackedSteps, name => Assert.True(steps.ContainsKey(name), $"Step {name} was not tracked."));
        foreach (var name in TrackedSteps)
        {
            foreach (var step in steps[name])
            {
                foreach (var (value, _) in step.Outputs) AssertNoRoslynObjects(value, name);
            }
        }
    }

    private static void AssertAllCached(GeneratorRunResult result)
    {
        foreach (var name in TrackedSteps)
        {
            var outputs = Outputs(result, name);
            Assert.NotEmpty(outputs);
            Assert.All(outputs, o => Assert.True(
                o.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged,
                $"Step {name} output was {o.Reason}."));
        }
    }

    private static List<(object Value, IncrementalStepRunReason Reason)> Outputs(GeneratorRunResult result, string step)
        => result.TrackedSteps[step].SelectMany(s => s.Outputs).ToList();

    private static CSharpCompilation ReplaceTree(CSharpCompilation compilation, int index, string text)
    {
        var old = compilation.SyntaxTrees.ElementAt(index);
        return compilation.ReplaceSyntaxTree(old, CSharpSyntaxTree.ParseText(text, TestHelpers.ParseOptions, old.FilePath));
    }

    private static readonly Type[] Banned =
    {
        typeof(Compilation), typeof(ISymbol), typeof(SyntaxNode), typeof(SyntaxTree), typeof(SemanticModel),
        typeof(Location), typeof(AttributeData),
    };

    private static void AssertNoRoslynObjects(object? root, string step)
    {
        var visited = new HashSet<object>(ReferenceEqualityComparer.Instance);
        var pending = new Stack<(object Value, string Path)>();
        if (root is not null) pending.Push((root, step));
        while (pending.Count > 0)
        {
            var (value, path) = pending.Pop();
            var type = value.GetType();
            if (type.IsPrimitive || type.IsEnum || value is string || value is decimal) continue;
            if (!type.IsValueType && !visited.Add(value)) continue;
            var banned = Banned.FirstOrDefault(b => b.IsInstanceOfType(value));
            Assert.True(banned is null, $"{path} holds a {banned?.Name} ({type.FullName}).");

            if (value is IEnumerable sequence)
            {
                var i = 0;
                foreach (var item in sequence)
                {
                    if (item is not null) pending.Push((item, $"{path}[{i}]"));
                    i++;
                }
            }
            for (var t = type; t is not null && t != typeof(object); t = t.BaseType)
            {
                foreach (var field in t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                {
                    if (field.FieldType.IsPointer) continue;
                    if (field.GetValue(value) is { } child) pending.Push((child, $"{path}.{field.Name}"));
                }
            }
        }
    }
}
