using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace PeftGen.Tests.Tokenizers;

/// <summary>
/// Writes a SentencePiece <c>tokenizer.model</c>: a protobuf <c>ModelProto</c> by the field numbers of
/// sentencepiece_model.proto (pieces = 1, trainer_spec = 2, normalizer_spec = 3; SentencePiece piece = 1, score = 2
/// as a 32-bit float, type = 3; TrainerSpec model_type = 3, byte_fallback = 35, unk/bos/eos/pad_id = 40-43;
/// NormalizerSpec name = 1, add_dummy_prefix = 3, remove_extra_whitespaces = 4, escape_whitespaces = 5).
/// </summary>
internal static class SentencePieceModelWriter
{
    public enum PieceType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 }

    public enum ModelType { Unigram = 1, Bpe = 2 }

    public sealed record Piece(string Text, float Score, PieceType Type);

    public static byte[] Write(IReadOnlyList<Piece> pieces, ModelType modelType, bool byteFallback = true, bool addDummyPrefix = true, bool removeExtraWhitespaces = false)
    {
        var model = new MemoryStream();
        foreach (var piece in pieces)
        {
            var message = new MemoryStream();
            WriteBytes(message, 1, Encoding.UTF8.GetBytes(piece.Text));
            WriteFloat(message, 2, piece.Score);
            WriteVarintField(message, 3, (long)piece.Type);
            WriteBytes(model, 1, message.ToArray());
        }
        var trainer = new MemoryStream();
        WriteVarintField(trainer, 3, (long)modelType);
        WriteVarintField(trainer, 35, byteFallback ? 1 : 0);
        WriteVarintField(trainer, 40, 0);
        WriteVarintField(trainer, 41, 1);
        WriteVarintField(trainer, 42, 2);
        WriteVarintField(trainer, 43, -1);
        WriteBytes(model, 2, trainer.ToArray());
        var normalizer = new MemoryStream();
        WriteBytes(normalizer, 1, Encoding.UTF8.GetBytes("identity"));
        WriteVarintField(normalizer, 3, addDummyPrefix ? 1 : 0);
        WriteVarintField(normalizer, 4, removeExtraWhitespaces ? 1 : 0);
        WriteVarintField(normalizer, 5, 1);
        WriteBytes(model, 3, normalizer.ToArray());
        return model.ToArray();
    }

    /// <summary>Llama's layout: &lt;unk&gt; 0, &lt;s&gt; 1, &lt;/s&gt; 2, the 256 byte pieces 3-258, then <paramref name="learned"/> from 259.</summary>
    public static List<Piece> LlamaLayout(params (string Text, float Score)[] learned)
    {
        var pieces = new List<Piece> { new("<unk>", 0, PieceType.Unknown), new("<s>", 0, PieceType.Control), new("</s>", 0, PieceType.Control) };
        for (var b = 0; b < 256; b++) pieces.Add(new($"<0x{b:X2}>", 0, PieceType.Byte));
        foreach (var (text, score) in learned) pieces.Add(new(text, score, PieceType.Normal));
        return pieces;
    }

    private static void WriteTag(Stream stream, int field, int wireType) => WriteVarint(stream, (ulong)((field << 3) | wireType));

    private static void WriteVarintField(Stream stream, int field, long value)
    {
        WriteTag(stream, field, 0);
        WriteVarint(stream, unchecked((ulong)value));   // a negative int32 is ten bytes, as protobuf writes it
    }

    private static void WriteBytes(Stream stream, int field, byte[] bytes)
    {
        WriteTag(stream, field, 2);
        WriteVarint(stream, (ulong)bytes.Length);
        stream.Write(bytes);
    }

    private static void WriteFloat(Stream stream, int field, float value)
    {
        WriteTag(stream, field, 5);
        Span<byte> bytes = stackalloc byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(bytes, value);
        stream.Write(bytes);
    }

    private static void WriteVarint(Stream stream, ulong value)
    {
        while (value >= 0x80)
        {
            stream.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        stream.WriteByte((byte)value);
    }
}
