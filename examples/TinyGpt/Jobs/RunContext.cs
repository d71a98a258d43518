using System;
using System.IO;
using PeftGen.Precision;
using PeftGen.Training;
using static TorchSharp.torch;

namespace TinyGpt.Jobs;

/// <summary>Where a run reads and writes, and on which device it computes.</summary>
/// <param name="Settings">Sizes of the run.</param>
/// <param name="OutputFolder">Where this run's reports, adapters and plots go.</param>
/// <param name="CacheFolder">Where pretrained bases are kept between runs.</param>
/// <param name="Device">The compute device.</param>
public sealed record RunContext(JobSettings Settings, string OutputFolder, string CacheFolder, Device Device)
{
    /// <summary>Training and generation precision (default: bfloat16 where the device has it fast).</summary>
    public TrainingPrecision Precision { get; init; } = TrainingPrecision.Auto;

    /// <summary>Training hands the C heap's free pages back when resident memory has grown (<c>TrainerOptions.ReleaseFreedMemory</c>).</summary>
    public bool ReleaseFreedMemory { get; init; }

    /// <summary>Training's fixed glibc mmap threshold (<c>TrainerOptions.NativeMmapThresholdBytes</c>); null keeps glibc's adaptive one.</summary>
    public long? NativeMmapThresholdBytes { get; init; }

    /// <summary>Pretrain a base with <see cref="Settings"/> (cached) instead of using the base that ships with the example.</summary>
    public bool Pretrain { get; init; }

    /// <summary>
    /// The trainer settings every training job takes from the command line (precision and the C heap's handling); a job
    /// adds its own schedule with <c>with { ... }</c>.
    /// </summary>
    public TrainerOptions TrainerOptions() => new()
    {
        Precision = Precision,
        ReleaseFreedMemory = ReleaseFreedMemory,
        NativeMmapThresholdBytes = NativeMmapThresholdBytes,
    };

    /// <summary>The folder of the pretrained base for these settings.</summary>
    public string BaseFolder => Path.Combine(CacheFolder, Settings.PretrainKey);

    /// <summary>Creates the context: output under <c>{root}/{command}-{timestamp}</c>, cache under <c>{root}/cache</c>.</summary>
    /// <param name="settings">Sizes of the run.</param>
    /// <param name="command">The command, for the output folder's name.</param>
    /// <param name="output">An explicit output folder, or null.</param>
    /// <param name="device">cpu or cuda.</param>
    /// <param name="runsRoot">Where runs and the cache live; default <c>runs</c> in the current folder.</param>
    /// <exception cref="UserInputException">CUDA was asked for and no CUDA device is usable, or a folder cannot be created.</exception>
    public static RunContext Create(JobSettings settings, string command, string? output, string device, string? runsRoot = null)
    {
        // The device first, so a run that cannot start leaves no empty output folder behind.
        var compute = ResolveDevice(device);
        var root = Path.GetFullPath(runsRoot ?? "runs");
        var folder = output ?? Path.Combine(root, $"{command}-{DateTime.Now:yyyyMMdd-HHmmss}");
        var cache = Path.Combine(root, "cache");
        CreateFolder(folder);
        CreateFolder(cache);
        return new RunContext(settings, Path.GetFullPath(folder), cache, compute);
    }

    private static void CreateFolder(string folder)
    {
        try
        {
            Directory.CreateDirectory(folder);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserInputException($"Cannot create the folder '{folder}': {e.Message}", e);
        }
    }

    private static Device ResolveDevice(string name)
    {
        switch (name.ToLowerInvariant())
        {
            case "cpu":
                return CPU;
            case "cuda":
                if (!cuda.is_available())
                    throw new UserInputException("--device cuda: no CUDA device is usable. Build with -p:TorchBackend=cuda (TorchSharp-cuda-linux) on a machine with an NVIDIA GPU.");
                return CUDA;
            default:
                throw new ArgumentException($"Unknown device '{name}': use cpu or cuda.");
        }
    }
}
