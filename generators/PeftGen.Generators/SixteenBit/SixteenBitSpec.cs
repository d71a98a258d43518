using PeftGen.Generators.Diagnostics;

namespace PeftGen.Generators.SixteenBit;

/// <summary>
/// <c>[PeftModel(..., BaseDType = BaseDType.BFloat16)]</c>: the 16-bit dtype the model's frozen float projection bases
/// are built in. Absent (null) for float32, the default.
/// </summary>
/// <param name="DType">The runtime <c>BaseDType</c> member name (<c>BFloat16</c> or <c>Float16</c>).</param>
/// <param name="Site">The <c>BaseDType</c> argument.</param>
internal sealed record SixteenBitSpec(string DType, SourceSite? Site);
