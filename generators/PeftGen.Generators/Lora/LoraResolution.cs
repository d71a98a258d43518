using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using PeftGen.Generators.Diagnostics;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Lora;

/// <summary>
/// Which adapters each projection gets, and the LoRA rules that need more than one attribute: no <c>Targets</c> entry
/// is a typo (PEFT108), every class-level adapter reaches a projection (PEFT109), and no rank exceeds its projection
/// (PEFT102). A block class's adapters reach that class's projections; the model class's reach its own and those of
/// every block it reaches.
/// </summary>
internal static class LoraResolution
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

    /// <summary>A block class's adapters against its own projections (the class alone decides, so this runs at parse).</summary>
    public static void CheckBlock(string typeName, EquatableArray<AdapterSpec> classLora, IReadOnlyList<MemberSpec> members, IReadOnlyCollection<string> projectionNames, List<DiagnosticInfo> diagnostics)
    {
        var scope = $"of '{typeName}' (a [Lora] on a [PeftModule] class reaches that class's own projections; put it on the model class to reach into blocks)";
        var matched = CheckTargets(classLora, projectionNames, scope, diagnostics);
        // Whether an adapter reaches something is known once every member parsed.
        if (diagnostics.Any(d => DiagnosticDescriptors.ById(d.Id).DefaultSeverity == DiagnosticSeverity.Error)) return;
        foreach (var adapter in matched)
        {
            if (members.Any(m => Reaches(adapter, m))) continue;
            var reason = members.Any(m => m.Kind == LayerKind.Linear) ? ReachesNoneReason : $"'{typeName}' has no [Linear] projection";
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.AdapterReachesNothing, adapter.Site, adapter.Name, typeName, reason));
        }
    }

    /// <summary>
    /// The model class's adapters against every projection the model reaches (call once every block resolved).
    /// </summary>
    /// <param name="adaptersResolved">Every class the model reaches is valid, so <paramref name="layers"/> holds every adapter.</param>
    public static void CheckModel(ClassSpec root, IReadOnlyList<ResolvedLayer> layers, IReadOnlyCollection<string> projectionNames, bool adaptersResolved, List<DiagnosticInfo> diagnostics)
    {
        var scope = $"in model '{root.Type.Name}' (its own projections and those of every block it reaches)";
        var matched = CheckTargets(root.ClassLora, projectionNames, scope, diagnostics);
        if (!adaptersResolved) return;
        foreach (var adapter in matched)
        {
            if (layers.Any(l => l.Adapters.Any(a => ReferenceEquals(a.Adapter, adapter)))) continue;
            var reason = projectionNames.Count > 0 ? ReachesNoneReason : $"model '{root.Type.Name}' has no [Linear] projection";
            diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.AdapterReachesNothing, adapter.Site, adapter.Name, root.Type.Name, reason));
        }
    }

    /// <summary>The update <c>B·A</c> cannot have a rank above the smaller side of the projection.</summary>
    /// <param name="member">The projection as <c>Class.member</c>, for the message.</param>
    public static void CheckRanks(IEnumerable<ResolvedAdapter> adapters, long inFeatures, long outFeatures, string member, string model, List<DiagnosticInfo> diagnostics)
    {
        var limit = Math.Min(inFeatures, outFeatures);
        foreach (var adapter in adapters)
        {
            if (adapter.Adapter.Rank > limit)
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.RankTooLarge, adapter.Adapter.RankSite, adapter.Adapter.Rank, adapter.Name, member, limit, model));
        }
    }

    private const string ReachesNoneReason = "each projection it would reach is marked [NoLora] or has its own [Lora] of that name";

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
