namespace PeftGen.Generators.Emit;

/// <summary><c>global::</c>-qualified runtime names used by generated code (enum members come from the specs, read from the enums).</summary>
internal static class RuntimeNames
{
    public const string LoraLinear = "global::PeftGen.LoraLinear";
    public const string LoraConfig = "global::PeftGen.LoraConfig";
    public const string ModelDims = "global::PeftGen.ModelDims";
    public const string PeftLayer = "global::PeftGen.PeftLayer";
    public const string PeftLayerKind = "global::PeftGen.PeftLayerKind";
    public const string PeftLayers = "global::PeftGen.PeftLayers";
    public const string IPeftModel = "global::PeftGen.IPeftModel";
    public const string LayerList = "global::System.Collections.Generic.List<global::PeftGen.PeftLayer>";
    public const string InvariantCulture = "global::System.Globalization.CultureInfo.InvariantCulture";

    public static string WeightLayout(string member) => "global::PeftGen.WeightLayout." + member;

    public static string QuantType(string member) => "global::PeftGen.QuantType." + member;

    public static string ComputeDType(string member) => "global::PeftGen.ComputeDType." + member;

    public static string SoftPromptInit(string member) => "global::PeftGen.SoftPromptInit." + member;

    public static string Tokenizer(string member) => "global::PeftGen.PeftTokenizer." + member;
}
