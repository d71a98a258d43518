using System;
using System.IO;
using PeftGen.IO;
using Xunit;

namespace PeftGen.Tests.IO;

public sealed class AtomicFileTests
{
    [Fact]
    public void Write_replaces_the_file_and_leaves_no_temp()
    {
        using var folder = new TempFolder();
        var path = folder.File("data.bin");
        AtomicFile.WriteAllText(path, "old");
        AtomicFile.WriteAllBytes(path, new byte[] { 1, 2, 3 });
        Assert.Equal(new byte[] { 1, 2, 3 }, File.ReadAllBytes(path));
        Assert.Equal(new[] { path }, Directory.GetFiles(folder.Path));
    }

    [Fact]
    public void A_failing_write_keeps_the_old_file_and_deletes_its_temp()
    {
        using var folder = new TempFolder();
        var path = folder.File("data.txt");
        AtomicFile.WriteAllText(path, "previous");
        var error = Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, stream =>
        {
            stream.Write(new byte[4096]);
            throw new InvalidOperationException("disk full");
        }));
        Assert.Equal("disk full", error.Message);
        Assert.Equal("previous", File.ReadAllText(path));
        Assert.Equal(new[] { path }, Directory.GetFiles(folder.Path));
    }

    [Fact]
    public void CleanStaleTemps_removes_only_temp_files_and_respects_their_age()
    {
        using var folder = new TempFolder();
        var stale = folder.File(".adapter_model.safetensors.tmp-0123456789abcdef0123456789abcdef");
        var keep = new[] { folder.File("adapter_model.safetensors"), folder.File(".hidden"), folder.File(".x.tmp-notahexguid") };
        File.WriteAllText(stale, "half");
        foreach (var file in keep)
            File.WriteAllText(file, "keep");

        Assert.Equal(0, AtomicFile.CleanStaleTemps(folder.Path, TimeSpan.FromHours(1)));
        Assert.True(File.Exists(stale));
        Assert.Equal(1, AtomicFile.CleanStaleTemps(folder.Path));
        Assert.False(File.Exists(stale));
        Assert.All(keep, file => Assert.True(File.Exists(file)));
        Assert.Equal(0, AtomicFile.CleanStaleTemps(folder.File("does-not-exist")));
    }

    [Fact]
    public void Temp_names_are_recognised()
    {
        Assert.True(AtomicFile.IsTempName(".model.safetensors.tmp-" + Guid.NewGuid().ToString("N")));
        Assert.False(AtomicFile.IsTempName("model.safetensors"));
        Assert.False(AtomicFile.IsTempName(".model.safetensors.tmp-" + Guid.NewGuid().ToString("D")));
    }
}
