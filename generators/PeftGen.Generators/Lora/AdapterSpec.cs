using System.Linq;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Lora;

/// <summary>One entry of a class-level <c>[Lora]</c>'s <c>Targets</c>: a projection's member or checkpoint name.</summary>
internal sealed record LoraTarget(string Name, SourceSite? Site);

/// <summary>One <c>[Lora]</c> attribute: an adapter's settings and where each argument was written.</summary>
/// <param name="Targets">Class-level only: projection names the adapter is limited to; empty for all.</param>
/// <param name="Site">The attribute.</param>
internal sealed record AdapterSpec(
    string Name,
    int Rank,
    double Alpha,
    double Dropout,
    bool UseRsLora,
    EquatableArray<LoraTarget> Targets,
    SourceSite? RankSite,
    SourceSite? Site)
{
    /// <summary>Whether a class-level adapter's targets name a projection with this member and checkpoint name.</summary>
    public bool AppliesTo(string memberName, string checkpointName)
        => Targets.Count == 0 || Targets.Any(t => t.Name == memberName || t.Name == checkpointName);
}
