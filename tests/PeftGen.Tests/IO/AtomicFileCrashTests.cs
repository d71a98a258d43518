using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using PeftGen.IO;
using PeftGen.Formats;
using PeftGen.Formats.SafeTensors;
using PeftGen.Tests.Formats.SafeTensors;
using PeftGen.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace PeftGen.Tests.IO;

/// <summary>
/// A child process (tests/PeftGen.CrashWriter) starts an atomic save over an existing adapter file and is killed
/// in the middle of it: the previous file must still load, and the half-written temp must be cleaned.
/// </summary>
public sealed class AtomicFileCrashTests : IDisposable
{
    private const int Megabytes = 16;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    private readonly TempFolder folder = new();

    public void Dispose() => folder.Dispose();

    private static Process StartWriter(string target)
        => ChildProcess.Start("PeftGen.CrashWriter", redirectInput: true, target, Megabytes.ToString(System.Globalization.CultureInfo.InvariantCulture));

    private static string? ReadLine(Process process)
    {
        var line = process.StandardOutput.ReadLineAsync();
        Assert.True(line.Wait(Patience), "the crash helper did not report in time");
        return line.Result;
    }

    private (string Target, byte[] Previous, Dictionary<string, Tensor> Tensors) SavePrevious()
    {
        var target = folder.File("adapter_model.safetensors");
        var tensors = new Dictionary<string, Tensor>
        {
            ["base_model.model.h.0.attn.c_attn.lora_A.weight"] = SafeTensorsRoundTripTests.Sample("F32", new long[] { 8, 64 }, 31),
            ["base_model.model.h.0.attn.c_attn.lora_B.weight"] = SafeTensorsRoundTripTests.Sample("F32", new long[] { 192, 8 }, 32),
        };
        SafeTensorsFile.Save(target, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        return (target, File.ReadAllBytes(target), tensors);
    }

    [Fact]
    public void A_save_killed_midway_leaves_the_previous_file_intact_and_the_temp_is_cleaned()
    {
        using var scope = NewDisposeScope();
        var (target, previous, tensors) = SavePrevious();

        using var writer = StartWriter(target);
        try
        {
            Assert.Equal("mid-write", ReadLine(writer));
            var temps = Directory.GetFiles(folder.Path).Where(f => AtomicFile.IsTempName(Path.GetFileName(f))).ToArray();
            Assert.Single(temps);
            Assert.True(new FileInfo(temps[0]).Length >= (Megabytes / 4) << 20, "the child should be in the middle of writing its temp file");
        }
        finally
        {
            writer.Kill(entireProcessTree: true);
            Assert.True(writer.WaitForExit(Patience));
        }
        Assert.NotEqual(0, writer.ExitCode);

        Assert.Equal(previous, File.ReadAllBytes(target));
        var loaded = SafeTensorsFile.Load(target);
        foreach (var (name, tensor) in tensors)
            Assert.Equal(SafeTensorsRoundTripTests.Bytes(tensor), SafeTensorsRoundTripTests.Bytes(loaded[name]));

        Assert.Equal(1, AtomicFile.CleanStaleTemps(folder.Path));
        Assert.Equal(new[] { target }, Directory.GetFiles(folder.Path));
    }

    [Fact]
    public void The_same_save_left_to_finish_replaces_the_file()
    {
        using var scope = NewDisposeScope();
        var (target, _, _) = SavePrevious();

        using var writer = StartWriter(target);
        Assert.Equal("mid-write", ReadLine(writer));
        Assert.True(File.Exists(target));
        writer.StandardInput.WriteLine();
        writer.StandardInput.Flush();
        Assert.Equal("saved", ReadLine(writer));
        Assert.True(writer.WaitForExit(Patience));
        Assert.Equal(0, writer.ExitCode);

        Assert.Equal((long)Megabytes << 20, new FileInfo(target).Length);
        Assert.Equal(new[] { target }, Directory.GetFiles(folder.Path));
        Assert.Throws<PeftFormatException>(() => SafeTensorsFile.Load(target));
    }
}
