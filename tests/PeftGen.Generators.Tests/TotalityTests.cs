using System;
using System.Linq;
using System.Threading;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Model;
using Xunit;

namespace PeftGen.Generators.Tests;

/// <summary>A mistake in one class costs that class its generated code, never the rest of the project's.</summary>
public sealed class TotalityTests
{
    [Fact]
    public void A_broken_class_leaves_every_other_model_generated()
    {
        var broken = Models.Usings + """

            namespace Demo.Broken;

            public static class Cfg { public const int Width = 16; }

            [PeftModel(typeof(Cfg))]
            [Lora(Targets = null)]
            public partial class Broken : nn.Module<Tensor, Tensor>
            {
                [Linear("Width", "Width")] public partial LoraLinear proj { get; }
                public override Tensor forward(Tensor x) => x;
            }
            """;
        var result = TestHelpers.Run(Models.Gpt2, broken);

        Assert.Null(result.RunResult.Exception);
        Assert.Equal("PEFT014", Assert.Single(result.GeneratorDiagnostics).Id);
        Assert.Contains(result.Sources, s => s.HintName == "Demo.Gpt2.Gpt2Small.Peft.g.cs");
        Assert.DoesNotContain(result.Sources, s => s.HintName.StartsWith("Demo.Broken.", StringComparison.Ordinal));
    }

    [Fact]
    public void An_exception_while_resolving_a_model_becomes_PEFT000_on_that_model()
    {
        var valid = TestHelpers.Run(Models.Nested);
        var root = valid.RunResult.TrackedSteps[TrackingNames.Models].SelectMany(s => s.Outputs).Select(o => (ClassSpec)o.Value).Single();

        // A model spec without its [PeftModel] data cannot come from the parser; resolving it throws inside the builder.
        var spec = ModelBuilder.Build((root with { Root = null }, EquatableArray<ClassSpec>.Empty), CancellationToken.None);

        Assert.False(spec.IsValid);
        var diagnostic = Assert.Single(spec.Diagnostics);
        Assert.Equal(DiagnosticDescriptors.GeneratorFailure.Id, diagnostic.Id);
        Assert.Equal(root.Site, diagnostic.Site);
        Assert.Equal("Small", diagnostic.Arguments[0]);
        Assert.StartsWith("NullReferenceException", diagnostic.Arguments[1], StringComparison.Ordinal);
    }
}
