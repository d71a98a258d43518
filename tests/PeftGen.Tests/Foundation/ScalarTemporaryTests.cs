using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Operations;
using Xunit;

namespace PeftGen.Tests.Foundation;

/// <summary>
/// The runtime passes no number to TorchSharp as a temporary <c>Scalar</c> (or scalar <c>Tensor</c>): every one is
/// made explicitly and held in a <c>using</c> until the call that reads it returns.
/// </summary>
/// <remarks>
/// TorchSharp turns a number argument (<c>x.mul(0.5)</c>, <c>x.masked_fill(m, double.NegativeInfinity)</c>, and the
/// operators <c>x - 1</c>, <c>x / t</c>) into a <c>Scalar</c> whose finalizer frees the native value, and hands native
/// code only its handle: nothing keeps the wrapper alive during the call. When a collection runs on another thread at
/// that moment, the finalizer frees the value while libtorch still reads it, and the call fails with libtorch's
/// "Expected false to be true, but got false" (raised from <c>c10::Scalar::toDouble</c>, Scalar.h:140). The main job
/// failed so once, in QLoRA's sampling (2026-12-03, Zen 5); a scratch loop of <c>x.mul_(1.0000001)</c> beside a thread
/// collecting garbage failed the same way within 100,000 calls, and three million calls with the Scalar held ran clean.
/// A race cannot be tested reliably, so this test checks the source instead: it compiles the runtime with Roslyn and
/// lists every implicit conversion to <c>Scalar</c> or <c>Tensor</c> and every Tensor operator with a number operand.
/// </remarks>
public sealed class ScalarTemporaryTests
{
    [Fact]
    public void The_runtime_passes_no_number_to_torch_as_a_temporary_scalar()
    {
        var source = Path.Combine(RepositoryRoot(), "src", "PeftGen");
        var files = Directory.GetFiles(source, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"))
            .ToList();
        Assert.True(files.Count > 100, $"found only {files.Count} source files under {source}");
        var sites = TemporaryScalars(files.Select(f => CSharpSyntaxTree.ParseText(File.ReadAllText(f), Options, Path.GetRelativePath(source, f))));
        Assert.True(sites.Count == 0, "Numbers passed to TorchSharp as temporary Scalars (make each with ToScalar() in a using):\n" + string.Join("\n", sites));
    }

    [Fact]
    public void The_check_finds_each_kind_of_temporary()
    {
        const string code = """
            using TorchSharp;
            using static TorchSharp.torch;
            static class Sample
            {
                static Tensor Converted(Tensor x) => x.mul(0.5);
                static Tensor Operator(Tensor x) => x - 1;
                static Tensor AsTensor(Tensor x) => x.bitwise_left_shift(4);
                static Tensor Held(Tensor x)
                {
                    using var half = 0.5.ToScalar();
                    return x.mul(half);
                }
            }
            """;
        var sites = TemporaryScalars([CSharpSyntaxTree.ParseText(code, Options, "Sample.cs")]);
        Assert.Equal(3, sites.Count);
        Assert.Contains(sites, s => s.StartsWith("Sample.cs:5:", StringComparison.Ordinal));
        Assert.Contains(sites, s => s.StartsWith("Sample.cs:6:", StringComparison.Ordinal));
        Assert.Contains(sites, s => s.StartsWith("Sample.cs:7:", StringComparison.Ordinal));
    }

    private static readonly CSharpParseOptions Options = new(LanguageVersion.Preview);

    // Every implicit conversion to Scalar or Tensor, and every Tensor operator with a number operand, as "file:line: code".
    private static List<string> TemporaryScalars(IEnumerable<SyntaxTree> trees)
    {
        var treeList = trees.ToList();
        var compilation = CSharpCompilation.Create("scan", treeList, References.Value,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, allowUnsafe: true, nullableContextOptions: NullableContextOptions.Enable));
        var sites = new List<string>();
        foreach (var tree in treeList)
        {
            var model = compilation.GetSemanticModel(tree);
            var seen = new HashSet<Microsoft.CodeAnalysis.Text.TextSpan>();
            // Bodies, expression bodies and initializers; the generated partial parts are absent, which only leaves
            // their declarations unbound.
            var roots = tree.GetRoot().DescendantNodes().Where(n => n is BlockSyntax or ArrowExpressionClauseSyntax or EqualsValueClauseSyntax);
            foreach (var root in roots)
            {
                if (model.GetOperation(root) is not { } operation) continue;
                foreach (var found in operation.DescendantsAndSelf())
                {
                    bool temporary = found switch
                    {
                        IConversionOperation { IsImplicit: true, Conversion.IsUserDefined: true } conversion
                            => conversion.Type?.ToDisplayString() is "TorchSharp.Scalar" or "TorchSharp.torch.Tensor",
                        IBinaryOperation { OperatorMethod: { } method }
                            => method.ContainingType?.ToDisplayString() == "TorchSharp.torch.Tensor" && method.Parameters.Any(p => IsNumber(p.Type)),
                        _ => false,
                    };
                    if (!temporary || !seen.Add(found.Syntax.Span)) continue;
                    int line = tree.GetLineSpan(found.Syntax.Span).StartLinePosition.Line + 1;
                    sites.Add($"{tree.FilePath}:{line}: {found.Syntax}");
                }
            }
        }
        return sites;
    }

    private static bool IsNumber(ITypeSymbol type) => type.SpecialType is SpecialType.System_Byte or SpecialType.System_SByte
        or SpecialType.System_Int16 or SpecialType.System_Int32 or SpecialType.System_Int64 or SpecialType.System_Single
        or SpecialType.System_Double or SpecialType.System_Boolean;

    // The test's own assemblies (the framework, TorchSharp and PeftGen's other dependencies), as metadata.
    private static readonly Lazy<List<MetadataReference>> References = new(() =>
        ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(path => path.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) && Path.GetFileName(path) != "PeftGen.dll")
            .Select(path => (MetadataReference)MetadataReference.CreateFromFile(path))
            .ToList());

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "PeftGen.sln"))) return directory.FullName;
        }
        throw new InvalidOperationException($"No PeftGen.sln above {AppContext.BaseDirectory}.");
    }
}
