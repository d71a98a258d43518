using System;
using System.Collections.Generic;
using System.IO;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Unicode;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen.IO;

/// <summary>
/// A Hugging Face checkpoint folder opened for reading: <c>config.json</c> plus either <c>model.safetensors</c> or
/// shards <c>model-0000k-of-0000n.safetensors</c> listed by <c>model.safetensors.index.json</c>. Opening reads and
/// cross-checks every header (index against shards); tensors are then read one at a time, so loading streams.
/// </summary>
/// <remarks>Pickle checkpoints (<c>pytorch_model.bin</c>) are never read.</remarks>
public sealed class HfCheckpoint : IDisposable
{
    /// <summary>The model configuration file.</summary>
    public const string ConfigFileName = "config.json";

    /// <summary>The single-file weights name.</summary>
    public const string SingleFileName = "model.safetensors";

    /// <summary>The shard index name.</summary>
    public const string IndexFileName = "model.safetensors.index.json";

    private const long MaxJsonLength = 100_000_000;

    private readonly Dictionary<string, SafeTensorsFile> shards;
    private readonly Dictionary<string, SafeTensorsFile> owner;
    private readonly string[] names;

    private HfCheckpoint(string folder, JsonObject? config, Dictionary<string, SafeTensorsFile> shards, Dictionary<string, SafeTensorsFile> owner, long? totalSize)
    {
        Folder = folder;
        Config = config;
        this.shards = shards;
        this.owner = owner;
        TotalSize = totalSize;
        names = new List<string>(owner.Keys).ToArray();
        Array.Sort(names, StringComparer.Ordinal);
    }

    /// <summary>The checkpoint folder.</summary>
    public string Folder { get; }

    /// <summary>The parsed <c>config.json</c>, or <see langword="null"/> when the folder has none.</summary>
    public JsonObject? Config { get; }

    /// <summary>Whether the weights are sharded (an index file was used).</summary>
    public bool IsSharded => shards.Count > 1 || !shards.ContainsKey(SingleFileName);

    /// <summary>The shard file names (just <c>model.safetensors</c> when not sharded), in order.</summary>
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
    public long? TotalSize { get; }

    /// <summary>Every tensor name across all shards, in ordinal order.</summary>
    public IReadOnlyList<string> Names => names;

    /// <summary>Whether the checkpoint holds tensor <paramref name="name"/>.</summary>
    /// <param name="name">A tensor name.</param>
    /// <returns><see langword="true"/> if some shard holds it.</returns>
    public bool Contains(string name) => owner.ContainsKey(name);

    /// <summary>The header entry of tensor <paramref name="name"/> (dtype, shape, byte range in its shard).</summary>
    /// <param name="name">A tensor name.</param>
    /// <returns>The entry.</returns>
    /// <exception cref="KeyNotFoundException">No shard holds the tensor.</exception>
    public SafeTensorInfo TensorInfo(string name) => File(name).TensorInfo(name);

    /// <summary>The shard file (name only) that holds tensor <paramref name="name"/>.</summary>
    /// <param name="name">A tensor name.</param>
    /// <returns>For example <c>model-00002-of-00003.safetensors</c>.</returns>
    public string ShardOf(string name) => Path.GetFileName(File(name).FilePath);

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
    /// <returns>The open checkpoint; dispose it to close its shards.</returns>
    /// <exception cref="PeftFormatException">A file is malformed, a shard is missing, or the index and the shards disagree.</exception>
    public static HfCheckpoint Open(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"Checkpoint folder '{folder}' does not exist.");
        var config = ReadConfig(Path.Combine(folder, ConfigFileName));
        var single = Path.Combine(folder, SingleFileName);
        var index = Path.Combine(folder, IndexFileName);

        // Like transformers: a single weights file wins over an index.
        if (System.IO.File.Exists(single))
        {
            var file = SafeTensorsFile.Open(single);
            var owner = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
            foreach (var name in file.Names)
                owner.Add(name, file);
            return new HfCheckpoint(folder, config, new Dictionary<string, SafeTensorsFile> { [SingleFileName] = file }, owner, null);
        }
        if (System.IO.File.Exists(index))
            return OpenSharded(folder, config, index);
        var hint = System.IO.File.Exists(Path.Combine(folder, "pytorch_model.bin"))
            ? " It has pytorch_model.bin, a pickle file, which PeftGen never reads: convert it to safetensors."
            : "";
        throw new PeftFormatException(folder, null, $"the folder has neither {SingleFileName} nor {IndexFileName}.{hint}");
    }

    private static HfCheckpoint OpenSharded(string folder, JsonObject? config, string indexPath)
    {
        var (weightMap, totalSize) = ReadIndex(indexPath);
        var shards = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
        try
        {
            foreach (var shard in new SortedSet<string>(weightMap.Values, StringComparer.Ordinal))
            {
                var shardPath = Path.Combine(folder, shard);
                if (!System.IO.File.Exists(shardPath))
                    throw new PeftFormatException(indexPath, null, $"shard '{shard}' is listed but missing from the folder.");
                shards.Add(shard, SafeTensorsFile.Open(shardPath));
            }

            var owner = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
            var problems = new List<(string Tensor, string Problem)>();
            foreach (var (shard, file) in shards)
            {
                foreach (var name in file.Names)
                {
                    if (!weightMap.TryGetValue(name, out var listed))
                        problems.Add((name, $"tensor '{name}' is in shard '{shard}' but not in the index"));
                    else if (listed != shard)
                        problems.Add((name, $"tensor '{name}' is in shard '{shard}' but the index puts it in '{listed}'"));
                    else
                        owner.Add(name, file);
                }
            }
            foreach (var (name, shard) in weightMap)
            {
                if (!shards[shard].Contains(name))
                    problems.Add((name, $"tensor '{name}' is listed in shard '{shard}' but that shard does not hold it"));
            }
            if (problems.Count > 0)
            {
                problems.Sort((a, b) => string.CompareOrdinal(a.Problem, b.Problem));
                throw new PeftFormatException(indexPath, problems[0].Tensor,
                    "the index and the shards disagree: " + string.Join("; ", problems.ConvertAll(p => p.Problem)) + ".");
            }
            return new HfCheckpoint(folder, config, shards, owner, totalSize);
        }
        catch
        {
            foreach (var file in shards.Values)
                file.Dispose();
            throw;
        }
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

    private static JsonObject? ReadConfig(string path) => ReadJsonObject(path);

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
            : throw new KeyNotFoundException($"Checkpoint '{Folder}' holds no tensor '{name}'.");
    }

    /// <summary>Closes every shard.</summary>
    public void Dispose()
    {
        foreach (var file in shards.Values)
            file.Dispose();
    }
}
