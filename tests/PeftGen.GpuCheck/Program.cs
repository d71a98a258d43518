using System;
using System.Diagnostics;
using System.Linq;
using PeftGen;
using TorchSharp;
using static TorchSharp.torch;

// Exit codes: 0 = passed or skipped (no GPU / no CUDA backend), 1 = a check failed.
if (!cuda.is_available())
{
    Console.WriteLine("SKIP: torch reports no CUDA device (CPU backend, no GPU, or no driver). Nothing was checked.");
    return 0;
}

var gpu = CUDA;
var failures = 0;
void Check(bool ok, string what)
{
    Console.WriteLine($"{(ok ? "ok  " : "FAIL")} {what}");
    if (!ok) failures++;
}

manual_seed(0);
using var weight = randn(4096, 4096);
var options = new Quant4BitOptions();

// 1. Same codes on both devices: the CUDA path is the same code on CUDA tensors.
using var onCpu = Nf4Tensor.Quantize(weight, options);
using var weightGpu = weight.to(gpu);
using var onGpu = Nf4Tensor.Quantize(weightGpu, options);
Check(onGpu.Packed.device.type == DeviceType.CUDA, "quantized state lives on the GPU");
Check(onCpu.Packed.cpu().data<byte>().ToArray().SequenceEqual(onGpu.Packed.cpu().data<byte>().ToArray()), "packed NF4 codes identical on CPU and GPU");
var offsetUlps = Math.Abs(BitConverter.SingleToInt32Bits(onCpu.Offset) - BitConverter.SingleToInt32Bits(onGpu.Offset));
Check(offsetUlps <= 2, $"double-quant offset (torch mean) within 2 ulp across devices ({offsetUlps})");

// 2. Dequantization stays on the device and is exact.
using (var dq = onGpu.Dequantize(ScalarType.BFloat16))
{
    Check(dq.device.type == DeviceType.CUDA && dq.dtype == ScalarType.BFloat16, "dequantized on the GPU to bfloat16");
}
using (var fromGpu = onGpu.To(CPU))
using (var a = fromGpu.Dequantize())
using (var b = onGpu.Dequantize().cpu())
{
    Check(a.equal(b).item<bool>(), "GPU dequantization equals CPU dequantization of the same state, bit for bit");
}

// 3. Throughput: dequantize versus a plain copy of the same output size.
double Time(Action action, int repeats = 20)
{
    action();
    cuda.synchronize();
    var watch = Stopwatch.StartNew();
    for (var i = 0; i < repeats; i++) action();
    cuda.synchronize();
    return watch.Elapsed.TotalSeconds / repeats;
}
using var copySource = empty(4096, 4096, dtype: ScalarType.BFloat16, device: gpu);
var dequantSeconds = Time(() => { using var _ = onGpu.Dequantize(ScalarType.BFloat16); });
var copySeconds = Time(() => { using var _ = copySource.clone(); });
var outBytes = 2.0 * 4096 * 4096;
Console.WriteLine($"dequantize 4096² → bf16: {dequantSeconds * 1e3:F2} ms ({outBytes / dequantSeconds / 1e9:F1} GB/s); copy: {copySeconds * 1e3:F2} ms ({outBytes / copySeconds / 1e9:F1} GB/s); ratio {copySeconds / dequantSeconds:P0} of copy");

// 4. A QLoRA step on the GPU (bfloat16 compute by default) trains and keeps the codes.
var layers = Enumerable.Range(0, 4).Select(_ => new LoraLinear(2048, 2048, hasBias: false, device: gpu)).ToArray();
foreach (var layer in layers)
{
    layer.AddAdapter("default", new LoraConfig(16, 32, 0, false));
    layer.QuantizeBase(options);
}
Check(layers[0].ComputeScalarType == ScalarType.BFloat16, "compute dtype Auto resolves to bfloat16 on CUDA");
var codesBefore = layers.Select(l => l.QuantizedWeight!.Packed.cpu().data<byte>().ToArray()).ToArray();
using var optimizer = optim.AdamW(layers.SelectMany(l => new[] { l.LoraA("default"), l.LoraB("default") }), lr: 1e-3);
using var x = randn(16, 256, 2048, device: gpu);
using var target = randn(16, 256, 2048, device: gpu);
float first = 0, last = 0;
var stepSeconds = Time(() =>
{
    using var scope = NewDisposeScope();
    optimizer.zero_grad();
    var h = x.requires_grad_(false);
    foreach (var layer in layers) h = layer.forward(h);
    var loss = nn.functional.mse_loss(h.to(ScalarType.Float32), target);
    loss.backward();
    optimizer.step();
    last = loss.item<float>();
    if (first == 0) first = last;
}, repeats: 10);
Console.WriteLine($"QLoRA step (4 × 2048² NF4, batch 16 × 256): {stepSeconds * 1e3:F1} ms; loss {first:F4} → {last:F4}");
Check(last < first, "loss decreases on the GPU");
Check(layers.Select(l => l.QuantizedWeight!.Packed.cpu().data<byte>().ToArray()).Zip(codesBefore).All(p => p.First.SequenceEqual(p.Second)), "base codes unchanged by training");

foreach (var layer in layers) layer.Dispose();

// 5. float16 mixed precision (GPUs without fast bfloat16): a LoRA layer's output and adapter gradients against float64.
using (var scope = NewDisposeScope())
{
    using var half = new LoraLinear(512, 512, device: gpu);
    half.AddAdapter("default", new LoraConfig(8, 16, 0, false));
    using (no_grad()) half.LoraB("default").normal_(0, 0.1);
    var input = randn(8, 64, 512, device: gpu);
    Tensor output;
    using (PeftGen.Precision.ComputePrecision.Use(ScalarType.Float16)) output = half.forward(input);
    output.to(ScalarType.Float32).pow(2).sum().backward();
    var a64 = half.LoraA("default").detach().to(ScalarType.Float64).requires_grad_(true);
    var x64 = input.to(ScalarType.Float64);
    var y64 = x64.matmul(half.Weight.to(ScalarType.Float64).t()) + half.Bias!.to(ScalarType.Float64)
        + x64.matmul(a64.t()).matmul(half.LoraB("default").to(ScalarType.Float64).t()) * 2.0;
    y64.pow(2).sum().backward();
    double Relative(Tensor got, Tensor want) => (got.to(ScalarType.Float64) - want).norm().item<double>() / want.norm().item<double>();
    Check(output.dtype == ScalarType.Float16 && output.device.type == DeviceType.CUDA, "float16 compute on the GPU returns float16");
    Check(Relative(output, y64) < 0.0025, $"float16 output within 0.25 % of float64 ({Relative(output, y64):E2})");
    Check(half.LoraA("default").grad!.dtype == ScalarType.Float32 && Relative(half.LoraA("default").grad!, a64.grad!) < 0.0025,
        $"float32 master gradient of A within 0.25 % of float64 ({Relative(half.LoraA("default").grad!, a64.grad!):E2})");
}
// 6. A generated model moves to the GPU with TorchSharp's Module.to (which once threw on a model's duplicate Dims) and
// runs there, its LoRA products in bfloat16.
using (var scope = NewDisposeScope())
{
    using var model = new CheckGpt();
    model.to(gpu);
    Check(model.parameters().All(p => p.device.type == DeviceType.CUDA), "a generated model's parameters move to the GPU with Module.to");
    Tensor logits;
    using (PeftGen.Precision.ComputePrecision.Use(ScalarType.BFloat16)) logits = model.forward(randint(CheckConfig.Vocab, new long[] { 2, 16 }, device: gpu));
    Check(logits.device.type == DeviceType.CUDA && logits.shape[^1] == CheckConfig.Vocab && logits.isfinite().all().item<bool>(),
        "its forward runs on the GPU");
}

Console.WriteLine(failures == 0 ? "GPU check passed." : $"GPU check: {failures} check(s) failed.");
return failures == 0 ? 0 : 1;

/// <summary>A small GPT-2 for section 6.</summary>
public static class CheckConfig
{
    public const int Vocab = 256, Context = 32, Width = 64, Layers = 2, Heads = 4;
}

/// <summary>LoRA on every projection of the package's GPT-2 architecture.</summary>
[PeftModel(typeof(CheckConfig), ContextLength = "Context")]
[Lora(Rank = 4, Alpha = 8)]
public partial class CheckGpt : PeftGen.Architectures.Gpt2LMHeadModel { }
