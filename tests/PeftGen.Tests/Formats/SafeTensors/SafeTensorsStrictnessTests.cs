using System;
using System.IO;
using System.Linq;
using System.Text;
using PeftGen.Formats;
using PeftGen.Formats.SafeTensors;
using PeftGen.Tests.IO;
using Xunit;

namespace PeftGen.Tests.Formats.SafeTensors;

/// <summary>Each malformed file is rejected with a <see cref="PeftFormatException"/> that names the file (and the tensor, when one is at fault).</summary>
public sealed class SafeTensorsStrictnessTests : IDisposable
{
    private readonly TempFolder folder = new();

    public void Dispose() => folder.Dispose();

    private string Write(string header, int dataBytes, ulong? declaredLength = null)
    {
        var json = Encoding.UTF8.GetBytes(header);
        return WriteRaw(BitConverter.GetBytes(declaredLength ?? (ulong)json.Length).Concat(json).Concat(new byte[dataBytes]).ToArray());
    }

    private string WriteRaw(byte[] bytes)
    {
        var path = folder.File("case.safetensors");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static PeftFormatException Rejects(string path, string? tensor, string fragment)
    {
        var error = Assert.Throws<PeftFormatException>(() => SafeTensorsFile.Load(path));
        Assert.Equal(path, error.FilePath);
        Assert.Equal(tensor, error.TensorName);
        Assert.Contains(path, error.Message);
        if (tensor is not null)
            Assert.Contains($"'{tensor}'", error.Message);
        Assert.Contains(fragment, error.Message);
        return error;
    }

    [Fact]
    public void A_valid_hand_written_file_loads()
    {
        var path = Write("{\"__metadata__\":{\"format\":\"pt\"},\"x\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4);
        var loaded = SafeTensorsFile.Load(path);
        Assert.Equal(new long[] { 2 }, loaded["x"].shape);
        loaded["x"].Dispose();
    }

    [Fact]
    public void Files_shorter_than_the_length_prefix_are_rejected() => Rejects(WriteRaw(new byte[] { 1, 2, 3 }), null, "8-byte header length");

    [Fact]
    public void A_header_length_over_100_MB_is_rejected_before_allocating() =>
        Rejects(Write("{}", 0, declaredLength: 100_000_001), null, "100000000-byte limit");

    [Fact]
    public void A_huge_header_length_is_rejected() => Rejects(Write("{}", 0, declaredLength: ulong.MaxValue), null, "limit");

    [Fact]
    public void A_header_length_past_the_end_of_the_file_is_rejected() => Rejects(Write("{}", 0, declaredLength: 50), null, "exceeds the 2 bytes");

    [Fact]
    public void Invalid_utf8_is_rejected()
    {
        var json = new byte[] { (byte)'{', (byte)'"', 0xC3, 0x28, (byte)'"', (byte)':', (byte)'1', (byte)'}' };
        Rejects(WriteRaw(BitConverter.GetBytes((ulong)json.Length).Concat(json).ToArray()), null, "UTF-8");
    }

    [Theory]
    [InlineData("[1,2]", "starting with '{'")]
    [InlineData(" {}", "starting with '{'")]
    [InlineData("{\"x\":", "JSON")]
    [InlineData("{} x", "JSON")]
    [InlineData("{}{}", "JSON")]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],}}", "JSON")]
    [InlineData("{/*c*/}", "JSON")]
    public void Malformed_json_is_rejected(string header, string fragment) => Rejects(Write(header, 0), null, fragment);

    [Fact]
    public void Trailing_padding_spaces_are_accepted() => Assert.Empty(SafeTensorsFile.Load(Write("{}      ", 0)));

    [Theory]
    [InlineData("{\"x\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", "unsupported dtype 'F8_E4M3'")]
    [InlineData("{\"x\":{\"dtype\":\"float32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "unsupported dtype 'float32'")]
    [InlineData("{\"x\":{\"dtype\":1,\"shape\":[1],\"data_offsets\":[0,4]}}", "'dtype' must be a string")]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "non-negative integers")]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", "non-negative integers")]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", "non-negative integers")]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", "'shape' must be an array")]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", "exactly two numbers")]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", "ends before it begins")]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", "needs 8 bytes")]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", "too large")]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":[0,4294967296,4294967296],\"data_offsets\":[0,0]}}", "too large")]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":[1]}}", "needs 'dtype', 'shape' and 'data_offsets'")]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "appears twice")]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}}", "unknown field 'extra'")]
    [InlineData("{\"x\":[]}", "must be an object")]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "appears twice")]
    public void Bad_tensor_entries_are_rejected_naming_the_tensor(string header, string fragment) => Rejects(Write(header, 4), "x", fragment);

    [Fact]
    public void Offsets_past_the_data_section_are_rejected() =>
        Rejects(Write("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4), "x", "past the end of the data section");

    [Fact]
    public void Overlapping_tensors_are_rejected() =>
        Rejects(Write("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8),
            "x", "overlap tensor 'a'");

    [Fact]
    public void Gaps_between_tensors_are_rejected() =>
        Rejects(Write("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12),
            "x", "gap of 4 unused bytes");

    [Fact]
    public void Trailing_garbage_after_the_last_tensor_is_rejected() =>
        Rejects(Write("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 5), null, "1 trailing bytes");

    [Theory]
    [InlineData("{\"__metadata__\":{\"a\":1}}", "must be a string")]
    [InlineData("{\"__metadata__\":[]}", "must be an object of strings")]
    [InlineData("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", "appears twice")]
    [InlineData("{\"__metadata__\":{},\"__metadata__\":{}}", "appears twice")]
    [InlineData("{\"__metadata__\":{\"a\":{\"b\":{\"c\":{}}}}}", "must be a string")]
    public void Bad_metadata_is_rejected(string header, string fragment) => Rejects(Write(header, 0), null, fragment);

    [Fact]
    public void Booleans_other_than_zero_and_one_are_rejected()
    {
        var json = Encoding.UTF8.GetBytes("{\"x\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,2]}}");
        Rejects(WriteRaw(BitConverter.GetBytes((ulong)json.Length).Concat(json).Concat(new byte[] { 1, 7 }).ToArray()), "x", "other than 0 and 1");
    }

    [Fact]
    public void A_file_truncated_after_opening_fails_on_read()
    {
        var json = Encoding.UTF8.GetBytes("{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}");
        var path = WriteRaw(BitConverter.GetBytes((ulong)json.Length).Concat(json).Concat(new byte[16]).ToArray());
        using var file = SafeTensorsFile.Open(path);
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
            stream.SetLength(8 + json.Length + 6);
        var error = Assert.Throws<PeftFormatException>(() => file.Read("x"));
        Assert.Equal("x", error.TensorName);
    }
}
