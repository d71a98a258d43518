namespace PeftGen.Formats;

/// <summary>How a reader of a folder format (several files that must agree) treats a problem it finds.</summary>
public enum ReadMode
{
    /// <summary>The first problem (or the first set found together) is an exception; an open reader has none.</summary>
    Strict = 0,

    /// <summary>
    /// Problems that leave the rest readable (a missing or unreadable file, files that disagree) are recorded in the
    /// reader's <c>Problems</c>, so a loader can report them together with every other mismatch. Malformed bytes in
    /// a file every tensor depends on (an index, a config) are still an exception.
    /// </summary>
    Collecting = 1,
}
