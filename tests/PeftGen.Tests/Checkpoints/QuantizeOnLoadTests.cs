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
}
