using PeftGen.Generators.Diagnostics;

namespace PeftGen.Generators.SoftPrompt;

/// <summary>One <c>[SoftPrompt]</c> attribute.</summary>
internal sealed record SoftPromptSpec(
    string Name,
    int VirtualTokens,
    int Init,
    string InitText,
    LocationInfo? Location,
    LocationInfo? VirtualTokensLocation,
    LocationInfo? InitLocation)
{
    public const int TextInit = 2;
}
