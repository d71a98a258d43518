using System.Linq;
using Microsoft.CodeAnalysis;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Diagnostics;

/// <summary>A diagnostic as equatable data: descriptor id, the site it points at and message arguments.</summary>
internal sealed record DiagnosticInfo(string Id, SourceSite? Site, EquatableArray<string> Arguments)
{
    public static DiagnosticInfo Create(DiagnosticDescriptor descriptor, SourceSite? site, params object[] arguments)
        => new(descriptor.Id, site, arguments.Select(a => System.Convert.ToString(a, System.Globalization.CultureInfo.InvariantCulture) ?? "").ToEquatableArray());

    public Diagnostic ToDiagnostic(Microsoft.CodeAnalysis.Location location)
        => Diagnostic.Create(DiagnosticDescriptors.ById(Id), location, Arguments.Cast<object>().ToArray());
}
