using System.Linq;
using Microsoft.CodeAnalysis;
using PeftGen.Generators.Model;

namespace PeftGen.Generators.Diagnostics;

/// <summary>A diagnostic as equatable data: descriptor id, location and message arguments.</summary>
internal sealed record DiagnosticInfo(string Id, LocationInfo? Location, EquatableArray<string> Arguments)
{
    public static DiagnosticInfo Create(DiagnosticDescriptor descriptor, LocationInfo? location, params object[] arguments)
        => new(descriptor.Id, location, arguments.Select(a => System.Convert.ToString(a, System.Globalization.CultureInfo.InvariantCulture) ?? "").ToEquatableArray());

    public Diagnostic ToDiagnostic(Microsoft.CodeAnalysis.Location location)
        => Diagnostic.Create(DiagnosticDescriptors.ById(Id), location, Arguments.Cast<object>().ToArray());
}
