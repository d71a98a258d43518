using System;

namespace TinyGpt.Jobs;

/// <summary>
/// What the user gave the run cannot be used: an option value, a data file, an adapter or base folder. The message is
/// one line that says what to change; the command line prints it as <c>error: …</c> and exits with code 2, where any
/// other exception is a failure of the program (code 1).
/// </summary>
/// <remarks>
/// Thrown where the example reads the user's input, wrapping the library's own report (a
/// <see cref="PeftGen.Formats.PeftFormatException"/>, a <see cref="PeftGen.Formats.CheckpointMismatchException"/>, a
/// <see cref="FormatException"/> from a JSON Lines reader) as <see cref="Exception.InnerException"/>, so
/// <c>--verbose</c> still shows all of it. The same library types thrown anywhere else stay failures of the program.
/// </remarks>
public sealed class UserInputException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">One line: what is wrong with the input and, when it helps, what to do.</param>
    /// <param name="innerException">The error that revealed the problem, if any.</param>
    public UserInputException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }
}
