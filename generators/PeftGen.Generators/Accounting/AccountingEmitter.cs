using System;
using System.Collections.Generic;
using PeftGen.Generators.Emit;

namespace PeftGen.Generators.Accounting;

/// <summary>Emits a model's nested <c>Accounting</c> class of constants and its <c>PrintTrainableParameters</c>.</summary>
internal static class AccountingEmitter
{
    /// <param name="estimate">The training memory estimate for the declared batch and sequence, written as <c>Accounting.Estimate</c>; null for none.</param>
    public static void Write(SourceWriter writer, AccountingResult accounting, Budget.EstimateSpec? estimate)
    {
        writer.WriteLine("/// <summary>Parameter counts and training-memory estimates of this model, computed at compile time.</summary>");
        writer.OpenBlock("public static class Accounting");
        Constant(writer, "Every parameter: base weights, all adapters, all soft prompts (4-bit weights counted by value).", "AllParameters", accounting.AllParameters);
        Constant(writer, "Parameters that train: the active adapter, the first soft prompt and [Trainable] members.", "TrainableParameters", accounting.TrainableParameters);
        Constant(writer, "Parameters that stay frozen.", "FrozenParameters", accounting.FrozenParameters);
        Constant(writer, "Parameters of the base model (without adapters and soft prompts).", "BaseParameters", accounting.BaseParameters);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var adapter in accounting.Adapters)
            Constant(writer, $"Parameters of LoRA adapter '{Literals.DocText(adapter.Name)}'.", Unique(names, "LoraParameters_" + Literals.Identifier(adapter.Name)), adapter.Parameters);
        foreach (var prompt in accounting.Prompts)
            Constant(writer, $"Parameters of soft prompt '{Literals.DocText(prompt.Name)}'.", Unique(names, "SoftPromptParameters_" + Literals.Identifier(prompt.Name)), prompt.Parameters);
        Constant(writer, "Bytes of the base weights in float32.", "FullFineTuningWeightBytes", accounting.FullFineTuningWeightBytes);
        Constant(writer, "Training memory of full fine-tuning in float32: weights, gradients and AdamW's two moments.", "FullFineTuningTrainingBytes", accounting.FullFineTuningBytes);
        Constant(writer, "Bytes of this configuration's weights: float32, 16 bits for frozen projections of a 16-bit model, or packed codes and quantization state for 4-bit weights.", "WeightBytes", accounting.WeightBytes);
        Constant(writer, "Bytes of the gradients of the trainable parameters (float32).", "GradientBytes", accounting.GradientBytes);
        Constant(writer, "Bytes of AdamW's two float32 moments of the trainable parameters.", "OptimizerBytes", accounting.OptimizerBytes);
        Constant(writer, "Training memory of this configuration: weights, gradients and optimizer state (activations not included).", "TrainingBytes", accounting.TrainingBytes);
        writer.WriteLine();
        writer.WriteLine("/// <summary>PEFT's <c>print_trainable_parameters</c> line.</summary>");
        writer.WriteLine($"public const string Summary = {Literals.String(accounting.Summary)};");
        writer.WriteLine();
        writer.WriteLine("/// <summary>Parameters per layer member, over every instance of it.</summary>");
        writer.OpenBlock("public static readonly global::System.Collections.Generic.IReadOnlyList<global::PeftGen.MemberParameters> Members = new global::PeftGen.MemberParameters[]");
        foreach (var member in accounting.Members)
        {
            writer.WriteLine($"new({Literals.String(member.Path)}, {RuntimeNames.PeftLayerKind}.{member.Kind}, {Literals.Long(member.Instances)}, {Literals.Long(member.Parameters)}, {Literals.Long(member.AdapterParameters)}, {Literals.Long(member.TrainableParameters)}, {Literals.Long(member.WeightBytes)}),");
        }
        writer.CloseBlock(";");
        if (estimate is not null) Budget.BudgetEmitter.Write(writer, estimate);
        writer.WriteLine();
        writer.WriteLine("/// <summary>These constants as one value: what <c>IPeftTrainableModel.Accounting</c> gives for this model.</summary>");
        writer.WriteLine("public static readonly global::PeftGen.ModelAccounting Value = new(AllParameters, TrainableParameters, FrozenParameters, BaseParameters, WeightBytes, TrainingBytes, Summary, Members);");
        writer.CloseBlock();
        writer.WriteLine();
        writer.WriteLine("global::PeftGen.ModelAccounting global::PeftGen.Training.IPeftTrainableModel.Accounting => Accounting.Value;");
        writer.WriteLine();
        writer.WriteLine("/// <summary>Writes PEFT's trainable-parameters line (<see cref=\"Accounting.Summary\"/>) to <paramref name=\"writer\"/>, or the console.</summary>");
        writer.WriteLine("public void PrintTrainableParameters(global::System.IO.TextWriter? writer = null) => (writer ?? global::System.Console.Out).WriteLine(Accounting.Summary);");
    }

    /// <summary>Names like "a-b" and "a_b" map to one identifier; later ones get a numeric suffix.</summary>
    private static string Unique(HashSet<string> used, string name)
    {
        var candidate = name;
        for (var i = 2; !used.Add(candidate); i++) candidate = name + "_" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return candidate;
    }

    private static void Constant(SourceWriter writer, string summary, string name, long value)
    {
        writer.WriteLine($"/// <summary>{summary}</summary>");
        writer.WriteLine($"public const long {name} = {Literals.Long(value)};");
    }
}
