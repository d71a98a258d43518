using System;
using System.Collections.Generic;
using System.Linq;

namespace PeftGen;

/// <summary>
/// The named dimensions and settings of one model size (<c>Width = 768</c>, <c>Layers = 12</c>,
/// <c>RmsNormEps = 1e-5</c>, <c>QkvBias = true</c>, …), taken at compile time from the constants of the configuration
/// type named by <see cref="PeftModelAttribute"/>. Blocks that are shared by several model sizes read their sizes from
/// here, so one block definition serves every size. Generated classes derive a <c>Dimensions</c> type from it with a
/// typed property per constant (<c>Dims.Heads</c>).
/// </summary>
public class ModelDims
{
    private readonly Dictionary<string, long> values;
    private readonly Dictionary<string, double> reals;
    private readonly Dictionary<string, bool> flags;

    /// <summary>Creates the dimensions from name/value pairs.</summary>
    public ModelDims(IEnumerable<KeyValuePair<string, long>> values)
        : this(values, [], [])
    {
    }

    /// <summary>Creates the dimensions (integer constants) and settings (floating-point and <see cref="bool"/> constants).</summary>
    /// <exception cref="ArgumentException">A name is given twice, in one list or across them.</exception>
    public ModelDims(IEnumerable<KeyValuePair<string, long>> values, IEnumerable<KeyValuePair<string, double>> reals, IEnumerable<KeyValuePair<string, bool>> flags)
    {
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(reals);
        ArgumentNullException.ThrowIfNull(flags);
        this.values = new Dictionary<string, long>(StringComparer.Ordinal);
        this.reals = new Dictionary<string, double>(StringComparer.Ordinal);
        this.flags = new Dictionary<string, bool>(StringComparer.Ordinal);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, value) in values) Add(this.values, names, name, value, nameof(values));
        foreach (var (name, value) in reals) Add(this.reals, names, name, value, nameof(reals));
        foreach (var (name, value) in flags) Add(this.flags, names, name, value, nameof(flags));
    }

    /// <summary>A view of <paramref name="other"/>'s values (for the typed <c>Dimensions</c> of generated classes).</summary>
    protected ModelDims(ModelDims other)
    {
        ArgumentNullException.ThrowIfNull(other);
        values = other.values;
        reals = other.reals;
        flags = other.flags;
    }

    /// <summary>The value of a named dimension (an integer constant).</summary>
    /// <exception cref="KeyNotFoundException">The configuration has no integer constant of that name.</exception>
    public long this[string name] => values.TryGetValue(name, out var value) ? value : throw Missing(name, "integer");

    /// <summary>The value of a named dimension as an <see cref="int"/>.</summary>
    public int Int(string name) => checked((int)this[name]);

    /// <summary>The value of a floating-point setting (a <c>const double</c> or <c>const float</c>, such as a norm epsilon).</summary>
    /// <exception cref="KeyNotFoundException">The configuration has no floating-point constant of that name.</exception>
    public double Real(string name) => reals.TryGetValue(name, out var value) ? value : throw Missing(name, "floating-point");

    /// <summary>The value of a <c>const bool</c> setting (such as whether q/k/v projections have a bias).</summary>
    /// <exception cref="KeyNotFoundException">The configuration has no bool constant of that name.</exception>
    public bool Flag(string name) => flags.TryGetValue(name, out var value) ? value : throw Missing(name, "bool");

    /// <summary>Every dimension and setting name, sorted.</summary>
    public IEnumerable<string> Names => values.Keys.Concat(reals.Keys).Concat(flags.Keys).OrderBy(k => k, StringComparer.Ordinal);

    private KeyNotFoundException Missing(string name, string kind)
        => new($"The model configuration has no {kind} constant named '{name}'. Known: {string.Join(", ", Names)}.");

    private static void Add<T>(Dictionary<string, T> into, HashSet<string> names, string name, T value, string parameter)
    {
        if (!names.Add(name)) throw new ArgumentException($"Dimension '{name}' is given twice.", parameter);
        into.Add(name, value);
    }
}
