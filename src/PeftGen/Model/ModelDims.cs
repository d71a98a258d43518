using System;
using System.Collections.Generic;
using System.Linq;

namespace PeftGen;

/// <summary>
/// The named dimensions of one model size (<c>Width = 768</c>, <c>Layers = 12</c>, …), taken at compile time from the
/// constants of the configuration type named by <see cref="PeftModelAttribute"/>. Blocks that are shared by several
/// model sizes read their sizes from here, so one block definition serves every size.
/// </summary>
public sealed class ModelDims
{
    private readonly Dictionary<string, long> _values;

    /// <summary>Creates the dimensions from name/value pairs.</summary>
    public ModelDims(IEnumerable<KeyValuePair<string, long>> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        _values = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (name, value) in values)
        {
            if (!_values.TryAdd(name, value))
                throw new ArgumentException($"Dimension '{name}' is given twice.", nameof(values));
        }
    }

    /// <summary>The value of a named dimension.</summary>
    /// <exception cref="KeyNotFoundException">The configuration has no dimension of that name.</exception>
    public long this[string name] => _values.TryGetValue(name, out var value)
        ? value
        : throw new KeyNotFoundException($"The model configuration has no dimension named '{name}'. Known: {string.Join(", ", Names)}.");

    /// <summary>The value of a named dimension as an <see cref="int"/>.</summary>
    public int Int(string name) => checked((int)this[name]);

    /// <summary>Every dimension name, sorted.</summary>
    public IEnumerable<string> Names => _values.Keys.OrderBy(k => k, StringComparer.Ordinal);
}
