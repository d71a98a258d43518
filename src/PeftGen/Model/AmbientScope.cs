using System;
using System.Threading;

namespace PeftGen;

/// <summary>Sets an <see cref="AsyncLocal{T}"/> for a scope and restores the enclosing value when the scope ends.</summary>
internal static class AmbientScope
{
    /// <summary>Sets <paramref name="slot"/> to <paramref name="value"/>; disposing the result (once) restores the previous value.</summary>
    public static IDisposable Push<T>(AsyncLocal<T> slot, T value)
    {
        var previous = slot.Value;
        slot.Value = value;
        return new Restore<T>(slot, previous);
    }

    private sealed class Restore<T>(AsyncLocal<T> slot, T? previous) : IDisposable
    {
        private bool disposed;

        public void Dispose()
        {
            if (disposed) return;
            disposed = true;
            slot.Value = previous!;
        }
    }
}
