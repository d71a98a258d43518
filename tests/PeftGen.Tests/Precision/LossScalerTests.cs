using System;
using PeftGen.Precision;
using Xunit;

namespace PeftGen.Tests.Precision;

/// <summary>
/// Dynamic loss scaling as torch.amp.GradScaler specifies it (its documented defaults and update rule: multiply by
/// the backoff factor on inf/NaN and restart the count, multiply by the growth factor after growth-interval finite
/// steps in a row), plus this library's floor and float32 ceiling.
/// </summary>
public sealed class LossScalerTests
{
    [Fact]
    public void The_defaults_are_GradScaler_s()
    {
        var scaler = new LossScaler(new LossScaling());
        Assert.Equal(65536.0, scaler.Scale);
        Assert.Equal(0, scaler.GoodSteps);
        var settings = new LossScaling();
        Assert.Equal(2.0, settings.GrowthFactor);
        Assert.Equal(0.5, settings.BackoffFactor);
        Assert.Equal(2000, settings.GrowthInterval);
    }

    [Fact]
    public void The_scale_grows_after_each_interval_of_finite_steps_and_an_overflow_restarts_the_count()
    {
        var scaler = new LossScaler(new LossScaling { InitialScale = 8, GrowthInterval = 3 });
        Assert.Equal(LossScaleChange.None, scaler.Update(true));
        Assert.Equal(LossScaleChange.None, scaler.Update(true));
        Assert.Equal(2, scaler.GoodSteps);
        Assert.Equal(LossScaleChange.Grew, scaler.Update(true));
        Assert.Equal(16.0, scaler.Scale);
        Assert.Equal(0, scaler.GoodSteps);

        scaler.Update(true);
        scaler.Update(true);
        Assert.Equal(LossScaleChange.BackedOff, scaler.Update(false));
        Assert.Equal(8.0, scaler.Scale);
        Assert.Equal(0, scaler.GoodSteps);
        // Two finite steps before the overflow do not count towards the next growth.
        scaler.Update(true);
        scaler.Update(true);
        Assert.Equal(8.0, scaler.Scale);
        Assert.Equal(LossScaleChange.Grew, scaler.Update(true));
        Assert.Equal(16.0, scaler.Scale);
    }

    [Fact]
    public void Overflows_lower_the_scale_to_the_minimum_and_one_there_is_reported_as_non_finite()
    {
        var scaler = new LossScaler(new LossScaling { InitialScale = 12, BackoffFactor = 0.25, MinimumScale = 1 });
        Assert.Equal(LossScaleChange.BackedOff, scaler.Update(false));
        Assert.Equal(3.0, scaler.Scale);
        Assert.Equal(LossScaleChange.BackedOff, scaler.Update(false));
        Assert.Equal(1.0, scaler.Scale); // 0.75 clamped to the minimum
        Assert.Equal(LossScaleChange.NonFiniteAtMinimum, scaler.Update(false));
        Assert.Equal(1.0, scaler.Scale);
        Assert.Equal(LossScaleChange.None, scaler.Update(true));
    }

    [Fact]
    public void The_scale_never_grows_past_the_largest_float32()
    {
        double top = Math.Pow(2, 127);
        var scaler = new LossScaler(new LossScaling { InitialScale = top, GrowthInterval = 1 });
        Assert.Equal(LossScaleChange.None, scaler.Update(true));
        Assert.Equal(top, scaler.Scale);
        Assert.True(scaler.Scale <= float.MaxValue);
    }

    [Theory]
    [InlineData(nameof(LossScaling.InitialScale))]
    [InlineData(nameof(LossScaling.GrowthFactor))]
    [InlineData(nameof(LossScaling.BackoffFactor))]
    [InlineData(nameof(LossScaling.GrowthInterval))]
    [InlineData(nameof(LossScaling.MinimumScale))]
    public void A_setting_out_of_range_is_refused_by_name(string setting)
    {
        var bad = setting switch
        {
            nameof(LossScaling.InitialScale) => new LossScaling { InitialScale = 0.5 }, // below the minimum of 1
            nameof(LossScaling.GrowthFactor) => new LossScaling { GrowthFactor = 1 },
            nameof(LossScaling.BackoffFactor) => new LossScaling { BackoffFactor = 1 },
            nameof(LossScaling.GrowthInterval) => new LossScaling { GrowthInterval = 0 },
            _ => new LossScaling { MinimumScale = 0 },
        };
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new LossScaler(bad));
        Assert.Equal(setting, error.ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => new PeftGen.Training.TrainerOptions { LossScaling = bad }.Validate());
    }

    [Fact]
    public void Scales_print_as_whole_numbers_or_short_fractions()
    {
        Assert.Equal("65,536", LossScaler.Format(65536));
        Assert.Equal("1", LossScaler.Format(1));
        Assert.Equal("0.25", LossScaler.Format(0.25));
        Assert.Equal("1.09951E+12", LossScaler.Format(Math.Pow(2, 40) + 0.5));
    }
}
