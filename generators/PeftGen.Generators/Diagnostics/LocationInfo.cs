using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace PeftGen.Generators.Diagnostics;

/// <summary>A source location as plain data (file path and spans), so specs hold no <see cref="Location"/>.</summary>
internal sealed record LocationInfo(string FilePath, TextSpan TextSpan, LinePositionSpan LineSpan)
{
    public Location ToLocation() => Location.Create(FilePath, TextSpan, LineSpan);

    public static LocationInfo? From(SyntaxNode? node) => node is null ? null : From(node.GetLocation());

    public static LocationInfo? From(Location location)
        => location.SourceTree is null
            ? null
            : new LocationInfo(location.SourceTree.FilePath, location.SourceSpan, location.GetLineSpan().Span);
}
