using System;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftGen;

/// <summary>
/// GPT-2's activation, GELU with the tanh approximation (PyTorch's <c>gelu(x, approximate='tanh')</c>, Hugging Face's
/// <c>gelu_new</c>): <c>½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))</c>.
/// </summary>
/// <remarks>
/// <para>Without gradients (inference, generation, validation) a float32 or bfloat16 CPU tensor, on a processor with
/// 512-bit vectors, goes through <see cref="GeluTanhKernel"/>, one pass instead of libtorch's vector tanh: on the 2-core
/// AMD EPYC (Zen 4) it was written on, 0.9–1.2 ms instead of 1.8–2.4 on the tiny model's bfloat16 MLP activations
/// (8 × 128 × 1,536), and the tiny model's whole bfloat16 forward pass, 8 × 128 tokens, took a median of 116 ms instead
/// of 126 (six runs of each, alternated; a throwaway harness). Results agree with libtorch's to a few float32 ulp.</para>
/// <para>With gradients it is libtorch's <c>gelu</c>: the same kernel behind a custom autograd node (the derivative
/// written the same way) made the tiny model's training steps slower, 0.41–0.46 s against 0.39–0.41 s in bfloat16, and
/// raised their peak memory by 15–45 MB (the benchmark suite's <c>child tiny-full</c>, alternated runs). Any other
/// tensor (CUDA, float16, float64, an older processor) also runs libtorch's <c>gelu</c>.</para>
/// </remarks>
public static class GeluTanh
{
    /// <summary><c>gelu(input)</c>, tanh approximation, in the input's dtype; differentiable.</summary>
    public static Tensor Apply(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        bool recordsGradient = is_grad_enabled() && input.requires_grad;
        return recordsGradient || !GeluTanhKernel.Takes(input)
            ? nn.functional.gelu(input, GELU.Approximate.tanh)
            : GeluTanhKernel.Forward(input);
    }
}
