using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Unicode;
using TorchSharp;
using PeftGen.Formats.SafeTensors;
using PeftGen.Formats;
using static TorchSharp.torch;

namespace PeftGen.Formats.HuggingFace;

/// <summary>
/// A Hugging Face checkpoint folder opened for reading: <c>config.json</c> plus either <c>model.safetensors</c> or
/// shards <c>model-0000k-of-0000n.safetensors</c> listed by <c>model.safetensors.index.json</c>. Opening reads and
/// cross-checks every header (index against shards); tensors are then read one at a time, so loading streams. It is
/// the <see cref="ICheckpointSource"/> that <see cref="Checkpoints.PretrainedLoader"/> reads.
/// </summary>
/// <remarks>
/// <para><see cref="ReadMode.Strict"/> refuses a folder with any problem. <see cref="ReadMode.Collecting"/> records
/// what leaves the rest readable in <see cref="Problems"/> instead: a shard that is absent or not a valid safetensors
/// file (its tensors are then not in <see cref="Names"/>), a tensor the index places in a shard that does not hold it,
/// and a tensor a shard holds but the index does not place there (neither is readable). Either way the index and
/// <c>config.json</c> are untrusted input read strictly (shard names are plain <c>.safetensors</c> file names in the
/// folder): malformed, they are a <see cref="PeftFormatException"/>.</para>
/// <para>Pickle checkpoints (<c>pytorch_model.bin</c>) are never read.</para>
/// </remarks>
public sealed class HfCheckpoint : ICheckpointSource
{
    /// <summary>The model configuration file.</summary>
    public const string ConfigFileName = "config.json";

    /// <summary>The single-file weights name.</summary>
    public const string SingleFileName = "model.safetensors";

    /// <summary>The shard index name.</summary>
    public const string IndexFileName = "model.safetensors.index.json";

    private const long MaxJsonLength = 100_000_000;

    private readonly Dictionary<string, SafeTensorsFile> shards = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SafeTensorsFile> owner = new(StringComparer.Ordinal);
    private readonly List<CheckpointMismatch> problems = new();
    private string[] names = [];

    private HfCheckpoint(string folder) => Folder = folder;

    /// <summary>The checkpoint folder.</summary>
    public string Folder { get; }

    /// <summary>The parsed <c>config.json</c>, or <see langword="null"/> when the folder has none.</summary>
    public JsonObject? Config { get; private set; }

    /// <summary>Whether the weights are sharded (an index file was used).</summary>
    public bool IsSharded { get; private set; }

    /// <summary>The shard file names that were opened (just <c>model.safetensors</c> when not sharded), in order.</summary>
    public IReadOnlyList<string> ShardFiles
    {
        get
        {
            var files = new List<string>(shards.Keys);
            files.Sort(StringComparer.Ordinal);
            return files;
        }
    }

    /// <summary>The index's <c>metadata.total_size</c>, when it states one.</summary>
    public long? TotalSize { get; private set; }

    /// <summary>Every readable tensor name across all shards, in ordinal order.</summary>
    public IReadOnlyList<string> Names => names;

    /// <summary>With <see cref="ReadMode.Collecting"/>, what is wrong with the folder's files (empty when nothing is); always empty in strict mode.</summary>
    public IReadOnlyList<CheckpointMismatch> Problems => problems;

    string ICheckpointSource.Description => Folder;

    IReadOnlyCollection<string> ICheckpointSource.Names => names;

    /// <summary>Whether the checkpoint holds tensor <paramref name="name"/>.</summary>
    /// <param name="name">A tensor name.</param>
    /// <returns><see langword="true"/> if some shard holds it.</returns>
    public bool Contains(string name) => owner.ContainsKey(name);

    /// <summary>The header entry of tensor <paramref name="name"/> (dtype, shape, byte range in its shard).</summary>
    /// <param name="name">A tensor name.</param>
    /// <returns>The entry.</returns>
    /// <exception cref="KeyNotFoundException">No shard holds the tensor.</exception>
    public SafeTensorInfo TensorInfo(string name) => File(name).TensorInfo(name);

    /// <inheritdoc />
    public CheckpointTensorInfo Info(string name)
    {
        var info = TensorInfo(name);
        return new CheckpointTensorInfo(info.DType, info.Shape);
    }

    /// <summary>The shard file (name only) that holds tensor <paramref name="name"/>.</summary>
    /// <param name="name">A tensor name.</param>
    /// <returns>For example <c>model-00002-of-00003.safetensors</c>.</returns>
    public string ShardOf(string name) => Path.GetFileName(File(name).FilePath);

    Tensor ICheckpointSource.Read(string name) => Read(name);

    void ICheckpointSource.ReadInto(string name, Tensor target) => File(name).ReadInto(name, target);

    /// <summary>Reads one tensor, optionally converting floating-point data to <paramref name="dtype"/>.</summary>
    /// <param name="name">A tensor name.</param>
    /// <param name="device">Where the tensor goes; the CPU when <see langword="null"/>.</param>
    /// <param name="dtype">The model's floating-point dtype; see <see cref="ConvertFloating"/>.</param>
    /// <returns>A new tensor the caller owns.</returns>
    public Tensor Read(string name, Device? device = null, ScalarType? dtype = null)
    {
        var tensor = File(name).Read(name);
        if (dtype is { } target)
        {
            var converted = ConvertFloating(tensor, target);
            if (!ReferenceEquals(converted, tensor))
                tensor.Dispose();
            tensor = converted;
        }
        if (device is null || device.type == DeviceType.CPU)
            return tensor;
        var moved = tensor.to(device);
        tensor.Dispose();
        return moved;
    }

    /// <summary>
    /// Converts a floating-point tensor (F16, BF16, F32, F64) to the floating-point <paramref name="dtype"/>; returns
    /// any other tensor (integers, booleans) or one already of that dtype unchanged (the same instance).
    /// </summary>
    /// <param name="tensor">The tensor as stored.</param>
    /// <param name="dtype">The model's dtype; must be a floating-point type.</param>
    /// <returns><paramref name="tensor"/> itself, or a new converted tensor.</returns>
    public static Tensor ConvertFloating(Tensor tensor, ScalarType dtype)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (dtype is not (ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64))
            throw new ArgumentException($"The model dtype must be floating-point, not {dtype}.", nameof(dtype));
        if (tensor.dtype == dtype || !tensor.is_floating_point())
            return tensor;
        return tensor.to_type(dtype);
    }

    /// <summary>Opens <paramref name="folder"/> and validates its files.</summary>
    /// <param name="folder">A folder in the Hugging Face layout.</param>
    /// <param name="mode">Whether a problem with the shards is an exception (strict) or recorded in <see cref="Problems"/>.</param>
    /// <returns>The open checkpoint; dispose it to close its shards.</returns>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="PeftFormatException">The folder has no safetensors weights, <c>config.json</c>, the index or
    /// the single weights file is malformed, or (strict) a shard is missing or malformed or the index and the shards
    /// disagree.</exception>
    public static HfCheckpoint Open(string folder, ReadMode mode = ReadMode.Strict)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"Checkpoint folder '{folder}' does not exist.");
        var checkpoint = new HfCheckpoint(folder);
        try
        {
            checkpoint.Config = ReadJsonObject(Path.Combine(folder, ConfigFileName));
            var single = Path.Combine(folder, SingleFileName);
            var index = Path.Combine(folder, IndexFileName);
            // Like transformers: a single weights file wins over an index.
            if (System.IO.File.Exists(single))
            {
                var file = SafeTensorsFile.Open(single);
                checkpoint.shards.Add(SingleFileName, file);
                foreach (var name in file.Names)
                    checkpoint.owner.Add(name, file);
            }
            else if (System.IO.File.Exists(index))
            {
                checkpoint.OpenShards(index, mode);
            }
            else
            {
                var hint = System.IO.File.Exists(Path.Combine(folder, "pytorch_model.bin"))
                    ? " It has pytorch_model.bin, a pickle file, which PeftGen never reads: convert it to safetensors."
                    : "";
                throw new PeftFormatException(folder, null, $"the folder has neither {SingleFileName} nor {IndexFileName}.{hint}");
            }
            checkpoint.names = new List<string>(checkpoint.owner.Keys).ToArray();
            Array.Sort(checkpoint.names, StringComparer.Ordinal);
            return checkpoint;
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    private void OpenShards(string indexPath, ReadMode mode)
    {
        IsSharded = true;
        var (weightMap, totalSize) = ReadIndex(indexPath);
        TotalSize = totalSize;
        var listed = weightMap.GroupBy(e => e.Value, e => e.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
        foreach (var shard in listed.Keys.Order(StringComparer.Ordinal))
        {
            var shardPath = Path.Combine(Folder, shard);
            if (!System.IO.File.Exists(shardPath))
            {
                var missing = $"shard '{shard}' is listed but missing from the folder ({listed[shard].Count} tensors)";
                if (mode == ReadMode.Strict) throw new PeftFormatException(indexPath, null, missing + ".");
                problems.Add(new(CheckpointMismatchKind.File, "", missing));
                continue;
            }
            try
            {
                shards.Add(shard, SafeTensorsFile.Open(shardPath));
            }
            catch (PeftFormatException e) when (mode == ReadMode.Collecting)
            {
                problems.Add(new(CheckpointMismatchKind.File, "", $"shard '{shard}' cannot be read ({listed[shard].Count} tensors): {e.Detail}"));
            }
        }

        // A tensor is readable when the shard the index names holds it; every other disagreement is a problem.
        var disagreements = new List<(string Tensor, string Problem)>();
        foreach (var (shard, file) in shards)
        {
            foreach (var name in file.Names)
            {
                if (!weightMap.TryGetValue(name, out var placed))
                    disagreements.Add((name, $"tensor '{name}' is in shard '{shard}' but not in the index"));
                else if (placed != shard)
                    disagreements.Add((name, $"tensor '{name}' is in shard '{shard}' but the index puts it in '{placed}'"));
                else
                    owner.Add(name, file);
            }
        }
        foreach (var (name, shard) in weightMap)
        {
            if (shards.TryGetValue(shard, out var file) && !file.Contains(name))
                disagreements.Add((name, $"tensor '{name}' is listed in shard '{shard}' but that shard does not hold it"));
        }
        disagreements.Sort((a, b) => string.CompareOrdinal(a.Problem, b.Problem));
        if (disagreements.Count > 0 && mode == ReadMode.Strict)
            throw new PeftFormatException(indexPath, disagreements[0].Tensor,
                "the index and the shards disagree: " + string.Join("; ", disagreements.Select(p => p.Problem)) + ".");
        problems.AddRange(disagreements.Select(p => new CheckpointMismatch(CheckpointMismatchKind.File, p.Tensor, p.Problem)));
    }

    /// <summary>
    /// The index's <c>weight_map</c> (tensor name → shard file name, each a plain <c>.safetensors</c> name in the
    /// folder) and <c>metadata.total_size</c>; any malformed part is a <see cref="PeftFormatException"/>.
    /// </summary>
    internal static (Dictionary<string, string> WeightMap, long? TotalSize) ReadIndex(string path)
    {
        var root = ReadJsonObject(path) ?? throw new PeftFormatException(path, null, "the index file is missing.");
        var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
        if (root["weight_map"] is not JsonObject map)
            throw new PeftFormatException(path, null, "'weight_map' must be an object of tensor name to shard file.");
        foreach (var (name, value) in map)
        {
            if (value is not JsonValue shardValue || !shardValue.TryGetValue<string>(out var shard))
                throw new PeftFormatException(path, name, "the shard in 'weight_map' must be a file name string.");
            if (shard.Length == 0 || shard != Path.GetFileName(shard) || shard is "." or ".." || !shard.EndsWith(".safetensors", StringComparison.Ordinal))
                throw new PeftFormatException(path, name, $"shard '{shard}' must be a plain .safetensors file name in the checkpoint folder.");
            weightMap.Add(name, shard);
        }
        long? totalSize = null;
        if (root["metadata"] is JsonNode metadata)
        {
            if (metadata is not JsonObject metadataObject)
                throw new PeftFormatException(path, null, "'metadata' must be an object.");
            if (metadataObject["total_size"] is JsonNode total)
            {
                if (total is not JsonValue totalValue || !TryGetWholeNumber(totalValue, out var size) || size < 0)
                    throw new PeftFormatException(path, null, "'metadata.total_size' must be a non-negative integer.");
                totalSize = size;
            }
        }
        if (weightMap.Count == 0)
            throw new PeftFormatException(path, null, "'weight_map' lists no tensors.");
        return (weightMap, totalSize);
    }

    // transformers writes total_size as an integer; some tools write it as a float such as 1.0e9.
    private static bool TryGetWholeNumber(JsonValue value, out long result)
    {
        result = 0;
        if (value.GetValueKind() != JsonValueKind.Number)
            return false;
        var element = value.GetValue<JsonElement>();
        if (element.TryGetInt64(out result))
            return true;
        if (element.TryGetDouble(out var d) && d == Math.Floor(d) && d is >= 0 and < 9e18)
        {
            result = (long)d;
            return true;
        }
        return false;
    }

    internal static JsonObject? ReadJsonObject(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
            return null;
        if (info.Length > MaxJsonLength)
            throw new PeftFormatException(path, null, $"the file has {info.Length} bytes; at most {MaxJsonLength} are accepted.");
        var bytes = System.IO.File.ReadAllBytes(path);
        if (!Utf8.IsValid(bytes))
            throw new PeftFormatException(path, null, "not valid UTF-8.");
        try
        {
            using var document = JsonDocument.Parse(bytes, new JsonDocumentOptions { AllowDuplicateProperties = false, MaxDepth = 64 });
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new PeftFormatException(path, null, $"the file must hold a JSON object, not {document.RootElement.ValueKind}.");
            return JsonObject.Create(document.RootElement.Clone());
        }
        catch (JsonException e)
        {
            throw new PeftFormatException(path, null, $"not valid JSON ({e.Message}).", e);
        }
    }

    private SafeTensorsFile File(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return owner.TryGetValue(name, out var file)
            ? file
            : throw new KeyNotFoundException($"Checkpoint '{Folder}' holds no readable tensor '{name}'.");
    }

    /// <summary>Closes every shard.</summary>
    public void Dispose()
    {
        foreach (var file in shards.Values)
            file.Dispose();
        shards.Clear();
    }
}
