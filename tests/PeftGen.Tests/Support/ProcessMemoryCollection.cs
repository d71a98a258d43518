using Xunit;

namespace PeftGen.Tests.Support;

/// <summary>
/// Tests that read process-wide memory (resident size, the C heap's counters) run in this collection, alone and
/// after the parallel ones.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessMemoryCollection
{
    /// <summary>The collection name.</summary>
    public const string Name = "Process memory";
}
