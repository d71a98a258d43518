namespace PeftGen;

/// <summary>
/// What merging into (or unmerging from) a 4-bit base cost: the merged weight had to be quantized again, so it
/// differs from the exact merge by this much, and so do the outputs.
/// </summary>
/// <param name="MaxAbsError">Largest |requantized − exact| over the weight.</param>
/// <param name="MeanAbsError">Mean |requantized − exact| over the weight.</param>
public sealed record RequantizationReport(float MaxAbsError, float MeanAbsError);
