using System;
using System.Runtime.InteropServices;
using PeftGen.Training;

// Usage: PeftGen.HeapProbe <threshold MiB | adaptive>
// Fixes the C heap's mmap threshold (or leaves glibc's adaptive one), maps and frees a 24 MiB block (which raises an
// adaptive threshold to 24 MiB), then allocates 3 MiB and 1 MiB blocks and prints whether glibc mapped each on its own:
// "above=True below=False". Prints "unavailable" where the C library is not glibc or the threshold cannot be set.
if (args.Length != 1 || (args[0] != "adaptive" && !int.TryParse(args[0], out _)))
{
    Console.Error.WriteLine("usage: PeftGen.HeapProbe <threshold MiB | adaptive>");
    return 2;
}
const long mebibyte = 1L << 20;
if (ProcessMemory.NativeMappedBytes() is null
    || (args[0] != "adaptive" && !ProcessMemory.TrySetNativeMmapThreshold(int.Parse(args[0]) * mebibyte)))
{
    Console.WriteLine("unavailable");
    return 0;
}

unsafe
{
    // glibc marks a block it mapped on its own with bit 2 (IS_MMAPPED) of the size word just before the block.
    static bool Mapped(void* block) => (((long*)block)[-1] & 2) != 0;

    void* large = NativeMemory.Alloc((nuint)(24 * mebibyte));
    ((byte*)large)[0] = 1;
    NativeMemory.Free(large);
    void* above = NativeMemory.Alloc((nuint)(3 * mebibyte));
    void* below = NativeMemory.Alloc((nuint)(1 * mebibyte));
    Console.WriteLine($"above={Mapped(above)} below={Mapped(below)}");
    NativeMemory.Free(above);
    NativeMemory.Free(below);
}
return 0;
