using System;
using System.Collections.Generic;
using System.Linq;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Lora;

/// <summary>
/// Which projections a class-level <c>[Lora]</c> reaches, and the checks that none of its <c>Targets</c> is a typo and
/// that it reaches something. A block class's adapters reach that class's projections; the model class's reach its
/// own and those of every block it reaches.
/// </summary>
internal static class LoraTargets
{
    private const int SuggestionCount = 3;

    /// <summary>
    /// Whether a class-level adapter adds itself to this projection: not excluded by <c>[NoLora]</c>, named by the
    /// targets (or no targets), and without a member-level adapter of the same name (the member's own wins).
    /// </summary>
    public static bool Reaches(AdapterSpec classAdapter, MemberSpec member)
        => member.Kind == LayerKind.Linear && !member.NoLora && classAdapter.AppliesTo(member.Name, member.CheckpointName)
            && member.Lora.All(a => a.Name != classAdapter.Name);

    /// <summary>The adapters a class's own constructor adds to a projection: the member's own, then its class's that reach it.</summary>
    public static IEnumerable<AdapterSpec> ClassAdapters(ClassSpec type, MemberSpec member)
        => member.Lora.Concat(type.ClassLora.Where(adapter => Reaches(adapter, member)));

    /// <summary>
    /// The model class's adapters that a block's projection gets from the model: those that reach it under a name the
    /// block did not use. The model's constructor adds them, by path; for the model class's own projections they are
    /// <see cref="ClassAdapters"/>.
    /// </summary>
    public static IEnumerable<AdapterSpec> ModelAdapters(ClassSpec root, ClassSpec type, MemberSpec member)
    {
        if (ReferenceEquals(type, root)) return Enumerable.Empty<AdapterSpec>();
        var own = ClassAdapters(type, member).Select(a => a.Name).ToList();
        return root.ClassLora.Where(adapter => Reaches(adapter, member) && !own.Contains(adapter.Name));
    }

    /// <summary>The member and checkpoint names a class's projections answer to in <c>Targets</c>.</summary>
    public static IEnumerable<string> NamesOf(MemberSpec member)
        => member.Kind != LayerKind.Linear ? Enumerable.Empty<string>()
            : member.CheckpointName == member.Name ? new[] { member.Name } : new[] { member.Name, member.CheckpointName };

    /// <summary>
    /// Reports every target that names no projection in <paramref name="projectionNames"/>, with the nearest names.
    /// Returns the adapters whose every target matched (those can still reach nothing, which the caller checks).
    /// </summary>
    /// <param name="scope">Where the names were looked for, completing "matches no projection …".</param>
    public static List<AdapterSpec> CheckTargets(IEnumerable<AdapterSpec> adapters, IReadOnlyCollection<string> projectionNames, string scope, List<DiagnosticInfo> diagnostics)
    {
        var matched = new List<AdapterSpec>();
        foreach (var adapter in adapters)
        {
            var allMatch = true;
            foreach (var target in adapter.Targets)
            {
                if (projectionNames.Contains(target.Name)) continue;
                allMatch = false;
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnmatchedTarget, target.Site, target.Name, adapter.Name, scope, Suggestion(target.Name, projectionNames)));
            }
            if (allMatch) matched.Add(adapter);
        }
        return matched;
    }

    private static string Suggestion(string name, IReadOnlyCollection<string> projectionNames)
    {
        var nearest = Nearest(name, projectionNames).ToList();
        return nearest.Count == 0
            ? "there are no [Linear] projections there to target"
            : "the nearest projection names are " + string.Join(", ", nearest.Select(n => "'" + n + "'"));
    }

    /// <summary>The <see cref="SuggestionCount"/> names closest to <paramref name="name"/> by edit distance (ties by name).</summary>
    public static IEnumerable<string> Nearest(string name, IEnumerable<string> candidates)
        => candidates.Distinct(StringComparer.Ordinal)
            .Select(c => (Name: c, Distance: EditDistance(name, c)))
            .OrderBy(c => c.Distance)
            .ThenBy(c => c.Name, StringComparer.Ordinal)
            .Take(SuggestionCount)
            .Select(c => c.Name);

    /// <summary>Levenshtein distance: the fewest single-character insertions, deletions and substitutions.</summary>
    public static int EditDistance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++) previous[j] = j;
        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitution, Math.Min(previous[j] + 1, current[j - 1] + 1));
            }
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}
