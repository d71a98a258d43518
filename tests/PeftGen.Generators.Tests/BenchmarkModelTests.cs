using System;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Xunit;

namespace PeftGen.Generators.Tests;

/// <summary>
/// The project that the generator benchmark compiles (tests/PeftGen.Benchmarks/Generator/Input) is a valid model, so
/// the benchmark times real work: no diagnostics, and LoRA on all 7 projections of each of the 24 layers.
/// </summary>
public sealed class BenchmarkModelTests
{
    [Fact]
    public void The_24_layer_benchmark_project_generates_without_diagnostics()
    {
        var folder = Path.Combine(RepositoryPaths.Root, "tests", "PeftGen.Benchmarks", "Generator", "Input");
        var files = Directory.GetFiles(folder, "*.cs");
        var sources = files.Order(StringComparer.Ordinal).Select(File.ReadAllText).ToArray();

        var result = TestHelpers.Run(sources);

        Assert.Empty(result.GeneratorDiagnostics);
        var errors = result.CompilationErrors();
        Assert.True(errors.Count == 0, string.Join("\n", errors.Select(e => e.ToString())));
        Assert.Equal(
            new[] { "LlamaAttention", "LlamaDecoderLayer", "LlamaMlp", "LlamaTrunk", "Decoder24Lora", "Decoder24QLora" }.Select(n => $"GeneratorBench.Models.{n}.Peft.g.cs")
                .Concat(new[] { "LlamaAttention", "LlamaDecoderLayer", "LlamaMlp", "LlamaTrunk" }.Select(n => $"GeneratorBench.Models.{n}.Peft.Dims.g.cs"))
                .Order(StringComparer.Ordinal),
            result.Sources.Select(s => s.HintName).Order(StringComparer.Ordinal));

        // Rank 16 on q, o (2048 → 2048), k, v (2048 → 512), gate, up (2048 → 5632) and down (5632 → 2048).
        const long perLayer = 16L * (2 * (2048 + 2048) + 2 * (2048 + 512) + 3 * (2048 + 5632));
        foreach (var model in new[] { "Decoder24Lora", "Decoder24QLora" })
        {
            var type = $"GeneratorBench.Models.{model}";
            Assert.Equal(24 * perLayer, result.Constant(type + "+Accounting", "LoraParameters_default"));
            var adaptedRows = Regex.Matches(result.Source(type + ".Peft.g.cs"),
                @"new\(""model\.layers\.\*\.[a-z_.]+"", global::PeftGen\.PeftLayerKind\.Projection, 24L, \d+L, [1-9]\d*L,");
            Assert.Equal(7, adaptedRows.Count);
        }
    }
}
