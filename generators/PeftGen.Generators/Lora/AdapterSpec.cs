using System.Linq;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Lora;

/// <summary>One <c>[Lora]</c> attribute: an adapter's settings and where each argument was written.</summary>
/// <param name="Targets">Class-level only: projection names the adapter is limited to; empty for all.</param>
internal sealed record AdapterSpec(
    string Name,
    int Rank,
    double Alpha,
    double Dropout,
    bool UseRsLora,
    EquatableArray<string> Targets,
    LocationInfo? RankLocation)
{
    /// <summary>Whether a class-level adapter applies to a projection with this member and checkpoint name.</summary>
    public bool AppliesTo(string memberName, string checkpointName)
        => Targets.Count == 0 || Targets.Contains(memberName) || Targets.Contains(checkpointName);
}
