using System;
using System.Collections.Generic;
using System.Globalization;

namespace PeftGen.Generators.Model;

/// <summary>A token of a dimension expression: a number, a configuration name, an operator or a parenthesis.</summary>
internal sealed record DimensionToken(char Kind, string Text)
{
    public const char Number = 'n';
    public const char Name = 'i';
}

/// <summary>
/// A dimension written in an attribute: integer literals and names of the configuration's integer constants,
/// combined with <c>+ - * /</c> and parentheses (<c>"3 * Width"</c>). Parsed once per declaration; evaluated against
/// every model configuration that reaches the declaration.
/// </summary>
internal sealed record DimensionExpression(EquatableArray<DimensionToken> Tokens, string? SyntaxError)
{
    public static DimensionExpression Parse(string? text)
    {
        var tokens = new List<DimensionToken>();
        if (string.IsNullOrWhiteSpace(text)) return new DimensionExpression(EquatableArray<DimensionToken>.Empty, "is empty");
        var i = 0;
        while (i < text!.Length)
        {
            var c = text[i];
            if (char.IsWhiteSpace(c)) { i++; continue; }
            if (char.IsDigit(c))
            {
                var start = i;
                while (i < text.Length && char.IsDigit(text[i])) i++;
                tokens.Add(new DimensionToken(DimensionToken.Number, text.Substring(start, i - start)));
                continue;
            }
            if (char.IsLetter(c) || c == '_')
            {
                var start = i;
                while (i < text.Length && (char.IsLetterOrDigit(text[i]) || text[i] == '_')) i++;
                tokens.Add(new DimensionToken(DimensionToken.Name, text.Substring(start, i - start)));
                continue;
            }
            if ("+-*/()".IndexOf(c) >= 0)
            {
                tokens.Add(new DimensionToken(c, c.ToString()));
                i++;
                continue;
            }
            return new DimensionExpression(tokens.ToEquatableArray(), $"has an unexpected character '{c}'");
        }

        var expression = new DimensionExpression(tokens.ToEquatableArray(), null);
        var check = expression.Evaluate(null);
        return check.Error is { } error && !check.UnknownName ? expression with { SyntaxError = error } : expression;
    }

    /// <summary>
    /// Evaluates against the constants (null: check the syntax only, treating names as 1). Errors are phrased to
    /// follow "Dimension 'X' of 'member' …".
    /// </summary>
    public (long Value, string? Error, bool UnknownName) Evaluate(IReadOnlyDictionary<string, long>? constants)
    {
        if (SyntaxError is not null) return (0, SyntaxError, false);
        var evaluator = new Evaluator(Tokens, constants);
        try
        {
            var value = evaluator.Expression();
            if (evaluator.Position != Tokens.Count) return (0, $"has an unexpected '{Tokens[evaluator.Position].Text}'", false);
            if (evaluator.UnknownName is { } unknown) return (0, $"uses '{unknown}', which is not an integer constant", true);
            if (constants is not null && value <= 0) return (value, $"evaluates to {value.ToString(CultureInfo.InvariantCulture)}, which is not positive", false);
            return (value, null, false);
        }
        catch (FormatException e)
        {
            return (0, e.Message, false);
        }
        catch (OverflowException)
        {
            return (0, "overflows a 64-bit integer", false);
        }
    }

    /// <summary>C# for the run-time value, reading names from a <c>ModelDims</c> expression such as <c>dims</c>.</summary>
    public string ToCSharp(string dims)
    {
        var parts = new List<string>();
        foreach (var token in Tokens)
        {
            parts.Add(token.Kind switch
            {
                DimensionToken.Number => token.Text + "L",
                DimensionToken.Name => dims + "[\"" + token.Text + "\"]",
                _ => token.Text,
            });
        }
        var joined = string.Join(" ", parts).Replace("( ", "(").Replace(" )", ")");
        return Tokens.Count == 1 ? joined : "(" + joined + ")";
    }

    private sealed class Evaluator
    {
        private readonly EquatableArray<DimensionToken> tokens;
        private readonly IReadOnlyDictionary<string, long>? constants;

        public Evaluator(EquatableArray<DimensionToken> tokens, IReadOnlyDictionary<string, long>? constants)
        {
            this.tokens = tokens;
            this.constants = constants;
        }

        public int Position { get; private set; }

        public string? UnknownName { get; private set; }

        public long Expression()
        {
            var value = Term();
            while (Peek is '+' or '-')
            {
                var op = tokens[Position++].Kind;
                var right = Term();
                value = op == '+' ? checked(value + right) : checked(value - right);
            }
            return value;
        }

        private char? Peek => Position < tokens.Count ? tokens[Position].Kind : null;

        private long Term()
        {
            var value = Factor();
            while (Peek is '*' or '/')
            {
                var op = tokens[Position++].Kind;
                var right = Factor();
                if (op == '*')
                {
                    value = checked(value * right);
                }
                else
                {
                    if (right == 0) throw new FormatException("divides by zero");
                    if (value % right != 0 && constants is not null) throw new FormatException("divides with a remainder");
                    value /= right;
                }
            }
            return value;
        }

        private long Factor()
        {
            if (Position >= tokens.Count) throw new FormatException("ends where a number or name is expected");
            var token = tokens[Position++];
            switch (token.Kind)
            {
                case DimensionToken.Number:
                    return long.Parse(token.Text, NumberStyles.None, CultureInfo.InvariantCulture);
                case DimensionToken.Name:
                    if (constants is null) return 1;
                    if (constants.TryGetValue(token.Text, out var value)) return value;
                    UnknownName ??= token.Text;
                    return 1;
                case '(':
                    var inner = Expression();
                    if (Peek != ')') throw new FormatException("has an unclosed '('");
                    Position++;
                    return inner;
                default:
                    throw new FormatException($"has an unexpected '{token.Text}'");
            }
        }
    }
}
