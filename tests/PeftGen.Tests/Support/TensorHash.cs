using System;
using System.Security.Cryptography;
using static TorchSharp.torch;

namespace PeftGen.Tests.Support;

/// <summary>Hashes of tensor bytes, to prove a tensor is bit-identical before and after something.</summary>
public static class TensorHash
{
    public static string Of(Tensor tensor)
    {
        using var cpu = tensor.detach().cpu().contiguous();
        var bytes = cpu.bytes.ToArray();
        return Convert.ToHexString(SHA256.HashData(bytes)) + ":" + string.Join("x", cpu.shape) + ":" + cpu.dtype;
    }
}
