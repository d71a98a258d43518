using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftGen;

/// <summary>Root-mean-square layer normalisation (Llama's <c>RMSNorm</c>): <c>x / √(mean(x²) + eps) · weight</c>.</summary>
/// <remarks>The statistic is computed in float32 whatever the input dtype, as Llama does, then cast back.</remarks>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;

    /// <summary>Creates the norm with a unit weight.</summary>
    public RmsNorm(long dim, double eps = SettingRules.RmsNormEps, Device? device = null, ScalarType? dtype = null) : base(nameof(RmsNorm))
    {
        if (dim <= 0) throw new ArgumentOutOfRangeException(nameof(dim), dim, "Dimension must be positive.");
        Dim = dim;
        Eps = eps;
        weight = new Parameter(ones(new[] { dim }, dtype: dtype, device: device), requires_grad: false);
        register_parameter(nameof(weight), weight);
    }

    /// <summary>Normalised features.</summary>
    public long Dim { get; }

    /// <summary>Stability term.</summary>
    public double Eps { get; }

    /// <summary>The learned scale.</summary>
    public Parameter Weight => weight;

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = input.to(ScalarType.Float32);
        using var two = 2.ToScalar();
        using var eps = Eps.ToScalar();
        var normed = x.mul(x.pow(two).mean(new long[] { -1 }, keepdim: true).add(eps).rsqrt());
        return normed.to(input.dtype).mul(weight).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    protected override void RegisterComponents()
    {
    }
}
