using System;
using System.IO;
using System.Linq;
using PeftGen.Tests.Support;
using PeftGen.Formats;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Checkpoints;

public sealed class QuantizeOnLoadTests
{
    private static readonly LlamaConfig Config = new();
    private static readonly Quant4BitOptions Nf4 = new(QuantType.Nf4, BlockSize: 32);

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void QuantizedProjections_QuantizeEachWeightAsItArrives(ScalarType stored)
    {
        using var temp = new TempFolder();
        var raw = HfCheckpoints.Converted(HfCheckpoints.Llama(Config, seed: 41), stored);
        HfCheckpoints.WriteSingle(temp.Path, raw);
        using var model = new TinyLlama(Config);
        foreach (var (_, projection) in model.ProjectionLayers) projection.QuantizeBase(Nf4);

        using var source = new CountingSource(PeftGen.Formats.HuggingFace.HfCheckpoint.Open(temp.Path, ReadMode.Collecting));
        PeftGen.Checkpoints.PretrainedLoader.Load(model, source);

        Assert.Equal(1, source.MostAlive);
        // What each projection holds is exactly NF4 of the stored weight, which keeps its stored dtype as the original.
        var expected = raw.ToDictionary(e => e.Key, e => e.Value.to(ScalarType.Float32));
        foreach (var (path, projection) in model.ProjectionLayers)
        {
            Assert.True(projection.IsQuantized);
            Assert.Equal(stored, projection.QuantizedWeight!.OriginalDType);
            using var reference = Nf4Tensor.Quantize(expected[path + ".weight"], Nf4);
            Assert.Equal(TensorHash.Of(reference.Packed), TensorHash.Of(projection.QuantizedWeight.Packed));
            expected[path + ".weight"] = reference.Dequantize();
        }
        var ids = Ids.Random(Config.Vocab, 2, 8, seed: 42);
        Assert.True(Reference.RelativeError(model.forward(ids), HfCheckpoints.LlamaReference(expected, ids, Config)) < 1e-5);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_4_bit_base_keeps_the_memory_it_was_built_with_when_a_checkpoint_fills_it(bool doubleQuant)
    {
        using var temp = new TempFolder();
        var raw = HfCheckpoints.Converted(HfCheckpoints.Llama(Config, seed: 43), ScalarType.BFloat16);
        HfCheckpoints.WriteSingle(temp.Path, raw);
        using var model = new TinyLlama(Config);
        var options = Nf4 with { DoubleQuant = doubleQuant };
        foreach (var (_, projection) in model.ProjectionLayers) projection.QuantizeBase(options);
        var built = model.ProjectionLayers.ToDictionary(p => p.Path, p => StorageAddresses(p.Projection.QuantizedWeight!));

        using var source = new CountingSource(PeftGen.Formats.HuggingFace.HfCheckpoint.Open(temp.Path, ReadMode.Collecting));
        PeftGen.Checkpoints.PretrainedLoader.Load(model, source);

        // The same memory, now holding exactly the state that quantizing the stored weight gives (no lasting 4-bit
        // allocation during a load: see Nf4Tensor.MoveInto).
        foreach (var (path, projection) in model.ProjectionLayers)
        {
            var loaded = projection.QuantizedWeight!;
            Assert.Equal(built[path], StorageAddresses(loaded));
            using var reference = Nf4Tensor.Quantize(raw[path + ".weight"], options);
            Assert.Equal(TensorHash.Of(reference.Packed), TensorHash.Of(loaded.Packed));
            Assert.Equal(reference.Offset, loaded.Offset);
            Assert.Equal(ScalarType.BFloat16, loaded.OriginalDType);
            using var expected = reference.Dequantize(ScalarType.Float32);
            using var actual = loaded.Dequantize(ScalarType.Float32);
            Assert.Equal(TensorHash.Of(expected), TensorHash.Of(actual));
        }
    }

    [Fact]
    public void A_4_bit_base_of_other_settings_takes_new_memory()
    {
        using var weight = randn(16, 64);
        using var zeros = Nf4Tensor.Zeros(new long[] { 16, 64 }, Nf4, ScalarType.Float32, CPU);
        var other = Nf4Tensor.Quantize(weight, Nf4 with { BlockSize = 64 });
        Assert.Null(other.MoveInto(zeros));
        Assert.False(zeros.Packed.IsInvalid); // left as it was
        other.Dispose();
    }

    private static IntPtr[] StorageAddresses(Nf4Tensor tensor)
        => new[] { tensor.Packed, tensor.Absmax, tensor.QuantizedAbsmax, tensor.NestedAbsmax }
            .Where(t => t is not null)
            .Select(t => t!.dtype == ScalarType.Byte ? AddressOf<byte>(t) : AddressOf<float>(t))
            .ToArray();

    // storage<T>() of another element type than the tensor's is a converted copy: ask for the tensor's own.
    private static IntPtr AddressOf<T>(Tensor tensor) where T : unmanaged
    {
        using var storage = tensor.storage<T>();
        return storage.data_ptr();
    }
}
