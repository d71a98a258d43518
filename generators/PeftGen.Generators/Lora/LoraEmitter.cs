using System.Collections.Generic;
using System.Linq;
using PeftGen.Generators.Emit;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Lora;

/// <summary>Emits adapter creation: a member's own and its class's adapters, and the model-wide collection of targets.</summary>
internal static class LoraEmitter
{
    /// <summary>The adapters a class's constructor adds to a projection: the member's own, then its class's.</summary>
    public static IEnumerable<AdapterSpec> ClassAdapters(ClassSpec type, MemberSpec member)
    {
        var result = member.Lora.ToList();
        result.AddRange(type.ClassLora.Where(adapter => LoraTargets.Reaches(adapter, member)));
        return result;
    }

    public static string NewConfig(AdapterSpec adapter)
        => $"new {RuntimeNames.LoraConfig}({Literals.Int(adapter.Rank)}, {Literals.Double(adapter.Alpha)}, {Literals.Double(adapter.Dropout)}, {Literals.Bool(adapter.UseRsLora)})";

    public static void WriteAddAdapters(SourceWriter writer, ClassSpec type, MemberSpec member, string field)
    {
        foreach (var adapter in ClassAdapters(type, member))
            writer.WriteLine($"{field}.AddAdapter({Literals.String(adapter.Name)}, {NewConfig(adapter)});");
    }

    /// <summary>
    /// A block's part of a model-wide <c>[Lora]</c>: the projections the model's class-level adapter reaches, i.e. those
    /// not excluded by <c>[NoLora]</c>, matching the targets, and without an adapter of that name of their own.
    /// </summary>
    public static void WriteCollectTargets(SourceWriter writer, ClassSpec type)
    {
        writer.WriteLine("/// <summary>Adds the projections that a model-wide [Lora] adapter of this name and targets reaches in this block.</summary>");
        writer.OpenBlock($"internal void CollectModelLoraTargets(string adapter, string[] targets, {RuntimeNames.ProjectionList} projections)");
        foreach (var member in type.Members)
        {
            switch (member.Kind)
            {
                case LayerKind.Linear when !member.NoLora:
                    var conditions = ClassAdapters(type, member).Select(a => $"adapter != {Literals.String(a.Name)}").ToList();
                    var names = member.CheckpointName == member.Name
                        ? $"global::System.Array.IndexOf(targets, {Literals.String(member.Name)}) >= 0"
                        : $"global::System.Array.IndexOf(targets, {Literals.String(member.Name)}) >= 0 || global::System.Array.IndexOf(targets, {Literals.String(member.CheckpointName)}) >= 0";
                    conditions.Add(conditions.Count == 0 ? $"targets.Length == 0 || {names}" : $"(targets.Length == 0 || {names})");
                    writer.WriteLine($"if ({string.Join(" && ", conditions)}) projections.Add({ClassEmitter.Field(member)});");
                    break;
                case LayerKind.Block:
                    writer.WriteLine($"{ClassEmitter.Field(member)}.CollectModelLoraTargets(adapter, targets, projections);");
                    break;
                case LayerKind.Stack:
                    writer.WriteLine($"foreach (var block in {ClassEmitter.Field(member)}) block.CollectModelLoraTargets(adapter, targets, projections);");
                    break;
            }
        }
        writer.CloseBlock();
    }

    /// <summary>The model class's own adapters, added to every block projection they reach.</summary>
    public static void WriteModelAdapters(SourceWriter writer, ClassSpec root)
    {
        if (root.ClassLora.Count == 0 || !root.Members.Any(m => m.Kind is LayerKind.Block or LayerKind.Stack)) return;
        foreach (var adapter in root.ClassLora)
        {
            writer.OpenBlock("");
            writer.WriteLine($"var projections = new {RuntimeNames.ProjectionList}();");
            var targets = "new string[] { " + string.Join(", ", adapter.Targets.Select(t => Literals.String(t.Name))) + " }";
            if (adapter.Targets.Count == 0) targets = "global::System.Array.Empty<string>()";
            foreach (var member in root.Members)
            {
                if (member.Kind == LayerKind.Block)
                    writer.WriteLine($"{ClassEmitter.Field(member)}.CollectModelLoraTargets({Literals.String(adapter.Name)}, {targets}, projections);");
                else if (member.Kind == LayerKind.Stack)
                    writer.WriteLine($"foreach (var block in {ClassEmitter.Field(member)}) block.CollectModelLoraTargets({Literals.String(adapter.Name)}, {targets}, projections);");
            }
            writer.WriteLine($"foreach (var projection in projections) projection.AddAdapter({Literals.String(adapter.Name)}, {NewConfig(adapter)});");
            writer.CloseBlock();
        }
    }
}
