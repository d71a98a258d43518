using System;
using System.Collections.Generic;
using Xunit;

namespace PeftGen.Tests.Foundation;

/// <summary>A model's dimensions and settings by name: each kind read by its own accessor, a wrong one named in the error.</summary>
public sealed class ModelDimsTests
{
    private static ModelDims Qwen2Like() => new(
        [new("Width", 3584L), new("Heads", 28L)],
        [new("RmsNormEps", 1e-6), new("RopeTheta", 1e6)],
        [new("QkvBias", true)]);

    [Fact]
    public void Dimensions_and_settings_are_read_by_kind()
    {
        var dims = Qwen2Like();
        Assert.Equal(3584L, dims["Width"]);
        Assert.Equal(28, dims.Int("Heads"));
        Assert.Equal(1e6, dims.Real("RopeTheta"));
        Assert.True(dims.Flag("QkvBias"));
        Assert.Equal(new[] { "Heads", "QkvBias", "RmsNormEps", "RopeTheta", "Width" }, dims.Names);
    }

    [Fact]
    public void A_name_read_as_the_wrong_kind_or_given_twice_is_refused()
    {
        var dims = Qwen2Like();
        var error = Assert.Throws<KeyNotFoundException>(() => dims.Flag("RopeTheta"));
        Assert.Contains("no bool constant named 'RopeTheta'", error.Message, StringComparison.Ordinal);
        Assert.Throws<KeyNotFoundException>(() => dims["QkvBias"]);
        Assert.Throws<ArgumentException>(() => new ModelDims([new("Width", 1L)], [new("Width", 1.0)], []));
    }
}
