using System.Globalization;
using System.Text.RegularExpressions;

namespace PeftGen.Checkpoints;

/// <summary>File names of Hugging Face's pretrained-model folder layout.</summary>
public static partial class HfLayout
{
    /// <summary>The model configuration.</summary>
    public const string ConfigFile = "config.json";

    /// <summary>The weights when they fit in one file.</summary>
    public const string SingleFile = "model.safetensors";

    /// <summary>The index of sharded weights: <c>{"metadata": {"total_size": …}, "weight_map": {key: shard file}}</c>.</summary>
    public const string IndexFile = "model.safetensors.index.json";

    /// <summary>The name of shard <paramref name="number"/> (1-based) of <paramref name="count"/>: <c>model-00001-of-00003.safetensors</c>.</summary>
    public static string ShardFile(int number, int count)
        => string.Create(CultureInfo.InvariantCulture, $"model-{number:D5}-of-{count:D5}.safetensors");

    /// <summary>Whether a file name is a weights file of this layout (single, shard or index).</summary>
    public static bool IsWeightsFile(string fileName)
        => fileName is SingleFile or IndexFile || ShardPattern().IsMatch(fileName);

    [GeneratedRegex(@"^model-\d{5}-of-\d{5}\.safetensors$", RegexOptions.CultureInvariant)]
    private static partial Regex ShardPattern();
}
