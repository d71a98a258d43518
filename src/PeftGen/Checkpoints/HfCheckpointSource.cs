using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json.Nodes;
using PeftGen.IO;
using static TorchSharp.torch;

namespace PeftGen.Checkpoints;

/// <summary>
/// A Hugging Face pretrained-model folder read as an <see cref="ICheckpointSource"/>: <c>model.safetensors</c>, or the
/// shards that <c>model.safetensors.index.json</c> lists. Unlike a strict open that stops at the first bad shard, it
/// records shard problems, so a load reports them with every tensor mismatch. Headers are read and validated when it opens; tensor data
/// is read one tensor at a time, on demand.
/// </summary>
/// <remarks>
/// The index is untrusted input, read by the same rules as <see cref="HfCheckpoint"/> (shard names are plain
/// <c>.safetensors</c> file names in the folder; a malformed index is a <see cref="PeftFormatException"/>). A shard that is absent or not
/// a valid safetensors file, a tensor the index places in a shard that does not hold it, and a tensor a shard holds
/// but the index does not list are <see cref="Problems"/>, so a load reports them together with every other mismatch.
/// </remarks>
public sealed class HfCheckpointSource : ICheckpointSource
{
    private readonly Dictionary<string, SafeTensorsFile> _fileOf = new(StringComparer.Ordinal);
    private readonly List<SafeTensorsFile> _files = new();
    private readonly List<string> _problems = new();

    private HfCheckpointSource(string folder) => Description = folder;

    /// <summary>Where the checkpoint is.</summary>
    public string Description { get; }

    /// <summary>The folder's parsed <c>config.json</c>, or null when it has none.</summary>
    public JsonObject? Config { get; private set; }

    /// <summary>Whether the weights are sharded (read through the index).</summary>
    public bool IsSharded { get; private set; }

    /// <inheritdoc />
    public IReadOnlyCollection<string> Names => _fileOf.Keys;

    /// <inheritdoc />
    public IReadOnlyList<string> Problems => _problems;

    /// <summary>Opens the folder's weights: the single file when there is one, else the shards its index lists.</summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">The folder has neither weights file.</exception>
    /// <exception cref="PeftFormatException">The index, or the single weights file, is malformed.</exception>
    public static HfCheckpointSource Open(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"The checkpoint folder '{folder}' does not exist.");
        var source = new HfCheckpointSource(folder);
        try
        {
            source.Config = HfCheckpoint.ReadJsonObject(Path.Combine(folder, HfCheckpoint.ConfigFileName));

            var index = Path.Combine(folder, HfCheckpoint.IndexFileName);
            var single = Path.Combine(folder, HfCheckpoint.SingleFileName);
            // As transformers does: a single weights file wins over an index.
            if (File.Exists(single)) source.Add(SafeTensorsFile.Open(single), null);
            else if (File.Exists(index)) source.OpenShards(folder, index);
            else throw new FileNotFoundException($"The checkpoint folder '{folder}' has neither '{HfCheckpoint.SingleFileName}' nor '{HfCheckpoint.IndexFileName}'.", single);
            return source;
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public CheckpointTensorInfo Info(string name)
    {
        var info = FileOf(name).TensorInfo(name);
        return new CheckpointTensorInfo(info.DType, info.Shape);
    }

    /// <inheritdoc />
    public Tensor Read(string name) => FileOf(name).Read(name);

    /// <summary>Closes every file.</summary>
    public void Dispose()
    {
        foreach (var file in _files) file.Dispose();
        _files.Clear();
    }

    private SafeTensorsFile FileOf(string name) => _fileOf.TryGetValue(name, out var file)
        ? file
        : throw new KeyNotFoundException($"The checkpoint '{Description}' has no readable tensor '{name}'.");

    private void OpenShards(string folder, string index)
    {
        IsSharded = true;
        foreach (var (shard, names) in HfCheckpoint.ReadIndex(index).WeightMap.GroupBy(e => e.Value, e => e.Key, StringComparer.Ordinal).Select(g => (g.Key, g.ToList())))
        {
            var path = Path.Combine(folder, shard);
            if (!File.Exists(path))
            {
                _problems.Add($"shard '{shard}' listed in {HfCheckpoint.IndexFileName} is missing ({names.Count} tensors)");
                continue;
            }
            SafeTensorsFile file;
            try
            {
                file = SafeTensorsFile.Open(path);
            }
            catch (PeftFormatException e)
            {
                _problems.Add($"shard '{shard}' cannot be read ({names.Count} tensors): {e.Detail}");
                continue;
            }
            Add(file, names);
            foreach (var name in names.Where(n => !file.Contains(n)))
                _problems.Add($"{HfCheckpoint.IndexFileName} places '{name}' in '{shard}', which does not hold it");
            foreach (var name in file.Names.Except(names, StringComparer.Ordinal))
                _problems.Add($"shard '{shard}' holds '{name}', which {HfCheckpoint.IndexFileName} does not list");
        }
    }

    private void Add(SafeTensorsFile file, IReadOnlyCollection<string>? listed)
    {
        _files.Add(file);
        foreach (var name in file.Names)
        {
            if (listed is null || listed.Contains(name)) _fileOf[name] = file;
        }
    }
}
