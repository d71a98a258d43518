using System;

namespace PeftGen;

/// <summary>
/// Adds a LoRA adapter <c>scale · B(A(dropout(x)))</c> beside the frozen weight of a projection, or of every
/// projection in a class. A member-level attribute overrides a class-level one for the same adapter name (as PEFT's
/// <c>rank_pattern</c>); <see cref="NoLoraAttribute"/> excludes a member. Repeat it with different
/// <see cref="Adapter"/> names for several adapters on one base.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Class, AllowMultiple = true, Inherited = false)]
public sealed class LoraAttribute : Attribute
{
    /// <summary>Rank r of the update; A is <c>r × In</c>, B is <c>Out × r</c>. Default 8.</summary>
    public int Rank { get; set; } = SettingRules.LoraRank;

    /// <summary>Scaling numerator: <c>scale = Alpha / Rank</c> (or <c>Alpha / √Rank</c> with rsLoRA). Default 8.</summary>
    public double Alpha { get; set; } = SettingRules.LoraAlpha;

    /// <summary>Dropout probability on the LoRA path's input, in [0, 1), applied in training mode only. Default 0.</summary>
    public double Dropout { get; set; } = SettingRules.LoraDropout;

    /// <summary>Rank-stabilised LoRA: <c>scale = Alpha / √Rank</c>.</summary>
    public bool UseRsLora { get; set; }

    /// <summary>Adapter name. Default <c>"default"</c>, as in PEFT.</summary>
    public string Adapter { get; set; } = SettingRules.DefaultName;

    /// <summary>
    /// On a class: the projection names (member or checkpoint names, as PEFT's <c>target_modules</c>) the adapter
    /// applies to; empty means every projection. On the model class it reaches into every block, so one block
    /// definition serves model variants with different targets.
    /// </summary>
    public string[] Targets { get; set; } = [];
}

/// <summary>Excludes a projection from a class-level <see cref="LoraAttribute"/>.</summary>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false, Inherited = false)]
public sealed class NoLoraAttribute : Attribute
{
}

/// <summary>
/// Trains this member's own weights (as PEFT's <c>modules_to_save</c>), on top of any adapters. On the model class,
/// every weight of the model trains: full fine-tuning, the baseline PEFT is measured against. Not allowed on 4-bit
/// members.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
public sealed class TrainableAttribute : Attribute
{
}
