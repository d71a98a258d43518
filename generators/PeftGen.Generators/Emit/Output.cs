using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Emit;

/// <summary>The generator's outputs: diagnostics, then source for every valid class.</summary>
internal static class Output
{
    public static void Module(SourceProductionContext context, ClassSpec module)
    {
        Diagnostics(context, module.Diagnostics);
        if (module.IsValid) context.AddSource(module.Type.HintName, SourceText.From(ClassEmitter.EmitModule(module), System.Text.Encoding.UTF8));
    }

    public static void Model(SourceProductionContext context, ModelSpec model)
    {
        Diagnostics(context, model.Diagnostics);
        if (model.IsValid) context.AddSource(model.Root.Type.HintName, SourceText.From(ClassEmitter.EmitModel(model), System.Text.Encoding.UTF8));
    }

    public static void Diagnostics(SourceProductionContext context, EquatableArray<DiagnosticInfo> diagnostics)
    {
        foreach (var diagnostic in diagnostics) context.ReportDiagnostic(diagnostic.ToDiagnostic());
    }
}
