using PeftGen.Generators.Diagnostics;

namespace PeftGen.Generators.SoftPrompt;

/// <summary>One <c>[SoftPrompt]</c> attribute.</summary>
/// <param name="Init">The <c>SoftPromptInit</c> member name.</param>
internal sealed record SoftPromptSpec(
    string Name,
    int VirtualTokens,
    string Init,
    string InitText,
    SourceSite? Site,
    SourceSite? VirtualTokensSite,
    SourceSite? InitSite)
{
    /// <summary>The <c>SoftPromptInit</c> member that initialises from <see cref="InitText"/>.</summary>
    public const string TextInit = "Text";
}
