using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using PeftGen.Formats;
using PeftGen.Formats.HuggingFace;
using PeftGen.Formats.Peft;
using PeftGen.Formats.SafeTensors;
using TorchSharp;
using PeftGen.Tests.IO;
using PeftGen.Tests.Formats.SafeTensors;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PeftGen.Tests.Formats;

/// <summary>
/// Mutates valid adapter and checkpoint files thousands of times (fixed seed). Every case must either load exactly
/// what the mutated file says (checked by an independent parse of its header and raw slices of its data section) or
/// throw a <see cref="PeftFormatException"/> naming the file; never another exception, a hang or a large allocation.
/// </summary>
public sealed class FormatFuzzTests : IDisposable
{
    private const int SafeTensorsCases = 2000;
    private const int ConfigCases = 1000;
    private const int CheckpointCases = 300;
    private const long AllocationBudget = 8 << 20;

    private static readonly string[] DTypeNames = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "U16", "F8_E4M3", "X", "", "f32"];

    private readonly TempFolder folder = new();
    private readonly ITestOutputHelper output;

    public FormatFuzzTests(ITestOutputHelper output) => this.output = output;

    public void Dispose() => folder.Dispose();

    private static Dictionary<string, Tensor> AdapterTensors() => new()
    {
        ["base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"] = SafeTensorsRoundTripTests.Sample("F32", new long[] { 4, 8 }, 11),
        ["base_model.model.transformer.h.0.attn.c_attn.lora_B.weight"] = SafeTensorsRoundTripTests.Sample("F32", new long[] { 24, 4 }, 12),
        ["base_model.model.transformer.h.1.attn.c_attn.lora_A.weight"] = SafeTensorsRoundTripTests.Sample("BF16", new long[] { 4, 8 }, 13),
        ["base_model.model.transformer.h.1.attn.c_attn.lora_B.weight"] = SafeTensorsRoundTripTests.Sample("F16", new long[] { 24, 4 }, 14),
        ["prompt_embeddings"] = SafeTensorsRoundTripTests.Sample("F32", new long[] { 5, 8 }, 15),
    };

    private static Dictionary<string, Tensor> CheckpointTensors() => new()
    {
        ["transformer.wte.weight"] = SafeTensorsRoundTripTests.Sample("F32", new long[] { 16, 8 }, 21),
        ["transformer.h.0.attn.bias"] = SafeTensorsRoundTripTests.Sample("BOOL", new long[] { 1, 1, 6, 6 }, 22),
        ["transformer.h.0.mlp.c_fc.weight"] = SafeTensorsRoundTripTests.Sample("F64", new long[] { 8, 4 }, 23),
        ["position_ids"] = SafeTensorsRoundTripTests.Sample("I64", new long[] { 1, 6 }, 24),
        ["scalar"] = SafeTensorsRoundTripTests.Sample("I32", Array.Empty<long>(), 25),
        ["empty"] = SafeTensorsRoundTripTests.Sample("U8", new long[] { 0, 3 }, 26),
        ["mask"] = SafeTensorsRoundTripTests.Sample("I8", new long[] { 3 }, 27),
        ["ids16"] = SafeTensorsRoundTripTests.Sample("I16", new long[] { 2, 2 }, 28),
    };

    [Fact]
    public void Mutated_safetensors_files_load_what_they_say_or_fail_with_a_format_error()
    {
        using var scope = NewDisposeScope();
        var adapter = folder.File("adapter_model.safetensors");
        var checkpoint = folder.File("model.safetensors");
        SafeTensorsFile.Save(adapter, AdapterTensors(), new Dictionary<string, string> { ["format"] = "pt" });
        SafeTensorsFile.Save(checkpoint, CheckpointTensors(), new Dictionary<string, string> { ["format"] = "pt" });
        var originals = new[] { File.ReadAllBytes(adapter), File.ReadAllBytes(checkpoint) };

        var random = new Random(20261128);
        var target = folder.File("fuzz.safetensors");
        var outcomes = new Dictionary<string, int>();
        var stopwatch = Stopwatch.StartNew();
        for (var i = 0; i < SafeTensorsCases; i++)
        {
            var (kind, bytes) = Mutate(originals[i % 2], random);
            File.WriteAllBytes(target, bytes);
            var outcome = LoadAndCheck(target, bytes, $"case {i} ({kind})");
            outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
        }
        output.WriteLine($"{SafeTensorsCases} cases in {stopwatch.Elapsed.TotalSeconds:F1} s: " +
            string.Join(", ", outcomes.OrderBy(o => o.Key, StringComparer.Ordinal).Select(o => $"{o.Key} {o.Value}")));
        Assert.True(outcomes.GetValueOrDefault("loaded") > 50, "too few mutations were harmless: the fuzzer is not exercising the load path");
        Assert.True(outcomes.Where(o => o.Key.StartsWith("rejected", StringComparison.Ordinal)).Sum(o => o.Value) > SafeTensorsCases / 2);
    }

    private static string LoadAndCheck(string path, byte[] bytes, string label)
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        Dictionary<string, Tensor> loaded;
        try
        {
            loaded = SafeTensorsFile.Load(path);
        }
        catch (PeftFormatException e)
        {
            Assert.True(e.FilePath == path && e.Message.Contains(path, StringComparison.Ordinal), $"{label}: the error does not name the file: {e.Message}");
            if (e.TensorName is not null)
                Assert.Contains($"'{e.TensorName}'", e.Message);
            CheckAllocation(before, label);
            return e.TensorName is null ? "rejected (file)" : "rejected (tensor)";
        }
        catch (Exception e)
        {
            Assert.Fail($"{label}: {e.GetType().Name} instead of PeftFormatException: {e.Message}");
            throw;
        }
        CheckAllocation(before, label);
        try
        {
            CheckAgainstIndependentParse(bytes, loaded, label);
        }
        finally
        {
            foreach (var tensor in loaded.Values)
                tensor.Dispose();
        }
        return "loaded";
    }

    private static void CheckAllocation(long before, string label)
    {
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < AllocationBudget, $"{label}: {allocated} bytes allocated for a file of a few KB");
    }

    // The oracle: System.Text.Json's own parse of the header, and raw slices of the data section.
    private static void CheckAgainstIndependentParse(byte[] bytes, Dictionary<string, Tensor> loaded, string label)
    {
        var headerLength = (int)BitConverter.ToUInt64(bytes, 0);
        using var header = JsonDocument.Parse(bytes.AsMemory(8, headerLength), new JsonDocumentOptions { AllowDuplicateProperties = false });
        var dataStart = 8 + headerLength;
        var expectedNames = header.RootElement.EnumerateObject().Select(p => p.Name).Where(n => n != "__metadata__").Order(StringComparer.Ordinal);
        Assert.Equal(expectedNames, loaded.Keys.Order(StringComparer.Ordinal));
        foreach (var entry in header.RootElement.EnumerateObject().Where(p => p.Name != "__metadata__"))
        {
            var tensor = loaded[entry.Name];
            Assert.True(entry.Value.GetProperty("dtype").GetString() == DTypeName(tensor.dtype), $"{label}: dtype of {entry.Name}");
            Assert.Equal(entry.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()), tensor.shape);
            var offsets = entry.Value.GetProperty("data_offsets").EnumerateArray().Select(d => d.GetInt64()).ToArray();
            var slice = bytes.AsSpan(dataStart + (int)offsets[0], (int)(offsets[1] - offsets[0])).ToArray();
            Assert.True(slice.AsSpan().SequenceEqual(SafeTensorsRoundTripTests.Bytes(tensor)), $"{label}: data of {entry.Name}");
        }
    }

    private static string DTypeName(ScalarType type) => type switch
    {
        ScalarType.Float64 => "F64",
        ScalarType.Float32 => "F32",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Int16 => "I16",
        ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8",
        ScalarType.Bool => "BOOL",
        _ => type.ToString(),
    };

    private static (string Kind, byte[] Bytes) Mutate(byte[] original, Random random)
    {
        var headerLength = (int)BitConverter.ToUInt64(original, 0);
        var header = Encoding.UTF8.GetString(original, 8, headerLength);
        var data = original[(8 + headerLength)..];
        switch (random.Next(12))
        {
            case 0:
                return ("truncate", original[..random.Next(original.Length)]);
            case 1:
            {
                var bytes = (byte[])original.Clone();
                var flips = 1 + random.Next(4);
                for (var f = 0; f < flips; f++)
                {
                    var at = random.Next(2) == 0 ? random.Next(8 + headerLength) : random.Next(bytes.Length);
                    bytes[at] ^= (byte)(1 + random.Next(255));
                }
                return ("flip bytes", bytes);
            }
            case 2:
            {
                var bytes = (byte[])original.Clone();
                var grown = random.Next(3) switch
                {
                    0 => (ulong)headerLength + (ulong)(1 + random.Next(64)),
                    1 => (ulong)random.NextInt64(),
                    _ => 100_000_001UL,
                };
                BitConverter.GetBytes(grown).CopyTo(bytes, 0);
                return ("grow header length", bytes);
            }
            case 3:
            {
                var bytes = (byte[])original.Clone();
                BitConverter.GetBytes((ulong)random.Next(headerLength)).CopyTo(bytes, 0);
                return ("shrink header length", bytes);
            }
            case 4:
                return ("swap dtype", Assemble(ReplaceOne(header, "\"dtype\":\"", '"', _ => DTypeNames[random.Next(DTypeNames.Length)], random), data, random));
            case 5:
                return ("change shape", Assemble(ReplaceNumber(header, "\"shape\":[", random), data, random));
            case 6:
                return ("edit offsets", Assemble(ReplaceNumber(header, "\"data_offsets\":[", random), data, random));
            case 7:
            {
                // JSON whitespace after a separator: harmless, must load identically.
                var separators = Enumerable.Range(0, header.Length).Where(k => header[k] is ',' or ':').ToArray();
                var at = separators[random.Next(separators.Length)] + 1;
                var spaced = header.Insert(at, new string(" \n\t\r"[random.Next(4)], 1 + random.Next(3)));
                return ("insert whitespace", Assemble(spaced, data, random, keepLength: true));
            }
            case 8:
                return ("append garbage", original.Concat(Enumerable.Range(0, 1 + random.Next(16)).Select(_ => (byte)random.Next(256))).ToArray());
            case 9:
            {
                var at = random.Next(original.Length);
                var count = 1 + random.Next(Math.Min(16, original.Length - at));
                return ("delete bytes", original[..at].Concat(original[(at + count)..]).ToArray());
            }
            case 10:
            {
                // Appends a non-ASCII character to a key (a tensor name, a field name or the metadata key).
                var keyEnds = Enumerable.Range(1, header.Length - 2).Where(k => header[k] == '"' && header[k + 1] == ':').ToArray();
                return ("rename", Assemble(header.Insert(keyEnds[random.Next(keyEnds.Length)], "\u00e9"), data, random));
            }
            default:
            {
                var tokens = new[] { "{", "}", "[", "]", ",", ":", "\"", "null", "-1", "1e400", "\\", "\"__metadata__\"", "\u0000" };
                var at = random.Next(header.Length);
                return ("inject token", Assemble(header.Insert(at, tokens[random.Next(tokens.Length)]), data, random));
            }
        }
    }

    // Rebuilds a file around an edited header: usually with a length prefix that matches it (and padding), so the
    // mutation reaches the JSON and layout checks; sometimes with the stale length.
    private static byte[] Assemble(string header, byte[] data, Random random, bool keepLength = false)
    {
        var json = Encoding.UTF8.GetBytes(header);
        if (!keepLength && random.Next(5) == 0)
            return BitConverter.GetBytes((ulong)json.Length + 3).Concat(json).Concat(data).ToArray();
        return BitConverter.GetBytes((ulong)json.Length).Concat(json).Concat(data).ToArray();
    }

    private static string ReplaceOne(string text, string prefix, char terminator, Func<string, string> replace, Random random)
    {
        var starts = new List<int>();
        for (var at = text.IndexOf(prefix, StringComparison.Ordinal); at >= 0; at = text.IndexOf(prefix, at + 1, StringComparison.Ordinal))
            starts.Add(at + prefix.Length);
        var start = starts[random.Next(starts.Count)];
        var end = text.IndexOf(terminator, start);
        return text[..start] + replace(text[start..end]) + text[end..];
    }

    private static string ReplaceNumber(string header, string prefix, Random random) =>
        ReplaceOne(header, prefix, ']', list =>
        {
            var numbers = list.Length == 0 ? new List<string>() : list.Split(',').ToList();
            string Pick(string old) => random.Next(8) switch
            {
                0 => "0",
                1 => "-1",
                2 => (long.Parse(old.Length == 0 ? "0" : old) + 1).ToString(),
                3 => (Math.Max(0, long.Parse(old.Length == 0 ? "0" : old) - 1)).ToString(),
                4 => "1099511627776",
                5 => "9223372036854775807",
                6 => "2.5",
                _ => random.Next(1000).ToString(),
            };
            if (numbers.Count == 0 || random.Next(6) == 0)
                numbers.Add(Pick("1"));
            else
            {
                var k = random.Next(numbers.Count);
                numbers[k] = Pick(numbers[k]);
            }
            return string.Join(",", numbers);
        }, random);

    [Fact]
    public void Mutated_adapter_configs_parse_consistently_or_fail_with_a_format_error()
    {
        var original = Encoding.UTF8.GetBytes(new LoraAdapterConfig
        {
            BaseModelNameOrPath = "gpt2",
            Rank = 8,
            Alpha = 16,
            Dropout = 0.05,
            TargetModules = ["c_attn", "c_proj"],
            RankPattern = new Dictionary<string, int> { ["c_proj"] = 4 },
        }.ToJson());
        var prompt = Encoding.UTF8.GetBytes(new PromptTuningAdapterConfig { NumVirtualTokens = 20, TokenDim = 256, Init = SoftPromptInit.Text, InitText = "Define:", TokenizerNameOrPath = "gpt2" }.ToJson());
        var random = new Random(7);
        var path = folder.File(PeftAdapterConfig.FileName);
        var (parsed, rejected) = (0, 0);
        for (var i = 0; i < ConfigCases; i++)
        {
            var source = i % 3 == 0 ? prompt : original;
            var bytes = (byte[])source.Clone();
            switch (random.Next(4))
            {
                case 0:
                    bytes = bytes[..random.Next(bytes.Length)];
                    break;
                case 1:
                    bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
                    break;
                case 2:
                    bytes[random.Next(bytes.Length)] = (byte)"0123456789-.e\"tfn{}[],:"[random.Next(23)];
                    break;
                default:
                    var at = random.Next(bytes.Length);
                    bytes = bytes[..at].Concat(Encoding.UTF8.GetBytes(new[] { "1", "\"x\"", "null", "true", "[]", "{}", ",", "-" }[random.Next(8)])).Concat(bytes[at..]).ToArray();
                    break;
            }
            File.WriteAllBytes(path, bytes);
            try
            {
                var config = PeftAdapterConfig.Read(path);
                // Whatever was accepted writes back to JSON that reads back to the same JSON.
                var json = config.ToJson();
                Assert.Equal(json, PeftAdapterConfig.Parse(Encoding.UTF8.GetBytes(json)).ToJson());
                parsed++;
            }
            catch (PeftFormatException e)
            {
                Assert.Equal(path, e.FilePath);
                Assert.Contains(path, e.Message);
                rejected++;
            }
        }
        output.WriteLine($"{ConfigCases} configs: {parsed} parsed, {rejected} rejected");
        Assert.True(parsed > 20 && rejected > ConfigCases / 3);
    }

    [Fact]
    public void Mutated_sharded_checkpoints_open_consistently_or_fail_with_a_format_error()
    {
        using var scope = NewDisposeScope();
        var checkpoint = Path.Combine(folder.Path, "ckpt");
        HfCheckpointWriter.Save(checkpoint, CheckpointTensors(), new JsonObject { ["model_type"] = "gpt2" }, maxShardBytes: 600);
        var files = Directory.GetFiles(checkpoint).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        var originals = files.ToDictionary(f => f!, f => File.ReadAllBytes(Path.Combine(checkpoint, f!)));
        var random = new Random(99);
        var (opened, rejected) = (0, 0);
        for (var i = 0; i < CheckpointCases; i++)
        {
            foreach (var (name, bytes) in originals)
                File.WriteAllBytes(Path.Combine(checkpoint, name), bytes);
            var victim = files[random.Next(files.Length)]!;
            var mutated = (byte[])originals[victim].Clone();
            if (random.Next(2) == 0)
                mutated = mutated[..random.Next(mutated.Length)];
            else
                mutated[random.Next(mutated.Length)] ^= (byte)(1 + random.Next(255));
            File.WriteAllBytes(Path.Combine(checkpoint, victim), mutated);
            try
            {
                using var open = HfCheckpoint.Open(checkpoint);
                foreach (var name in open.Names)
                {
                    using var tensor = open.Read(name);
                    Assert.Equal(open.TensorInfo(name).Shape, tensor.shape);
                }
                opened++;
            }
            catch (PeftFormatException e)
            {
                Assert.NotNull(e.FilePath);
                Assert.StartsWith(checkpoint, e.FilePath);
                Assert.Contains(e.FilePath!, e.Message);
                rejected++;
            }
        }
        output.WriteLine($"{CheckpointCases} checkpoints: {opened} opened, {rejected} rejected");
        Assert.True(opened > 10 && rejected > CheckpointCases / 3);
    }
}
