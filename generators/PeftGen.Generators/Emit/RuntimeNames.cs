namespace PeftGen.Generators.Emit;

/// <summary><c>global::</c>-qualified runtime names used by generated code, and enum member names by value.</summary>
internal static class RuntimeNames
{
    public const string LoraLinear = "global::PeftGen.LoraLinear";
    public const string LoraConfig = "global::PeftGen.LoraConfig";
    public const string ModelDims = "global::PeftGen.ModelDims";
    public const string PeftLayer = "global::PeftGen.PeftLayer";
    public const string PeftLayerKind = "global::PeftGen.PeftLayerKind";
    public const string IPeftModel = "global::PeftGen.IPeftModel";
    public const string LayerList = "global::System.Collections.Generic.List<global::PeftGen.PeftLayer>";
    public const string ProjectionList = "global::System.Collections.Generic.List<global::PeftGen.LoraLinear>";
    public const string InvariantCulture = "global::System.Globalization.CultureInfo.InvariantCulture";

    public static string Enum(string type, int value, params string[] names)
        => value >= 0 && value < names.Length ? $"global::PeftGen.{type}.{names[value]}" : $"((global::PeftGen.{type})({value}))";

    public static string WeightLayout(int value) => Enum("WeightLayout", value, "OutIn", "InOut");

    public static string QuantType(int value) => Enum("QuantType", value, "Nf4", "Fp4");

    public static string ComputeDType(int value) => Enum("ComputeDType", value, "Auto", "Float32", "BFloat16", "Float16");

    public static string SoftPromptInit(int value) => Enum("SoftPromptInit", value, "Random", "SampleVocab", "Text");

    public static string Tokenizer(int value) => Enum("PeftTokenizer", value, "None", "Gpt2");
}
