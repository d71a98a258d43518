using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen.Inference;

/// <summary>
/// The keys and values of the positions a model has already seen, per attention layer, so that decoding feeds one new
/// position per step instead of the whole sequence (a KV cache).
/// </summary>
/// <remarks>
/// <para>
/// A cache is ambient: <see cref="Use"/> makes it the one the current call sees, and an attention layer calls
/// <see cref="Extend"/> with its new keys and values (<c>batch × heads × new × headDim</c>) to get them appended to
/// what it stored before. With no cache in use <see cref="Extend"/> returns its inputs, so a layer written this way runs
/// unchanged in training. Position embeddings start at <see cref="PastLength"/>, and a soft prompt is prepended only
/// while nothing is cached (see <see cref="TokenEmbedding"/>).
/// </para>
/// <para>
/// After each forward pass the caller calls <see cref="Commit"/>, which checks that every layer holds the same number
/// of positions and makes that the new <see cref="Length"/>. Tensors live outside every dispose scope until the cache is
/// cleared, trimmed or disposed.
/// </para>
/// </remarks>
public sealed class KeyValueCache : IDisposable
{
    private static readonly AsyncLocal<KeyValueCache?> Ambient = new();

    // Insertion order is the layers' order in the forward pass, which keeps KeepRows and Dispose deterministic.
    private readonly Dictionary<object, int> slots = new(ReferenceEqualityComparer.Instance);
    private readonly List<(Tensor Keys, Tensor Values)> entries = [];
    private bool disposed;

    /// <summary>The cache the current call uses, or null.</summary>
    public static KeyValueCache? Current => Ambient.Value;

    /// <summary>Positions before the current forward pass's input: the cache's <see cref="Length"/>, or 0 with no cache in use.</summary>
    public static long PastLength => Ambient.Value?.Length ?? 0;

    /// <summary>Positions every layer holds after the last <see cref="Commit"/>.</summary>
    public long Length { get; private set; }

    /// <summary>Rows (batch entries) the cache holds; 0 while empty.</summary>
    public long Rows => entries.Count == 0 ? 0 : entries[0].Keys.shape[0];

    /// <summary>Attention layers that stored keys and values.</summary>
    public int Layers => entries.Count;

    /// <summary>Makes this the cache of the current call (and of the calls it makes) until the result is disposed.</summary>
    public IDisposable Use()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        return AmbientScope.Push(Ambient, this);
    }

    /// <summary>
    /// Appends an attention layer's new keys and values (<c>batch × kvHeads × new × headDim</c>) to the ones it stored
    /// before and returns all of them (<c>batch × kvHeads × (past + new) × headDim</c>); with no cache in use, returns
    /// the inputs. Call it before repeating grouped key/value heads, so the cache holds each head once.
    /// </summary>
    /// <param name="layer">The calling layer (its identity names its slot).</param>
    /// <param name="keys">The new positions' keys.</param>
    /// <param name="values">The new positions' values.</param>
    public static (Tensor Keys, Tensor Values) Extend(object layer, Tensor keys, Tensor values)
    {
        ArgumentNullException.ThrowIfNull(layer);
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(values);
        var cache = Ambient.Value;
        return cache is null ? (keys, values) : cache.Append(layer, keys, values);
    }

    private (Tensor Keys, Tensor Values) Append(object layer, Tensor keys, Tensor values)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (keys.dim() != 4 || values.dim() != 4)
            throw new ArgumentException($"Keys and values must be batch × heads × positions × headDim, got [{string.Join(", ", keys.shape)}] and [{string.Join(", ", values.shape)}].");
        Tensor allKeys, allValues;
        if (slots.TryGetValue(layer, out int slot))
        {
            var (oldKeys, oldValues) = entries[slot];
            if (oldKeys.shape[2] != Length)
                throw new InvalidOperationException($"An attention layer extended the cache twice in one forward pass (it holds {oldKeys.shape[2]} positions, {Length} are committed): call Commit after each pass.");
            if (oldKeys.shape[0] != keys.shape[0] || oldKeys.shape[1] != keys.shape[1] || oldKeys.shape[3] != keys.shape[3])
                throw new ArgumentException($"New keys [{string.Join(", ", keys.shape)}] do not continue the cached [{string.Join(", ", oldKeys.shape)}].");
            allKeys = cat([oldKeys, keys.to(oldKeys.dtype)], 2);
            allValues = cat([oldValues, values.to(oldValues.dtype)], 2);
            oldKeys.Dispose();
            oldValues.Dispose();
            entries[slot] = (allKeys.DetachFromDisposeScope(), allValues.DetachFromDisposeScope());
        }
        else
        {
            if (Length != 0)
                throw new InvalidOperationException($"A layer the cache has not seen joined after {Length} positions were committed.");
            allKeys = keys.detach().clone().DetachFromDisposeScope();
            allValues = values.detach().clone().DetachFromDisposeScope();
            slots.Add(layer, entries.Count);
            entries.Add((allKeys, allValues));
        }
        // The caller gets aliases it may dispose with its scope; the stored tensors stay.
        return (allKeys.alias(), allValues.alias());
    }

    /// <summary>
    /// Ends a forward pass: every layer must hold the same number of positions, which becomes <see cref="Length"/>.
    /// Returns the positions added. A model whose layers never called <see cref="Extend"/> leaves the cache empty (0).
    /// </summary>
    public long Commit()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (entries.Count == 0) return 0;
        long length = entries[0].Keys.shape[2];
        foreach (var (keys, _) in entries)
        {
            if (keys.shape[2] != length)
                throw new InvalidOperationException($"Attention layers hold different numbers of positions ({keys.shape[2]} and {length}): a layer skipped the cache in this pass.");
        }
        long added = length - Length;
        Length = length;
        return added;
    }

    /// <summary>Keeps only the given rows, in the given order (rows whose generation stopped leave the batch).</summary>
    public void KeepRows(IReadOnlyList<long> rows)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        ArgumentNullException.ThrowIfNull(rows);
        if (entries.Count == 0) return;
        using var index = tensor(rows.ToArray(), device: entries[0].Keys.device);
        for (int i = 0; i < entries.Count; i++)
        {
            var (keys, values) = entries[i];
            entries[i] = (keys.index_select(0, index).DetachFromDisposeScope(), values.index_select(0, index).DetachFromDisposeScope());
            keys.Dispose();
            values.Dispose();
        }
    }

    /// <summary>Forgets every position (the next pass starts at position 0).</summary>
    public void Clear()
    {
        foreach (var (keys, values) in entries)
        {
            keys.Dispose();
            values.Dispose();
        }
        entries.Clear();
        slots.Clear();
        Length = 0;
    }

    /// <summary>Bytes the cached keys and values take.</summary>
    public long Bytes => entries.Sum(e => e.Keys.NumberOfElements * e.Keys.ElementSize + e.Values.NumberOfElements * e.Values.ElementSize);

    /// <inheritdoc />
    public void Dispose()
    {
        if (disposed) return;
        Clear();
        disposed = true;
    }
}
