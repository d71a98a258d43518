using Xunit;

namespace PeftGen.Tests.Training;

/// <summary>Tests that measure peak memory or depend on torch's global generator run alone, after the parallel ones.</summary>
[CollectionDefinition(nameof(SerialTorchTests), DisableParallelization = true)]
public sealed class SerialTorchTests
{
}
