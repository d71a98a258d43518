using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using PeftGen.Formats.Json;
using PeftGen.Formats.SafeTensors;
using PeftGen.IO;
using static TorchSharp.torch;

namespace PeftGen.Formats.HuggingFace;

/// <summary>
/// Saves weights in the Hugging Face layout that <see cref="HfCheckpoint"/> (and transformers) read:
/// <c>config.json</c>, then <c>model.safetensors</c>, or shards <c>model-0000k-of-0000n.safetensors</c> plus
/// <c>model.safetensors.index.json</c> when the weights exceed the shard size.
/// </summary>
/// <remarks>
/// Every file is written atomically, the index last, and leftovers of an earlier save with another shard count are
/// removed afterwards. The set of files is not replaced as one unit: to survive a crash mid-save with a usable
/// checkpoint, save into a fresh folder and rename it.
/// </remarks>
public static partial class HfCheckpointWriter
{
    /// <summary>transformers' default <c>max_shard_size</c> ("5GB").</summary>
    public const long DefaultMaxShardBytes = 5_000_000_000;

    private static readonly Dictionary<string, string> ShardMetadata = new() { ["format"] = "pt" };

    /// <summary>Writes <paramref name="tensors"/> (and <paramref name="config"/>) into <paramref name="folder"/>.</summary>
    /// <param name="folder">The checkpoint folder; created if missing.</param>
    /// <param name="tensors">
    /// The weights, in the order they should fill the shards (the dictionary's enumeration order; transformers uses the
    /// module order). Any device; copied to the CPU one at a time.
    /// </param>
    /// <param name="config">The model configuration written as <c>config.json</c>, or <see langword="null"/> to leave that file alone.</param>
    /// <param name="maxShardBytes">The largest shard; a single tensor larger than this gets a shard of its own.</param>
    /// <returns>The weight file names written, in order.</returns>
    public static IReadOnlyList<string> Save(string folder, IReadOnlyDictionary<string, Tensor> tensors, JsonObject? config = null, long maxShardBytes = DefaultMaxShardBytes)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(maxShardBytes, 0);
        Directory.CreateDirectory(folder);

        var shards = Plan(tensors, maxShardBytes, out var totalSize);
        if (config is not null)
            AtomicFile.WriteAllText(Path.Combine(folder, HfCheckpoint.ConfigFileName), PythonJson.Serialize(config) + "\n");

        var written = new List<string>(shards.Count);
        if (shards.Count <= 1)
        {
            SafeTensorsFile.Save(Path.Combine(folder, HfCheckpoint.SingleFileName), shards.Count == 0 ? new Dictionary<string, Tensor>() : shards[0], ShardMetadata);
            written.Add(HfCheckpoint.SingleFileName);
        }
        else
        {
            var weightMap = new JsonObject();
            for (var i = 0; i < shards.Count; i++)
            {
                var name = ShardName(i + 1, shards.Count);
                SafeTensorsFile.Save(Path.Combine(folder, name), shards[i], ShardMetadata);
                foreach (var tensor in shards[i].Keys)
                    weightMap[tensor] = name;
                written.Add(name);
            }
            var index = new JsonObject
            {
                ["metadata"] = new JsonObject { ["total_size"] = totalSize },
                ["weight_map"] = weightMap,
            };
            AtomicFile.WriteAllText(Path.Combine(folder, HfCheckpoint.IndexFileName), PythonJson.Serialize(index) + "\n");
        }
        RemoveLeftovers(folder, written);
        return written;
    }

    /// <summary>The shard file name transformers uses: <c>model-00002-of-00005.safetensors</c>.</summary>
    /// <param name="number">The 1-based shard number.</param>
    /// <param name="count">The number of shards.</param>
    /// <returns>The file name.</returns>
    public static string ShardName(int number, int count) =>
        string.Create(CultureInfo.InvariantCulture, $"model-{number:00000}-of-{count:00000}.safetensors");

    private static List<Dictionary<string, Tensor>> Plan(IReadOnlyDictionary<string, Tensor> tensors, long maxShardBytes, out long totalSize)
    {
        var shards = new List<Dictionary<string, Tensor>>();
        Dictionary<string, Tensor>? current = null;
        long currentSize = 0;
        totalSize = 0;
        foreach (var (name, tensor) in tensors)
        {
            ArgumentNullException.ThrowIfNull(tensor, name);
            var size = checked(tensor.NumberOfElements * tensor.ElementSize);
            totalSize = checked(totalSize + size);
            if (current is null || (current.Count > 0 && currentSize + size > maxShardBytes))
            {
                current = new Dictionary<string, Tensor>(StringComparer.Ordinal);
                shards.Add(current);
                currentSize = 0;
            }
            current.Add(name, tensor);
            currentSize += size;
        }
        return shards;
    }

    private static void RemoveLeftovers(string folder, List<string> written)
    {
        var keep = new HashSet<string>(written, StringComparer.Ordinal);
        var sharded = written.Count > 1 || written[0] != HfCheckpoint.SingleFileName;
        foreach (var path in Directory.EnumerateFiles(folder))
        {
            var name = Path.GetFileName(path);
            var stale = !keep.Contains(name) && (ShardPattern().IsMatch(name)
                || name == HfCheckpoint.SingleFileName
                || (!sharded && name == HfCheckpoint.IndexFileName));
            if (stale)
                File.Delete(path);
        }
    }

    [GeneratedRegex(@"^model-\d{5}-of-\d{5}\.safetensors$", RegexOptions.CultureInvariant)]
    private static partial Regex ShardPattern();
}
