using System;
using System.Runtime.InteropServices;
using PeftGen.Precision;
using Xunit;

namespace PeftGen.Tests.Precision;

/// <summary>
/// <see cref="OneDnnPrimitiveCache"/> writes the C library's environment, which oneDNN reads (not .NET's copy of it),
/// and leaves a capacity the environment chose. The test process's oneDNN read its capacity long ago, so changing the
/// variable here changes nothing else; each test puts the environment back as it found it. Linux only, as the suite.
/// </summary>
[Collection(EnvironmentCollection.Name)]
public sealed class OneDnnPrimitiveCacheTests : IDisposable
{
    private readonly string? savedCurrent = OneDnnPrimitiveCache.NativeValue(OneDnnPrimitiveCache.Variable);
    private readonly string? savedLegacy = OneDnnPrimitiveCache.NativeValue(OneDnnPrimitiveCache.LegacyVariable);

    public OneDnnPrimitiveCacheTests()
    {
        unsetenv(OneDnnPrimitiveCache.Variable);
        unsetenv(OneDnnPrimitiveCache.LegacyVariable);
    }

    public void Dispose()
    {
        Restore(OneDnnPrimitiveCache.Variable, savedCurrent);
        Restore(OneDnnPrimitiveCache.LegacyVariable, savedLegacy);
    }

    [Fact]
    public void It_sets_the_variable_oneDNN_reads_and_keeps_the_first_choice()
    {
        Assert.Null(OneDnnPrimitiveCache.Configured);
        Assert.True(OneDnnPrimitiveCache.TryLimit(64));
        Assert.Equal("64", OneDnnPrimitiveCache.NativeValue(OneDnnPrimitiveCache.Variable));
        Assert.Equal("64", OneDnnPrimitiveCache.Configured);
        Assert.True(OneDnnPrimitiveCache.TryLimit(64));
        // oneDNN reads the variable once; a second, different choice would be a promise it cannot keep.
        Assert.False(OneDnnPrimitiveCache.TryLimit(32));
        Assert.Equal("64", OneDnnPrimitiveCache.NativeValue(OneDnnPrimitiveCache.Variable));
    }

    [Theory]
    [InlineData(OneDnnPrimitiveCache.Variable)]
    [InlineData(OneDnnPrimitiveCache.LegacyVariable)]
    public void A_capacity_the_environment_names_stands(string name)
    {
        Assert.Equal(0, setenv(name, "7", 1));
        Assert.False(OneDnnPrimitiveCache.TryLimit(64));
        Assert.Equal("7", OneDnnPrimitiveCache.NativeValue(name));
        Assert.Equal("7", OneDnnPrimitiveCache.Configured);
    }

    [Fact]
    public void A_capacity_below_one_is_refused_by_name()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => OneDnnPrimitiveCache.TryLimit(0));
        Assert.Equal("capacity", error.ParamName);
        Assert.Null(OneDnnPrimitiveCache.Configured);
    }

    private static void Restore(string name, string? value)
    {
        if (value is null) unsetenv(name);
        else setenv(name, value, 1);
    }

    [DllImport("libc", EntryPoint = "setenv")]
    private static extern int setenv([MarshalAs(UnmanagedType.LPUTF8Str)] string name, [MarshalAs(UnmanagedType.LPUTF8Str)] string value, int overwrite);

    [DllImport("libc", EntryPoint = "unsetenv")]
    private static extern int unsetenv([MarshalAs(UnmanagedType.LPUTF8Str)] string name);
}

/// <summary>Tests that change the process's native environment run one at a time.</summary>
[CollectionDefinition(Name)]
public sealed class EnvironmentCollection
{
    public const string Name = "native environment";
}
