using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Foundation;

/// <summary>
/// Torch must load on this host. On Debian 12 that depends on the build marking libLibTorchSharp.so's
/// GLIBCXX_3.4.32 need weak (src/PeftGen/buildTransitive/PeftGen.targets); without it this test fails with
/// "version `GLIBCXX_3.4.32' not found".
/// </summary>
public sealed class TorchLoadsTests
{
    [Fact]
    public void Matmul_gives_the_right_numbers()
    {
        using var scope = NewDisposeScope();
        var a = tensor(new float[] { 1, 2, 3, 4, 5, 6 }, new long[] { 2, 3 });
        var b = tensor(new float[] { 7, 8, 9, 10, 11, 12 }, new long[] { 3, 2 });
        var product = a.matmul(b).data<float>().ToArray();
        Assert.Equal(new float[] { 58, 64, 139, 154 }, product);
    }

    [Fact]
    public void Autograd_and_bfloat16_work()
    {
        using var scope = NewDisposeScope();
        var x = tensor(new float[] { 1, 2, 3 }, requires_grad: true);
        var y = (x * x).sum();
        y.backward();
        Assert.Equal(new float[] { 2, 4, 6 }, x.grad!.data<float>().ToArray());

        var half = tensor(new float[] { 1.5f, -2.25f }).to(ScalarType.BFloat16);
        Assert.Equal(new float[] { 1.5f, -2.25f }, half.to(ScalarType.Float32).data<float>().ToArray());
    }
}
