using System;
using System.Collections.Generic;
using System.Linq;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Diagnostics;

/// <summary>
/// A place in the source named by what is there rather than where it is: a class, a member, an attribute, one of its
/// arguments or array entries (<c>Demo.Block.proj[Lora0]:Rank</c>). Specs and diagnostics hold sites, so an edit that
/// only moves text leaves them equal and every source output cached; the parse records where each site is in a
/// separate table (<see cref="SiteLocation"/>), which only the reporting of diagnostics reads.
/// </summary>
internal sealed record SourceSite(string Key);

/// <summary>Where a site is in the parse's compilation.</summary>
internal sealed record SiteLocation(string Key, LocationInfo Location);

/// <summary>Names the sites of one class's parse and records their locations.</summary>
internal sealed class SiteRecorder
{
    private readonly Dictionary<string, LocationInfo> locations;
    private readonly LocationInfo? fallback;

    public SiteRecorder()
        : this(new Dictionary<string, LocationInfo>(StringComparer.Ordinal), null)
    {
    }

    private SiteRecorder(Dictionary<string, LocationInfo> locations, LocationInfo? fallback)
    {
        this.locations = locations;
        this.fallback = fallback;
    }

    /// <summary>
    /// A recorder into the same table that puts every site without a source location at <paramref name="fallback"/>:
    /// a block read from a referenced assembly has no syntax, so what is wrong with it is reported where this
    /// compilation refers to it.
    /// </summary>
    public SiteRecorder WithFallback(LocationInfo? fallback) => new(locations, fallback ?? this.fallback);

    /// <summary>The site <paramref name="key"/> at <paramref name="location"/>; null when it has no source location.</summary>
    public SourceSite? Record(string key, LocationInfo? location)
    {
        location ??= fallback;
        if (location is null) return null;
        locations[key] = location;
        return new SourceSite(key);
    }

    /// <summary>Where <paramref name="site"/> was recorded, if it was.</summary>
    public LocationInfo? LocationOf(SourceSite? site) => site is not null && locations.TryGetValue(site.Key, out var location) ? location : null;

    public EquatableArray<SiteLocation> ToTable()
        => locations.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => new SiteLocation(l.Key, l.Value)).ToEquatableArray();
}
