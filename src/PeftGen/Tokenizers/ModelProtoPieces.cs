namespace PeftGen.Tokenizers;

/// <summary>
/// Counts the pieces of a SentencePiece <c>ModelProto</c> (field 1, repeated) by walking its top-level protobuf fields;
/// a piece's id is its position, so the count is the learned vocabulary's size.
/// </summary>
internal static class ModelProtoPieces
{
    private const int PiecesField = 1;

    /// <summary>The number of pieces, or null when the bytes are not a well-formed protobuf message.</summary>
    public static int? Count(byte[] bytes)
    {
        var position = 0;
        var count = 0;
        while (position < bytes.Length)
        {
            if (ReadVarint(bytes, ref position) is not { } key) return null;
            var skipped = (key & 7) switch
            {
                0 => ReadVarint(bytes, ref position) is not null,
                1 => Skip(bytes, ref position, 8),
                2 => ReadVarint(bytes, ref position) is { } length && length <= int.MaxValue && Skip(bytes, ref position, (long)length),
                5 => Skip(bytes, ref position, 4),
                _ => false,
            };
            if (!skipped) return null;
            if (key >> 3 == PiecesField && (key & 7) == 2) count++;
        }
        return count;
    }

    private static bool Skip(byte[] bytes, ref int position, long length)
    {
        if (length > bytes.Length - position) return false;
        position += (int)length;
        return true;
    }

    private static ulong? ReadVarint(byte[] bytes, ref int position)
    {
        ulong value = 0;
        for (var shift = 0; shift < 64 && position < bytes.Length; shift += 7)
        {
            var b = bytes[position++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return value;
        }
        return null;
    }
}
