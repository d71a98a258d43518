using PeftGen.Generators.Accounting;
using PeftGen.Generators.Diagnostics;

namespace PeftGen.Generators.Model;

/// <summary>
/// A <c>[PeftModel]</c> root with everything resolved against its configuration: the accounting, the adapter that
/// trains, and the diagnostics of every block it reaches.
/// </summary>
/// <remarks>Plain data (no symbols, syntax or locations), like <see cref="ClassSpec"/>.</remarks>
/// <param name="IsValid">False when the root or a block it reaches has an error: nothing is emitted for the root.</param>
internal sealed record ModelSpec(
    ClassSpec Root,
    AccountingResult Accounting,
    string? ActiveAdapter,
    string TokenEmbeddingMember,
    EquatableArray<DiagnosticInfo> Diagnostics,
    bool IsValid);
