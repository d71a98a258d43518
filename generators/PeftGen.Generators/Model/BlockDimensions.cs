using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Threading;

namespace PeftGen.Generators.Model;

/// <summary>A block class and the configuration constants every model that reaches it declares, with one kind.</summary>
internal sealed record BlockDimensionsSpec(TypeHierarchy Type, EquatableArray<ConfigConstant> Constants);

/// <summary>
/// Which dimensions a block can read typed (<c>Dims.Heads</c>): a block is shared by models of different
/// configurations, so it gets a property for a constant only when every model that reaches it declares that constant,
/// with the same kind. Reading one that some model lacks is then a compile error in the block, not a
/// <c>KeyNotFoundException</c> at run time.
/// </summary>
internal static class BlockDimensions
{
    /// <summary>What one model contributes: the blocks it reaches and its configuration's constants.</summary>
    public static (EquatableArray<string> Blocks, EquatableArray<ConfigConstant> Constants) Reach(ModelSpec model)
        => (model.Blocks, model.Root.Root?.Constants ?? EquatableArray<ConfigConstant>.Empty);

    /// <summary>For every valid block reached by at least one model: the constants common to all those models, in the first model's order.</summary>
    public static ImmutableArray<BlockDimensionsSpec> Resolve(
        (EquatableArray<ClassSpec> Modules, ImmutableArray<(EquatableArray<string> Blocks, EquatableArray<ConfigConstant> Constants)> Models) input, CancellationToken cancellationToken)
    {
        var result = ImmutableArray.CreateBuilder<BlockDimensionsSpec>();
        foreach (var module in input.Modules.Where(m => m.IsValid))
        {
            cancellationToken.ThrowIfCancellationRequested();
            List<ConfigConstant>? common = null;
            foreach (var (blocks, constants) in input.Models)
            {
                if (!blocks.Contains(module.Type.MetadataName)) continue;
                common = common is null
                    ? constants.Select(c => c with { Value = 0, Real = 0 }).ToList()
                    : common.Where(c => constants.Any(o => o.Name == c.Name && o.Kind == c.Kind)).ToList();
            }
            if (common is { Count: > 0 }) result.Add(new BlockDimensionsSpec(module.Type, common.ToEquatableArray()));
        }
        return result.ToImmutable();
    }
}
