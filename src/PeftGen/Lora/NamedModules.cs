using System.Collections.Generic;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen;

/// <summary>
/// A container of submodules keyed by adapter name (<c>lora_A.default</c>, <c>lora_A.sql</c>) that registers each
/// entry as it is added, so adapters can be added and removed after the owner is constructed. (TorchSharp's
/// <c>ModuleDict</c> registers its entries only once, when it is itself registered.)
/// </summary>
public sealed class NamedModules<T> : nn.Module where T : nn.Module
{
    private readonly Dictionary<string, T> entries = new();

    /// <summary>Creates an empty container.</summary>
    public NamedModules() : base(nameof(NamedModules<T>))
    {
    }

    /// <summary>The entry of that name.</summary>
    public T this[string name] => entries[name];

    /// <summary>The entry names, in insertion order of registration.</summary>
    public IEnumerable<string> Names => entries.Keys;

    /// <summary>Whether an entry of that name exists.</summary>
    public bool Contains(string name) => entries.ContainsKey(name);

    /// <summary>Adds and registers an entry.</summary>
    public void Add(string name, T module)
    {
        register_module(name, module);
        entries.Add(name, module);
    }

    /// <summary>Removes, unregisters and disposes an entry.</summary>
    public bool Remove(string name)
    {
        if (!entries.Remove(name, out var module)) return false;
        register_module(name, null!);
        module.Dispose();
        return true;
    }

    /// <summary>Looks up an entry.</summary>
    public bool TryGet(string name, out T module) => entries.TryGetValue(name, out module!);

    /// <inheritdoc />
    protected override void RegisterComponents()
    {
        // Entries are registered as they are added; nothing to discover.
    }
}
