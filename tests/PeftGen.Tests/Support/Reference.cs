using System;
using System.Linq;
using static TorchSharp.torch;

namespace PeftGen.Tests.Support;

/// <summary>Float64 references and relative-error measures for numerics tests.</summary>
public static class Reference
{
    public static double[] ToDoubles(Tensor t) => t.detach().cpu().to(ScalarType.Float64).contiguous().data<double>().ToArray();

    /// <summary>‖a − b‖ / ‖b‖ over all elements.</summary>
    public static double RelativeError(double[] actual, double[] expected)
    {
        if (actual.Length != expected.Length) throw new ArgumentException("Length mismatch.");
        double num = 0, den = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            num += (actual[i] - expected[i]) * (actual[i] - expected[i]);
            den += expected[i] * expected[i];
        }
        return Math.Sqrt(num) / Math.Max(Math.Sqrt(den), double.Epsilon);
    }

    public static double RelativeError(Tensor actual, Tensor expected) => RelativeError(ToDoubles(actual), ToDoubles(expected));
}
