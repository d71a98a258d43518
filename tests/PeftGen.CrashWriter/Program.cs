using System;
using System.IO;
using PeftGen.IO;

// Usage: PeftGen.CrashWriter <target file> <megabytes>
// Starts AtomicFile.Write of <megabytes> MB to the target. After the first quarter it prints "mid-write" and waits
// for a line on standard input before writing the rest, so the parent test can kill it while the save is open.
if (args.Length != 2 || !int.TryParse(args[1], out var megabytes) || megabytes < 4)
{
    Console.Error.WriteLine("usage: PeftGen.CrashWriter <target file> <megabytes (>= 4)>");
    return 2;
}

var chunk = new byte[1 << 20];
new Random(1).NextBytes(chunk);
AtomicFile.Write(args[0], stream =>
{
    for (var i = 0; i < megabytes; i++)
    {
        stream.Write(chunk);
        if (i == megabytes / 4)
        {
            stream.Flush();
            Console.Out.WriteLine("mid-write");
            Console.Out.Flush();
            Console.In.ReadLine();
        }
    }
});
Console.Out.WriteLine("saved");
return 0;
