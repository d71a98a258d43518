using System.Linq;
using PeftGen.Generators.Emit;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Lora;

/// <summary>
/// Emits adapter creation: in a class's constructor, the adapters that class decides (the member's own and its
/// class's); in the model's constructor, the model class's adapters on the block projections the resolution gave them.
/// </summary>
internal static class LoraEmitter
{
    public static string NewConfig(AdapterSpec adapter)
        => $"new {RuntimeNames.LoraConfig}({Literals.Int(adapter.Rank)}, {Literals.Double(adapter.Alpha)}, {Literals.Double(adapter.Dropout)}, {Literals.Bool(adapter.UseRsLora)})";

    public static void WriteAddAdapters(SourceWriter writer, ClassSpec type, MemberSpec member, string field)
    {
        foreach (var adapter in LoraResolution.ClassAdapters(type, member))
            writer.WriteLine($"{field}.AddAdapter({Literals.String(adapter.Name)}, {NewConfig(adapter)});");
    }

    /// <summary>
    /// The model class's adapters on block projections, found by path in <c>layers</c> (in layer order, which is the
    /// order blocks are built in, so each adapter's initialisation draws the same random numbers as if the block had
    /// added it).
    /// </summary>
    public static void WriteModelAdapters(SourceWriter writer, ModelSpec model)
    {
        foreach (var adapter in model.Root.ClassLora)
        {
            var paths = model.Layers
                .Where(layer => layer.Adapters.Any(a => a.FromModel && ReferenceEquals(a.Adapter, adapter)))
                .Select(layer => Literals.String(layer.Path))
                .ToList();
            if (paths.Count == 0) continue;
            writer.WriteLine($"foreach (var projection in {RuntimeNames.PeftLayers}.Projections(layers, {string.Join(", ", paths)})) projection.AddAdapter({Literals.String(adapter.Name)}, {NewConfig(adapter)});");
        }
    }
}
