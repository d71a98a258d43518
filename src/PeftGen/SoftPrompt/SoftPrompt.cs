using System;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftGen;

/// <summary>
/// One soft prompt: <c>N × Dim</c> trainable embeddings that a <see cref="TokenEmbedding"/> prepends to every
/// sequence. The parameter is named <c>prompt_embeddings</c>, the key PEFT saves it under.
/// </summary>
/// <remarks>
/// Values are kept in float32 when the token embedding is float16 or bfloat16 (as PEFT does, for stable training)
/// and cast to the embedding's dtype where they are prepended; otherwise they share the embedding's dtype.
/// </remarks>
public sealed class SoftPrompt : nn.Module
{
    private readonly Parameter prompt_embeddings;

    /// <summary>Wraps initial values (<c>N × Dim</c>, copied) as a new trainable prompt.</summary>
    /// <param name="config">The prompt's settings; its init fields only describe where the values came from.</param>
    /// <param name="initialValues">The values, <c>N × Dim</c>, floating point.</param>
    /// <param name="tokenizerNameOrPath">
    /// The tokenizer named in PEFT files (<c>tokenizer_name_or_path</c>); null derives it from
    /// <see cref="SoftPromptConfig.Tokenizer"/>. Kept so a prompt read from a file is written back as it was.
    /// </param>
    public SoftPrompt(SoftPromptConfig config, Tensor initialValues, string? tokenizerNameOrPath = null) : base(nameof(SoftPrompt))
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(initialValues);
        if (config.VirtualTokens <= 0)
            throw new ArgumentOutOfRangeException(nameof(config), config.VirtualTokens, "A soft prompt needs at least one virtual token.");
        if (initialValues.dim() != 2 || initialValues.shape[0] != config.VirtualTokens)
            throw new ArgumentException(
                $"Initial values must be [{config.VirtualTokens}, Dim], got [{string.Join(", ", initialValues.shape)}].", nameof(initialValues));
        if (!initialValues.is_floating_point())
            throw new ArgumentException($"Initial values must be floating point, not {initialValues.dtype}.", nameof(initialValues));

        Config = config;
        Dim = initialValues.shape[1];
        TokenizerNameOrPath = tokenizerNameOrPath ?? PromptTokenizer.HubName(config.Tokenizer);
        using (no_grad())
        {
            // A module's parameter lives as long as the module, whatever dispose scope the caller is in.
            prompt_embeddings = new Parameter(initialValues.detach().clone(), requires_grad: true);
            prompt_embeddings.DetachFromDisposeScope();
        }
        register_parameter(nameof(prompt_embeddings), prompt_embeddings);
    }

    /// <summary>The settings the prompt was created with.</summary>
    public SoftPromptConfig Config { get; }

    /// <summary>The tokenizer named in PEFT files, or null when none is known.</summary>
    public string? TokenizerNameOrPath { get; }

    /// <summary>Number of virtual tokens N.</summary>
    public int VirtualTokens => Config.VirtualTokens;

    /// <summary>Width of a virtual token's embedding.</summary>
    public long Dim { get; }

    /// <summary>The trainable values, <c>N × Dim</c>.</summary>
    public Parameter Embeddings => prompt_embeddings;

    /// <summary>The prompt repeated for each sequence of a batch: <c>batch × N × Dim</c>, in <paramref name="dtype"/>.</summary>
    public Tensor ForBatch(long batch, ScalarType dtype)
    {
        if (batch <= 0) throw new ArgumentOutOfRangeException(nameof(batch), batch, "Batch size must be positive.");
        using var scope = NewDisposeScope();
        var result = prompt_embeddings.to(dtype).unsqueeze(0).expand(batch, VirtualTokens, Dim);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Creates a prompt for <paramref name="embedding"/> initialised as PEFT does: <see cref="SoftPromptInit.Random"/>
    /// draws from a standard normal (torch.nn.Embedding's default), <see cref="SoftPromptInit.SampleVocab"/> copies
    /// the rows of N token ids drawn uniformly from <c>[0, Count)</c>, and <see cref="SoftPromptInit.Text"/> copies
    /// the rows of the init text's token ids, repeated or truncated to N.
    /// </summary>
    /// <param name="config">The prompt's settings.</param>
    /// <param name="embedding">The token embedding the prompt is for (its width, device and rows).</param>
    /// <param name="generator">The random source for random and sampled inits; null for torch's default generator.</param>
    public static SoftPrompt Create(SoftPromptConfig config, TokenEmbedding embedding, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(embedding);
        config.Validate();
        var weight = embedding.Weight;
        var dtype = StorageType(weight.dtype);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var values = (config.Init switch
        {
            SoftPromptInit.Random => randn(new long[] { config.VirtualTokens, embedding.Dim }, dtype: dtype, device: generator?.device ?? weight.device, generator: generator),
            SoftPromptInit.SampleVocab => weight.index_select(0, SampleIds(config.VirtualTokens, embedding.Count, weight.device, generator)),
            SoftPromptInit.Text => weight.index_select(0, TextTokenIds(config, embedding.Count, weight.device)),
            _ => throw new ArgumentOutOfRangeException(nameof(config), config.Init, "Unknown soft prompt initialisation."),
        }).to(dtype, weight.device);
        return new SoftPrompt(config, values);
    }

    /// <summary>The token ids whose embeddings a <see cref="SoftPromptInit.Text"/> prompt starts from (exactly N).</summary>
    public static int[] InitTokenIds(SoftPromptConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        if (config.Init != SoftPromptInit.Text)
            throw new ArgumentException($"Only text initialisation has init token ids, not {config.Init}.", nameof(config));
        return PromptTokenizer.FitToLength(PromptTokenizer.Encode(config.Tokenizer, config.InitText), config.VirtualTokens);
    }

    internal static ScalarType StorageType(ScalarType embeddingType)
        => embeddingType is ScalarType.Float16 or ScalarType.BFloat16 ? ScalarType.Float32 : embeddingType;

    // A generator draws on its own device; what it draws then moves to the table's.
    private static Tensor SampleIds(int count, long vocabulary, Device device, Generator? generator)
    {
        var ids = randint(0, vocabulary, new long[] { count }, dtype: ScalarType.Int64, device: generator?.device ?? device, generator: generator);
        return ids.to(device);
    }

    private static Tensor TextTokenIds(SoftPromptConfig config, long vocabulary, Device device)
    {
        var ids = InitTokenIds(config);
        var outside = ids.Where(id => id < 0 || id >= vocabulary).Distinct().ToList();
        if (outside.Count > 0)
            throw new ArgumentException(
                $"The init text's token ids {string.Join(", ", outside)} are outside the embedding's {vocabulary} rows; " +
                $"the tokenizer {config.Tokenizer} does not fit this model.", nameof(config));
        return tensor(ids.Select(id => (long)id).ToArray(), dtype: ScalarType.Int64, device: device);
    }

    /// <inheritdoc />
    protected override void RegisterComponents()
    {
        // Registered explicitly in the constructor.
    }
}
