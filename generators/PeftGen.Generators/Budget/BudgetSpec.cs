using PeftGen.Generators.Diagnostics;

namespace PeftGen.Generators.Budget;

/// <summary>
/// What <c>[PeftModel(..., MemoryBudget = "24 GiB", Batch = 1, Sequence = 512)]</c> asks for: the training memory
/// estimate for <see cref="Batch"/> × <see cref="Sequence"/>, checked against <see cref="BudgetBytes"/> when a budget is
/// given. Null on the root spec when neither a budget nor a sequence is declared.
/// </summary>
/// <param name="BudgetText">The budget as written; empty when none.</param>
/// <param name="BudgetBytes">The budget in bytes; 0 when none or malformed (reported at parse).</param>
/// <param name="Sequence">Tokens per sequence; 0 when not given (reported at parse when a budget needs it).</param>
internal sealed record BudgetSpec(
    string BudgetText,
    long BudgetBytes,
    int Batch,
    int Sequence,
    SourceSite? BudgetSite,
    SourceSite? SequenceSite);
