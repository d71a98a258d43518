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
/// of positions and makes that the new <see cref="Length"/>. Each layer's keys and values live in a buffer with room
/// for more positions (grown by doubling), so a step writes one position instead of copying the whole cache; the
/// buffers live outside every dispose scope until the cache is cleared, trimmed or disposed.
/// </para>
/// <para>
/// Rows of different lengths share a batch by left padding: <see cref="SetInputMask"/> marks which positions of the
/// next pass are real. Then <see cref="PositionIds"/> numbers each row's real positions from 0 and
/// <see cref="CausalAttention"/> hides padding keys, so each row computes what it would alone. Without a mask every
/// position is real and nothing extra is computed.
/// </para>
/// </remarks>
public sealed class KeyValueCache : IDisposable
{
    private static readonly AsyncLocal<KeyValueCache?> Ambient = new();

    // Insertion order is the layers' order in the forward pass, which keeps KeepRows and Dispose deterministic.
    private readonly Dictionary<object, int> slots = new(ReferenceEqualityComparer.Instance);
    private readonly List<Slot> entries = [];
    // Which committed positions of each row are real (rows × Length), or null while every one is.
    private Tensor? validKeys;
    // Which positions of the pass in progress are real (rows × new), or null when every one is.
    private Tensor? pendingValid;
    // The attention mask of the pass in progress (see AttentionMask).
    private Tensor? passMask;
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

    /// <summary>Whether some committed or pending position is padding (rows then attend through a mask).</summary>
    public bool HasPadding => validKeys is not null || pendingValid is not null;

    /// <summary>Makes this the cache of the current call (and of the calls it makes) until the result is disposed.</summary>
    public IDisposable Use()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        return AmbientScope.Push(Ambient, this);
    }

    /// <summary>
    /// Marks which positions of the next forward pass's input are real (<c>batch × new</c>, bool; false for left
    /// padding). Padding keys are hidden from every query and position ids skip them. Call it before the pass; a pass
    /// without a mask is all real positions.
    /// </summary>
    /// <param name="mask">The input's real positions.</param>
    public void SetInputMask(Tensor mask)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        ArgumentNullException.ThrowIfNull(mask);
        if (mask.dim() != 2 || mask.dtype != ScalarType.Bool)
            throw new ArgumentException($"The input mask must be a bool batch × positions tensor, got {mask.dtype} [{string.Join(", ", mask.shape)}].", nameof(mask));
        if (entries.Count > 0 && mask.shape[0] != Rows)
            throw new ArgumentException($"The input mask has {mask.shape[0]} rows; the cache holds {Rows}.", nameof(mask));
        pendingValid?.Dispose();
        pendingValid = mask.detach().clone().DetachFromDisposeScope();
    }

    /// <summary>
    /// Puts <paramref name="positions"/> real positions before the pending input mask (a soft prompt's virtual tokens,
    /// prepended by <see cref="TokenEmbedding"/>). Does nothing without a mask.
    /// </summary>
    public static void PrependRealPositions(long positions)
    {
        var cache = Ambient.Value;
        if (cache?.pendingValid is not { } pending || positions == 0) return;
        var head = ones(pending.shape[0], positions, dtype: ScalarType.Bool, device: pending.device);
        cache.pendingValid = cat([head, pending], 1).DetachFromDisposeScope();
        head.Dispose();
        pending.Dispose();
    }

    /// <summary>
    /// Position ids of the current pass's <paramref name="length"/> positions: <c>PastLength … PastLength + length − 1</c>
    /// (shape <c>length</c>) without padding; with padding (<c>batch × length</c>) each row's real positions are numbered
    /// from 0 as if the row were alone (a padding position gets its next real position's id, and is never attended).
    /// </summary>
    public static Tensor PositionIds(long length, Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        var cache = Ambient.Value;
        long past = cache?.Length ?? 0;
        if (cache is null || !cache.HasPadding)
        {
            using Scalar first = past.ToScalar(), end = (past + length).ToScalar();
            return arange(first, end, dtype: ScalarType.Int64, device: device);
        }
        using var scope = NewDisposeScope();
        var all = cache.AllValid(length, device);
        using Scalar one = 1.ToScalar(), zero = 0.ToScalar();
        var ids = all.to(ScalarType.Int64).cumsum(1).narrow(1, past, length).sub(one);
        return ids.clamp_min(zero).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The attention mask of the current pass (<c>batch × 1 × queries × keys</c>, true where a query may attend), or
    /// null when there is no padding: query i (absolute position keys − queries + i) sees the real keys up to itself,
    /// and always itself, so a padding query stays finite.
    /// </summary>
    public static Tensor? AttentionMask(long queries, long keys, Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        var cache = Ambient.Value;
        if (cache is null || !cache.HasPadding) return null;
        // Every layer of a pass asks for the same mask: it is built once and kept until the pass is committed.
        if (cache.passMask is not { } kept || kept.shape[2] != queries || kept.shape[3] != keys)
        {
            cache.passMask?.Dispose();
            cache.passMask = cache.BuildMask(queries, keys, device);
        }
        return cache.passMask.alias();
    }

    private Tensor BuildMask(long queries, long keys, Device device)
    {
        using var scope = NewDisposeScope();
        var valid = AllValid(keys - Length, device);
        var causal = ones(queries, keys, dtype: ScalarType.Bool, device: device).tril(keys - queries);
        var self = causal.logical_and(ones(queries, keys, dtype: ScalarType.Bool, device: device).tril(keys - queries - 1).logical_not());
        return valid.unsqueeze(1).logical_and(causal.unsqueeze(0)).logical_or(self.unsqueeze(0)).unsqueeze(1).DetachFromDisposeScope();
    }

    // The committed and pending real-position flags, batch × (Length + length).
    private Tensor AllValid(long length, Device device)
    {
        long rows = pendingValid?.shape[0] ?? validKeys?.shape[0] ?? Rows;
        var past = validKeys ?? ones(rows, Length, dtype: ScalarType.Bool, device: device);
        if (pendingValid is { } p && p.shape[1] != length)
            throw new InvalidOperationException($"The input mask covers {p.shape[1]} positions but the pass has {length}: set the mask for the ids the model is given.");
        var pending = pendingValid ?? ones(rows, length, dtype: ScalarType.Bool, device: device);
        return cat([past, pending], 1);
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
        long added = keys.shape[2];
        if (slots.TryGetValue(layer, out int index))
        {
            var slot = entries[index];
            if (slot.Filled != Length)
                throw new InvalidOperationException($"An attention layer extended the cache twice in one forward pass (it holds {slot.Filled} positions, {Length} are committed): call Commit after each pass.");
            if (slot.Keys.shape[0] != keys.shape[0] || slot.Keys.shape[1] != keys.shape[1] || slot.Keys.shape[3] != keys.shape[3])
                throw new ArgumentException($"New keys [{string.Join(", ", keys.shape)}] do not continue the cached [{slot.Keys.shape[0]}, {slot.Keys.shape[1]}, {slot.Filled}, {slot.Keys.shape[3]}].");
            if (slot.Filled + added > slot.Keys.shape[2]) slot = slot.Grow(Math.Max(2 * slot.Keys.shape[2], slot.Filled + added));
            slot.Keys.narrow(2, slot.Filled, added).copy_(keys);
            slot.Values.narrow(2, slot.Filled, added).copy_(values);
            entries[index] = slot = slot with { Filled = slot.Filled + added };
            return slot.View();
        }
        if (Length != 0)
            throw new InvalidOperationException($"A layer the cache has not seen joined after {Length} positions were committed.");
        var fresh = Slot.Allocate(keys, values, Math.Max(added, Reserve), StorageDType);
        slots.Add(layer, entries.Count);
        entries.Add(fresh);
        return fresh.View();
    }

    /// <summary>
    /// The dtype the keys and values are kept in (null: the dtype each layer gives). Attention over the cache runs in
    /// it (<see cref="CausalAttention.Attend"/>): on the CPU, float32 attention for one new position is several times
    /// faster than bfloat16's, so <see cref="Training.TextGenerator"/> keeps a CPU cache in float32.
    /// </summary>
    public ScalarType? StorageDType { get; init; }

    /// <summary>Positions to allocate room for when a layer first stores (the whole generation, when the caller knows it); more are added by doubling.</summary>
    public long Reserve { get; set; }

    /// <summary>
    /// Ends a forward pass: every layer must hold the same number of positions, which becomes <see cref="Length"/>.
    /// Returns the positions added. A model whose layers never called <see cref="Extend"/> leaves the cache empty (0).
    /// </summary>
    public long Commit()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (entries.Count == 0)
        {
            DropPending();
            return 0;
        }
        long length = entries[0].Filled;
        foreach (var slot in entries)
        {
            if (slot.Filled != length)
                throw new InvalidOperationException($"Attention layers hold different numbers of positions ({slot.Filled} and {length}): a layer skipped the cache in this pass.");
        }
        long added = length - Length;
        if (HasPadding)
        {
            var device = entries[0].Keys.device;
            using var scope = NewDisposeScope();
            var all = AllValid(added, device);
            validKeys?.Dispose();
            validKeys = all.DetachFromDisposeScope();
        }
        DropPending();
        Length = length;
        return added;
    }

    private void DropPending()
    {
        pendingValid?.Dispose();
        pendingValid = null;
        passMask?.Dispose();
        passMask = null;
    }

    /// <summary>Keeps only the given rows, in the given order (rows whose generation stopped leave the batch).</summary>
    public void KeepRows(IReadOnlyList<long> rows)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        ArgumentNullException.ThrowIfNull(rows);
        if (entries.Count == 0) return;
        using var index = tensor(rows.ToArray(), device: entries[0].Keys.device);
        for (int i = 0; i < entries.Count; i++) entries[i] = entries[i].Select(index);
        if (validKeys is { } valid)
        {
            validKeys = valid.index_select(0, index).DetachFromDisposeScope();
            valid.Dispose();
        }
    }

    /// <summary>Forgets every position (the next pass starts at position 0).</summary>
    public void Clear()
    {
        foreach (var slot in entries) slot.Dispose();
        entries.Clear();
        slots.Clear();
        validKeys?.Dispose();
        validKeys = null;
        DropPending();
        Length = 0;
    }

    /// <summary>Bytes the cached keys and values take (the positions held, not the room reserved for more).</summary>
    public long Bytes => entries.Sum(e => e.Filled * (e.Keys.NumberOfElements / e.Keys.shape[2] * e.Keys.ElementSize + e.Values.NumberOfElements / e.Values.shape[2] * e.Values.ElementSize));

    /// <inheritdoc />
    public void Dispose()
    {
        if (disposed) return;
        Clear();
        disposed = true;
    }

    // One layer's buffers (batch × heads × capacity × headDim) and how many positions they hold.
    private readonly record struct Slot(Tensor Keys, Tensor Values, long Filled)
    {
        public static Slot Allocate(Tensor keys, Tensor values, long capacity, ScalarType? dtype)
        {
            var k = Buffer(keys, capacity, dtype ?? keys.dtype);
            var v = Buffer(values, capacity, dtype ?? values.dtype);
            k.narrow(2, 0, keys.shape[2]).copy_(keys);
            v.narrow(2, 0, values.shape[2]).copy_(values);
            return new Slot(k, v, keys.shape[2]);
        }

        private static Tensor Buffer(Tensor like, long capacity, ScalarType dtype) =>
            empty(new[] { like.shape[0], like.shape[1], capacity, like.shape[3] }, dtype: dtype, device: like.device).DetachFromDisposeScope();

        public Slot Grow(long capacity)
        {
            var k = Buffer(Keys, capacity, Keys.dtype);
            var v = Buffer(Values, capacity, Values.dtype);
            k.narrow(2, 0, Filled).copy_(Keys.narrow(2, 0, Filled));
            v.narrow(2, 0, Filled).copy_(Values.narrow(2, 0, Filled));
            Dispose();
            return new Slot(k, v, Filled);
        }

        public Slot Select(Tensor rows)
        {
            var k = Keys.index_select(0, rows).DetachFromDisposeScope();
            var v = Values.index_select(0, rows).DetachFromDisposeScope();
            Dispose();
            return new Slot(k, v, Filled);
        }

        // The caller gets views it may dispose with its scope; the buffers stay.
        public (Tensor Keys, Tensor Values) View() => (Keys.narrow(2, 0, Filled), Values.narrow(2, 0, Filled));

        public void Dispose()
        {
            Keys.Dispose();
            Values.Dispose();
        }
    }
}
