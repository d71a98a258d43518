using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using PeftGen.Formats.SafeTensors;
using TorchSharp;
using PeftGen.Tests.IO;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.Formats.SafeTensors;

public sealed class SafeTensorsRoundTripTests
{
    public static TheoryData<string> DTypes => new() { "F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL" };

    internal static Tensor Sample(string dtype, long[] shape, int seed)
    {
        var generator = new torch.Generator((ulong)seed);
        using var scope = NewDisposeScope();
        Tensor values = dtype switch
        {
            "F64" => randn(shape, ScalarType.Float64, generator: generator),
            "F32" => randn(shape, ScalarType.Float32, generator: generator),
            "F16" => randn(shape, ScalarType.Float32, generator: generator).to_type(ScalarType.Float16),
            "BF16" => randn(shape, ScalarType.Float32, generator: generator).to_type(ScalarType.BFloat16),
            "I64" => randint(long.MinValue / 2, long.MaxValue / 2, shape, ScalarType.Int64, generator: generator),
            "I32" => randint(int.MinValue, int.MaxValue, shape, ScalarType.Int32, generator: generator),
            "I16" => randint(short.MinValue, short.MaxValue, shape, ScalarType.Int16, generator: generator),
            "I8" => randint(sbyte.MinValue, sbyte.MaxValue, shape, ScalarType.Int8, generator: generator),
            "U8" => randint(0, 256, shape, ScalarType.Byte, generator: generator),
            "BOOL" => randint(0, 2, shape, ScalarType.Byte, generator: generator).to_type(ScalarType.Bool),
            _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
        };
        return values.MoveToOuterDisposeScope();
    }

    internal static byte[] Bytes(Tensor tensor)
    {
        using var host = tensor.cpu().contiguous();
        return host.NumberOfElements == 0 ? Array.Empty<byte>() : host.bytes.ToArray();
    }

    [Theory]
    [MemberData(nameof(DTypes))]
    public void Every_dtype_round_trips_bit_exactly(string dtype)
    {
        using var folder = new TempFolder();
        using var scope = NewDisposeScope();
        var path = folder.File("t.safetensors");
        var tensors = new Dictionary<string, Tensor>
        {
            ["matrix"] = Sample(dtype, new long[] { 3, 5 }, 1),
            ["cube"] = Sample(dtype, new long[] { 2, 3, 4 }, 2),
            ["scalar"] = Sample(dtype, Array.Empty<long>(), 3),
            ["empty"] = Sample(dtype, new long[] { 0, 7 }, 4),
            ["strided"] = Sample(dtype, new long[] { 4, 6 }, 5).t(),
        };
        SafeTensorsFile.Save(path, tensors);

        var loaded = SafeTensorsFile.Load(path);
        Assert.Equal(tensors.Keys.OrderBy(k => k, StringComparer.Ordinal), loaded.Keys.OrderBy(k => k, StringComparer.Ordinal));
        foreach (var (name, expected) in tensors)
        {
            var actual = loaded[name];
            Assert.Equal(expected.dtype, actual.dtype);
            Assert.Equal(expected.shape, actual.shape);
            Assert.Equal(Bytes(expected), Bytes(actual));
            actual.Dispose();
        }
    }

    [Theory]
    [MemberData(nameof(DTypes))]
    public void Read_into_fills_a_tensor_of_the_stored_dtype_and_converts_into_another_block_by_block(string dtype)
    {
        using var folder = new TempFolder();
        using var scope = NewDisposeScope();
        var path = folder.File("t.safetensors");
        var tensors = new Dictionary<string, Tensor>
        {
            ["matrix"] = Sample(dtype, new long[] { 7, 5 }, 1),
            ["cube"] = Sample(dtype, new long[] { 5, 3, 4 }, 2),
            ["scalar"] = Sample(dtype, Array.Empty<long>(), 3),
            ["empty"] = Sample(dtype, new long[] { 0, 7 }, 4),
        };
        SafeTensorsFile.Save(path, tensors);
        using var file = SafeTensorsFile.Open(path);
        foreach (var (name, expected) in tensors)
        {
            // The stored dtype: straight into the target's memory.
            var same = full(expected.shape, 7, expected.dtype == ScalarType.Bool ? ScalarType.Byte : expected.dtype).to_type(expected.dtype);
            file.ReadInto(name, same);
            Assert.Equal(Bytes(expected), Bytes(same));
            // Another dtype, two rows' worth of stored bytes per block: every block lands in its own rows.
            if (expected.dtype == ScalarType.Bool) continue;
            var wider = zeros(expected.shape, ScalarType.Float64);
            long rowBytes = expected.dim() == 0 || expected.shape[0] == 0 ? 1 : expected.NumberOfElements / expected.shape[0] * expected.ElementSize;
            file.ReadInto(name, wider, blockBytes: 2 * rowBytes);
            Assert.Equal(Bytes(expected.to_type(ScalarType.Float64)), Bytes(wider));
        }
        Assert.Throws<ArgumentException>(() => file.ReadInto("matrix", zeros(5, 7)));
    }

    [Fact]
    public void A_tiny_file_has_exactly_the_bytes_the_reference_writes()
    {
        using var folder = new TempFolder();
        var path = folder.File("tiny.safetensors");
        using var a = tensor(new float[] { 1f, 2f });
        SafeTensorsFile.Save(path, new Dictionary<string, Tensor> { ["a"] = a });

        // Header: 54 bytes of compact JSON padded with two spaces to 56 = 0x38; then 1.0f and 2.0f little-endian.
        var header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}  ";
        var expected = new byte[] { 0x38, 0, 0, 0, 0, 0, 0, 0 }
            .Concat(Encoding.ASCII.GetBytes(header))
            .Concat(new byte[] { 0, 0, 0x80, 0x3F, 0, 0, 0, 0x40 })
            .ToArray();
        Assert.Equal(expected, File.ReadAllBytes(path));
    }

    [Fact]
    public void Header_orders_tensors_like_the_reference_and_puts_metadata_first()
    {
        using var folder = new TempFolder();
        var path = folder.File("order.safetensors");
        using var scope = NewDisposeScope();
        SafeTensorsFile.Save(path,
            new Dictionary<string, Tensor>
            {
                ["z_bool"] = tensor(new[] { true }),
                ["b_f32"] = tensor(new[] { 1f }),
                ["a_f32"] = tensor(new[] { 2f }),
                ["c_i64"] = tensor(new[] { 3L }),
                ["d_f16"] = tensor(new[] { 1f }).to_type(ScalarType.Float16),
            },
            new Dictionary<string, string> { ["format"] = "pt", ["b\"q\n"] = "é" });

        var bytes = File.ReadAllBytes(path);
        var length = (int)BitConverter.ToUInt64(bytes, 0);
        Assert.Equal(0, length % 8);
        var json = Encoding.UTF8.GetString(bytes, 8, length);
        Assert.Equal(
            "{\"__metadata__\":{\"b\\\"q\\n\":\"é\",\"format\":\"pt\"}," +
            "\"c_i64\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}," +
            "\"a_f32\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}," +
            "\"b_f32\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}," +
            "\"d_f16\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[16,18]}," +
            "\"z_bool\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[18,19]}}",
            json.TrimEnd(' '));

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(new[] { "a_f32", "b_f32", "c_i64", "d_f16", "z_bool" }, file.Names);
        Assert.Equal("é", file.Metadata["b\"q\n"]);
        var (dtype, shape) = file.TensorInfo("d_f16");
        Assert.Equal("F16", dtype);
        Assert.Equal(new long[] { 1 }, shape);
        Assert.Equal(16, file.TensorInfo("d_f16").DataBegin);
        Assert.Equal(18, file.TensorInfo("d_f16").DataEnd);
    }

    [Fact]
    public void Saving_twice_gives_identical_files()
    {
        using var folder = new TempFolder();
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor> { ["w"] = Sample("F32", new long[] { 4, 4 }, 9), ["b"] = Sample("BF16", new long[] { 4 }, 10) };
        SafeTensorsFile.Save(folder.File("1.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        SafeTensorsFile.Save(folder.File("2.safetensors"), tensors.Reverse().ToDictionary(), new Dictionary<string, string> { ["format"] = "pt" });
        Assert.Equal(File.ReadAllBytes(folder.File("1.safetensors")), File.ReadAllBytes(folder.File("2.safetensors")));
    }

    [Fact]
    public void File_reads_one_tensor_at_a_time_and_survives_shared_use()
    {
        using var folder = new TempFolder();
        using var scope = NewDisposeScope();
        var path = folder.File("m.safetensors");
        var tensors = Enumerable.Range(0, 8).ToDictionary(i => $"layer.{i}.weight", i => Sample("F32", new long[] { 16, 16 }, i));
        SafeTensorsFile.Save(path, tensors);

        using var file = SafeTensorsFile.Open(path);
        var expected = tensors.ToDictionary(kv => kv.Key, kv => Bytes(kv.Value));
        System.Threading.Tasks.Parallel.ForEach(Enumerable.Range(0, 64), i =>
        {
            var name = $"layer.{i % 8}.weight";
            using var read = file.Read(name);
            Assert.Equal(expected[name], Bytes(read));
        });
        Assert.Throws<KeyNotFoundException>(() => file.TensorInfo("missing"));
    }

    [Fact]
    public void Save_rejects_what_safetensors_cannot_hold()
    {
        using var folder = new TempFolder();
        using var scope = NewDisposeScope();
        var path = folder.File("bad.safetensors");
        Assert.Throws<ArgumentException>(() => SafeTensorsFile.Save(path, new Dictionary<string, Tensor> { ["__metadata__"] = zeros(1) }));
        Assert.Throws<ArgumentException>(() => SafeTensorsFile.Save(path, new Dictionary<string, Tensor> { ["c"] = zeros(1, ScalarType.ComplexFloat32) }));
        Assert.Throws<ArgumentException>(() => SafeTensorsFile.Save(path, new Dictionary<string, Tensor> { ["\ud800"] = zeros(1) }));
        Assert.False(File.Exists(path));
        Assert.Empty(Directory.GetFiles(folder.Path));
    }
}
