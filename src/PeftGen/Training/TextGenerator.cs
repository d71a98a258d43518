using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using PeftGen.Data;
using PeftGen.Inference;
using PeftGen.Precision;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftGen.Training;

/// <summary>How <see cref="TextGenerator"/> picks tokens.</summary>
public sealed record GenerationOptions
{
    /// <summary>Most tokens to add after the prompt.</summary>
    public int MaxNewTokens { get; init; } = 32;

    /// <summary>Softmax temperature; 0 (the default) means greedy decoding.</summary>
    public double Temperature { get; init; }

    /// <summary>Sample only among the <c>TopK</c> most likely tokens; 0 means all.</summary>
    public int TopK { get; init; }

    /// <summary>Seed of the sampling generator (each call starts from it, so a call is repeatable).</summary>
    public long Seed { get; init; }

    /// <summary>Generation stops after this id (which is not returned); null never stops early.</summary>
    public int? EndOfSequenceId { get; init; }

    /// <summary>Longest input the model accepts; older tokens are dropped from the left beyond it. 0: unlimited.</summary>
    public int MaxContext { get; init; }

    /// <summary>
    /// Never produce a token that would repeat an n-gram of this size already in the sequence (prompt included), as
    /// Hugging Face's <c>no_repeat_ngram_size</c>; 0 (the default) allows repeats.
    /// </summary>
    public int NoRepeatNGramSize { get; init; }

    /// <summary>End-of-sequence cannot be chosen before this many new tokens (Hugging Face's <c>min_new_tokens</c>).</summary>
    public int MinNewTokens { get; init; }

    /// <summary>
    /// Nucleus sampling (Holtzman et al.): sample only among the most likely tokens whose probabilities add up to at
    /// least <c>TopP</c>; 1 (the default) means all. Applies after <see cref="TopK"/>, as Hugging Face applies it.
    /// </summary>
    public double TopP { get; init; } = 1;

    /// <summary>
    /// Token sequences that end a row's generation when its new tokens end with one of them; the stop sequence itself
    /// is not returned. Text stop sequences: see <see cref="TextGenerator.Generate(ITextTokenizer, string, GenerationOptions, IReadOnlyList{string})"/>.
    /// </summary>
    public IReadOnlyList<IReadOnlyList<int>> StopSequences { get; init; } = [];

    /// <summary>
    /// Prompts decoded together. With the KV cache, a model that supports left padding
    /// (<see cref="ICausalLanguageModel.SupportsLeftPadding"/>) decodes prompts of any lengths together; otherwise a
    /// batch holds prompts of one length.
    /// </summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>The precision of the forward passes: bfloat16 where the device has it fast, unless set otherwise.</summary>
    public TrainingPrecision Precision { get; init; } = TrainingPrecision.Auto;

    /// <summary>
    /// Feed one new position per step and keep earlier keys and values in a <see cref="KeyValueCache"/> (the default),
    /// for models whose attention uses one; false recomputes the whole sequence every step. A model that does not use
    /// the cache, and a generation that would outgrow <see cref="MaxContext"/>, recompute either way.
    /// </summary>
    public bool UseKeyValueCache { get; init; } = true;
}

/// <summary>One token as <see cref="TextGenerator"/> produces it, for streaming.</summary>
/// <param name="Row">The prompt's index in the call.</param>
/// <param name="Index">The token's index among the row's new tokens.</param>
/// <param name="Token">The token id.</param>
public readonly record struct GeneratedToken(int Row, int Index, int Token);

/// <summary>
/// Greedy and sampled decoding over an <see cref="ICausalLanguageModel"/>. The prompt is run once and each step then
/// feeds only the new token, reusing earlier keys and values from a <see cref="KeyValueCache"/> when the model's
/// attention keeps one (see <see cref="GenerationOptions.UseKeyValueCache"/>); only the last position goes through the head.
/// </summary>
/// <remarks>
/// <see cref="GenerateBatch"/> decodes prompts together: left-padded with an attention mask when the model supports
/// it (<see cref="ICausalLanguageModel.SupportsLeftPadding"/>) and the cache is on, so each row's greedy result is what
/// it would be alone; otherwise prompts of equal length share a batch. A row that stops is dropped from the batch (and
/// the cache) once enough rows have stopped to make the copy worth it. Sampling draws from one generator seeded per
/// call, by inverse transform of each row's cumulative distribution.
/// </remarks>
public sealed class TextGenerator
{
    // A stopped row stays in the batch (its outputs ignored) until this share of the rows has stopped: dropping rows
    // copies the whole cache, keeping them costs their share of each step.
    private const double CompactBelow = 0.75;

    private readonly nn.Module module;
    private readonly ICausalLanguageModel model;
    private bool precisionWarned;

    /// <summary>Creates a generator for a model that is an <see cref="nn.Module"/> implementing <see cref="ICausalLanguageModel"/>.</summary>
    public TextGenerator(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        this.model = model as ICausalLanguageModel
            ?? throw new ArgumentException($"{model.GetType().Name} does not implement {nameof(ICausalLanguageModel)}.", nameof(model));
        module = model;
    }

    /// <summary>
    /// Raised once per generator, before its first decoding, when <see cref="GenerationOptions.Precision"/> names a
    /// 16-bit type explicitly and the device only emulates its products (bfloat16 on a CPU without AVX-512 BF16 or
    /// AMX, float16 without AVX-512 FP16 or AMX-FP16): decoding still runs, several times slower than in float32. The
    /// argument says which type, which device and what to choose instead. <see cref="TrainingPrecision.Auto"/> never
    /// raises it.
    /// </summary>
    public event EventHandler<string>? Warning;

    /// <summary>The new token ids after <paramref name="promptIds"/> (without the end-of-sequence id).</summary>
    public IReadOnlyList<int> Generate(IReadOnlyList<int> promptIds, GenerationOptions options)
    {
        ArgumentNullException.ThrowIfNull(promptIds);
        return GenerateBatch([promptIds], options)[0];
    }

    /// <summary>The new token ids after each prompt, in order (each without the end-of-sequence id or stop sequence).</summary>
    /// <param name="prompts">Token ids of each prompt (at least one each).</param>
    /// <param name="options">How to decode.</param>
    /// <param name="onToken">Called with each token as it is chosen (streaming); a token that ends its row (end of sequence, or the last of a stop sequence) is not reported.</param>
    /// <param name="adapters">
    /// The LoRA adapter of each prompt (null: the base alone), all decoded in the same batches as PEFT's
    /// <c>adapter_names</c> (<see cref="AdapterContext.UsePerRow(IPeftModel, IReadOnlyList{string?}?, IReadOnlyList{string?}?)"/>):
    /// one base forward per step for every tenant; each row equals that prompt decoded alone under its adapter. Null
    /// (the default) leaves the choice to the enclosing <see cref="AdapterContext"/> scope or the active adapter.
    /// </param>
    public IReadOnlyList<IReadOnlyList<int>> GenerateBatch(IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options, Action<GeneratedToken>? onToken = null,
        IReadOnlyList<string?>? adapters = null)
        => Run(prompts, options, onToken, stop: null, adapters);

    private IReadOnlyList<IReadOnlyList<int>> Run(IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options, Action<GeneratedToken>? onToken,
        Func<int, List<int>, int>? stop, IReadOnlyList<string?>? adapters = null)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        foreach (var prompt in prompts)
        {
            ArgumentNullException.ThrowIfNull(prompt, nameof(prompts));
            if (prompt.Count == 0) throw new ArgumentException("Every prompt needs at least one token.", nameof(prompts));
        }
        Validate(options);
        if (adapters is not null && adapters.Count != prompts.Count)
            throw new ArgumentException($"{adapters.Count} adapter names for {prompts.Count} prompts: name one (or null) per prompt.", nameof(adapters));

        var results = new IReadOnlyList<int>[prompts.Count];
        bool wasTraining = module.training;
        module.eval();
        using var noGrad = no_grad();
        var computeDType = PrecisionSupport.ComputeDType(options.Precision, model.HeadDevice());
        if (!precisionWarned)
        {
            precisionWarned = true;
            if (options.Precision != TrainingPrecision.Auto && PrecisionSupport.SlowComputeWarning(computeDType, model.HeadDevice()) is { } slow)
                Warning?.Invoke(this, slow);
        }
        using var precision = ComputePrecision.Use(computeDType);
        // The weights do not change while decoding: each is cast to the compute dtype once, not once per token.
        using var casts = ComputePrecision.ReuseParameterCasts();
        using var generator = new Generator((ulong)options.Seed);
        try
        {
            foreach (var batch in Batches(prompts, options))
            {
                var produced = Decode(batch.Select(i => prompts[i]).ToArray(), adapters is null ? null : batch.Select(i => adapters[i]).ToArray(), batch, options, generator, onToken, stop);
                for (int row = 0; row < batch.Length; row++) results[batch[row]] = produced[row];
            }
        }
        finally
        {
            module.train(wasTraining);
        }
        return results;
    }
    private static void Validate(GenerationOptions options)
    {
        if (options.MaxNewTokens < 0 || options.TopK < 0 || options.MaxContext < 0 || options.Temperature < 0 || options.NoRepeatNGramSize < 0 || options.MinNewTokens < 0)
            throw new ArgumentOutOfRangeException(nameof(options), "Generation settings must not be negative.");
        if (options.BatchSize <= 0) throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize, "BatchSize must be positive.");
        if (!(options.TopP > 0 && options.TopP <= 1))
            throw new ArgumentOutOfRangeException(nameof(options), options.TopP, "TopP must be above 0 and at most 1 (1 samples from every token).");
        if (double.IsNaN(options.Temperature) || double.IsInfinity(options.Temperature))
            throw new ArgumentOutOfRangeException(nameof(options), options.Temperature, "Temperature must be a finite number (0 for greedy decoding).");
        ArgumentNullException.ThrowIfNull(options.StopSequences, nameof(options));
        foreach (var sequence in options.StopSequences)
        {
            if (sequence is null || sequence.Count == 0) throw new ArgumentException("A stop sequence needs at least one token.", nameof(options));
        }
    }

    // Which prompts decode together: any lengths, shortest first, when rows can be left-padded; else one length each.
    private IEnumerable<int[]> Batches(IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options)
    {
        if (Pads(options))
            return Enumerable.Range(0, prompts.Count).OrderBy(i => prompts[i].Count).Chunk(options.BatchSize);
        return Enumerable.Range(0, prompts.Count).GroupBy(i => prompts[i].Count).OrderBy(g => g.Key).SelectMany(g => g.Chunk(options.BatchSize));
    }

    private bool Pads(GenerationOptions options) => options.UseKeyValueCache && options.MaxContext == 0 && model.SupportsLeftPadding;

    private List<int>[] Decode(IReadOnlyList<int>[] prompts, string?[]? adapters, int[] callRows, GenerationOptions options, Generator generator, Action<GeneratedToken>? onToken,
        Func<int, List<int>, int>? stop)
    {
        int longest = prompts.Max(p => p.Count);
        // Each row's tokens, left-padded to the longest prompt (padding is id 0, never attended).
        var sequences = prompts.Select(p => Enumerable.Repeat(0L, longest - p.Count).Concat(p.Select(id => (long)id)).ToList()).ToArray();
        var produced = prompts.Select(_ => new List<int>()).ToArray();
        var finished = new bool[prompts.Length];
        // Rows the batch (and the cache) still holds, in order; a stopped row stays until enough have stopped.
        var rows = Enumerable.Range(0, prompts.Length).ToList();
        var device = model.HeadDevice();
        // A window that slides (MaxContext) moves every position, which a cache cannot follow: recompute then.
        bool fits = options.MaxContext == 0 || longest + options.MaxNewTokens <= options.MaxContext;
        // On the CPU, attention of one new position over a bfloat16 cache is several times slower than over a float32
        // one (libtorch's CPU flash attention then multiplies matrices by vectors): keep a CPU cache in float32.
        using var cache = new KeyValueCache
        {
            Reserve = longest + options.MaxNewTokens + 1,
            StorageDType = device.type == DeviceType.CPU ? ScalarType.Float32 : null,
        };
        using var useCache = options.UseKeyValueCache && fits ? cache.Use() : null;
        bool padded = prompts.Any(p => p.Count != longest);
        if (padded && (useCache is null || !model.SupportsLeftPadding))
            throw new InvalidOperationException("Prompts of different lengths need the KV cache and a model that supports left padding.");
        int live = prompts.Length;
        for (int step = 0; step < options.MaxNewTokens && live > 0; step++)
        {
            using var scope = NewDisposeScope();
            int length = sequences[rows[0]].Count;
            // After the first pass a caching model takes only the newest token of each row.
            bool incremental = useCache is not null && cache.Length > 0;
            int start = incremental ? length - 1 : options.MaxContext > 0 ? Math.Max(0, length - options.MaxContext) : 0;
            int width = length - start;
            // A caching prefill runs each distinct prompt once; the cache then repeats its rows for every copy (the
            // samples of one prompt that minimum-Bayes-risk decoding draws share their prompt's keys and values).
            var fed = rows;
            int[]? copies = null;
            if (useCache is not null && !incremental)
            {
                var distinct = new Dictionary<PromptKey, int>(PromptComparer.Instance);
                copies = rows.Select(i => new PromptKey(prompts[i], adapters?[i])).Select(key => distinct.TryAdd(key, distinct.Count) ? distinct.Count - 1 : distinct[key]).ToArray();
                if (distinct.Count < rows.Count) fed = distinct.Keys.Select(p => rows[Array.FindIndex(copies, c => c == distinct[p])]).ToList();
                else copies = null;
            }
            var window = new long[fed.Count * width];
            for (int r = 0; r < fed.Count; r++) sequences[fed[r]].CopyTo(start, window, r * width, width);
            if (padded && !incremental) cache.SetInputMask(RealPositions(prompts, fed, longest, device));
            using var selection = adapters is null ? null : UseRows(fed.Select(i => adapters[i]).ToList());
            var hidden = model.ForwardHidden(tensor(window, new long[] { fed.Count, width }, device: device));
            if (useCache is not null) cache.Commit();
            var last = hidden.select(1, -1);
            if (copies is not null)
            {
                using var expand = tensor(copies.Select(c => (long)c).ToArray(), device: device);
                if (cache.Layers > 0) cache.KeepRows(copies.Select(c => (long)c).ToList());
                last = last.index_select(0, expand);
            }
            var logits = FewRowProduct.Linear(ComputePrecision.Cast(last), ComputePrecision.Cast(model.HeadWeight)).to(ScalarType.Float32);
            Suppress(logits, rows.Select(i => sequences[i]).ToArray(), rows.Select(i => prompts[i].Count).ToArray(), step, options);
            var next = Choose(logits, options, generator);
            for (int r = 0; r < rows.Count; r++)
            {
                int index = rows[r];
                int token = (int)next[r];
                sequences[index].Add(token);
                if (finished[index]) continue;
                if (options.EndOfSequenceId == token)
                {
                    Finish(index);
                    continue;
                }
                produced[index].Add(token);
                int cut = StopLength(produced[index], options.StopSequences);
                if (cut < 0 && stop is not null) cut = stop(callRows[index], produced[index]);
                if (cut >= 0)
                {
                    produced[index].RemoveRange(produced[index].Count - cut, cut);
                    Finish(index);
                    continue;
                }
                onToken?.Invoke(new GeneratedToken(callRows[index], produced[index].Count - 1, token));
            }
            if (live > 0 && live <= CompactBelow * rows.Count)
            {
                var kept = new List<long>(live);
                for (int r = 0; r < rows.Count; r++)
                {
                    if (!finished[rows[r]]) kept.Add(r);
                }
                if (cache.Layers > 0) cache.KeepRows(kept);
                rows = kept.Select(r => rows[(int)r]).ToList();
            }
        }
        return produced;

        void Finish(int index)
        {
            finished[index] = true;
            live--;
        }
    }

    // The rows' adapters for one forward pass, checked against the model's when it is a PEFT model.
    private IDisposable UseRows(IReadOnlyList<string?> rowAdapters) =>
        module is IPeftModel peft ? AdapterContext.UsePerRow(peft, rowAdapters) : AdapterContext.UsePerRow(rowAdapters);

    // A prompt and the adapter it is decoded with: rows equal in both share a prefill.
    private readonly record struct PromptKey(IReadOnlyList<int> Prompt, string? Adapter);

    // Prompts equal token for token, under the same adapter.
    private sealed class PromptComparer : IEqualityComparer<PromptKey>
    {
        public static readonly PromptComparer Instance = new();

        public bool Equals(PromptKey x, PromptKey y) => x.Adapter == y.Adapter && (ReferenceEquals(x.Prompt, y.Prompt) || x.Prompt.SequenceEqual(y.Prompt));

        public int GetHashCode(PromptKey key)
        {
            var hash = new HashCode();
            hash.Add(key.Adapter);
            foreach (var id in key.Prompt) hash.Add(id);
            return hash.ToHashCode();
        }
    }

    // Which of the longest-prompt positions are real for each row still in the batch (false where left padding is).
    private static Tensor RealPositions(IReadOnlyList<int>[] prompts, List<int> rows, int longest, Device device)
    {
        var real = new bool[rows.Count * longest];
        for (int r = 0; r < rows.Count; r++)
        {
            int pad = longest - prompts[rows[r]].Count;
            Array.Fill(real, true, r * longest + pad, longest - pad);
        }
        return tensor(real, new long[] { rows.Count, longest }, device: device);
    }

    // How many trailing tokens of a row's new tokens form a stop sequence (-1 when none ends them).
    private static int StopLength(List<int> produced, IReadOnlyList<IReadOnlyList<int>> stops)
    {
        foreach (var stop in stops)
        {
            if (stop.Count > produced.Count) continue;
            bool match = true;
            for (int k = 0; k < stop.Count && match; k++) match = produced[produced.Count - stop.Count + k] == stop[k];
            if (match) return stop.Count;
        }
        return -1;
    }

    // Bans, per row, end-of-sequence before MinNewTokens and every token that would complete an n-gram already seen
    // in the row's real tokens (a left-padded row's padding is not among them).
    private static void Suppress(Tensor logits, List<long>[] sequences, int[] promptLengths, int step, GenerationOptions options)
    {
        var banned = new List<long>();
        if (options.EndOfSequenceId is int eos && step < options.MinNewTokens)
        {
            for (int row = 0; row < sequences.Length; row++) banned.Add((long)row * logits.shape[1] + eos);
        }
        int n = options.NoRepeatNGramSize;
        if (n > 0)
        {
            for (int row = 0; row < sequences.Length; row++)
            {
                var seq = sequences[row];
                int first = seq.Count - step - promptLengths[row];
                if (seq.Count - first < n) continue;
                // The last n − 1 tokens; every earlier occurrence of them bans the token that followed it.
                for (int i = first; i + n <= seq.Count; i++)
                {
                    bool match = true;
                    for (int k = 0; k < n - 1 && match; k++) match = seq[i + k] == seq[seq.Count - n + 1 + k];
                    if (match) banned.Add(row * logits.shape[1] + seq[i + n - 1]);
                }
            }
        }
        if (banned.Count == 0) return;
        using var flat = logits.view(-1);
        using var index = tensor(banned.ToArray(), device: logits.device);
        using var negativeInfinity = double.NegativeInfinity.ToScalar();
        flat.index_fill_(0, index, negativeInfinity);
    }

    // Greedy, or one draw per row from softmax(logits / T) after top-k and top-p: the first token whose cumulative
    // probability exceeds a uniform number times the total (inverse transform sampling; a banned token has
    // probability 0 and is never drawn).
    private static long[] Choose(Tensor logits, GenerationOptions options, Generator generator)
    {
        if (options.Temperature == 0) return logits.argmax(1).cpu().data<long>().ToArray();
        // Scalars held until the calls that read them return: an implicit conversion's temporary (and the one TorchSharp's
        // tensor-and-number operators make) can be finalized while native code still reads it.
        using Scalar temperature = options.Temperature.ToScalar(), negativeInfinity = double.NegativeInfinity.ToScalar(),
            topP = options.TopP.ToScalar(), last = (logits.shape[1] - 1).ToScalar();
        var scaled = logits.div(temperature);
        long vocab = scaled.shape[1];
        if (options.TopK > 0 && options.TopK < vocab)
        {
            var kth = scaled.topk(options.TopK, dim: 1).values.narrow(1, options.TopK - 1, 1);
            scaled = scaled.masked_fill(scaled.lt(kth), negativeInfinity);
        }
        Tensor? order = null;
        if (options.TopP < 1)
        {
            // Keep the most likely tokens until their probabilities add up to TopP (always the most likely one).
            var sorted = scaled.sort(1, descending: true);
            order = sorted.Indices;
            var probabilities = sorted.Values.softmax(1);
            var before = probabilities.cumsum(1) - probabilities;
            scaled = sorted.Values.masked_fill(before.ge(topP), negativeInfinity);
        }
        var cumulative = scaled.softmax(1).cumsum(1);
        var draw = rand(new long[] { cumulative.shape[0], 1 }, generator: generator, device: cumulative.device) * cumulative.narrow(1, vocab - 1, 1);
        var chosen = searchsorted(cumulative, draw, right: true).clamp_max(last);
        if (order is not null) chosen = order.gather(1, chosen);
        return chosen.squeeze(1).cpu().data<long>().ToArray();
    }

    /// <summary>
    /// Tokenizes <paramref name="prompt"/>, generates, and decodes the new tokens; stops at the tokenizer's EOS or
    /// where the text first contains one of <paramref name="stop"/> (the text is cut before it).
    /// </summary>
    public string Generate(ITextTokenizer tokenizer, string prompt, GenerationOptions options, IReadOnlyList<string>? stop = null)
        => Generate(tokenizer, [prompt], options, stop)[0];

    /// <summary>
    /// Tokenizes each prompt, generates for all of them together (see <see cref="GenerateBatch(IReadOnlyList{IReadOnlyList{int}}, GenerationOptions, Action{GeneratedToken}?, IReadOnlyList{string?}?)"/>),
    /// and decodes each row's new tokens; a row stops at the tokenizer's EOS or where its text first contains one of
    /// <paramref name="stop"/> (the text is cut before it).
    /// </summary>
    public IReadOnlyList<string> Generate(ITextTokenizer tokenizer, IReadOnlyList<string> prompts, GenerationOptions options, IReadOnlyList<string>? stop = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(prompts);
        return GenerateTexts(tokenizer, prompts.Select(p => tokenizer.Encode(p ?? throw new ArgumentNullException(nameof(prompts)))).ToList(), options, stop);
    }

    /// <summary>
    /// Generates after prompts already encoded (for example with a template's separator tokens) and decodes each row's
    /// new tokens; a row stops at the tokenizer's EOS or where its text first contains one of <paramref name="stop"/>
    /// (the text is cut before it).
    /// </summary>
    public IReadOnlyList<string> GenerateTexts(ITextTokenizer tokenizer, IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options, IReadOnlyList<string>? stop = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        var texts = TextStops(stop);
        var produced = Run(prompts, WithEos(tokenizer, options), null, texts.Count == 0 ? null : (_, tokens) => TextStop(tokenizer, tokens, texts));
        return produced.Select(tokens => Cut(tokenizer.Decode(tokens), texts)).ToList();
    }

    /// <summary>
    /// Streams the text of one prompt's new tokens as they are chosen: each item is the text added since the previous
    /// one (a token that ends inside a multi-byte character waits for the rest). Stops as
    /// <see cref="Generate(ITextTokenizer, string, GenerationOptions, IReadOnlyList{string})"/> does; the pieces join
    /// to its result. Decoding runs on the thread pool; cancelling stops it at the next token.
    /// </summary>
    public async IAsyncEnumerable<string> StreamAsync(ITextTokenizer tokenizer, string prompt, GenerationOptions options, IReadOnlyList<string>? stop = null,
        [System.Runtime.CompilerServices.EnumeratorCancellation] System.Threading.CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(options);
        var texts = TextStops(stop);
        var ids = tokenizer.Encode(prompt);
        var channel = System.Threading.Channels.Channel.CreateUnbounded<int>(new() { SingleReader = true, SingleWriter = true });
        var decoding = Task.Run(() =>
        {
            try
            {
                var produced = Run([ids], WithEos(tokenizer, options), token =>
                {
                    cancellation.ThrowIfCancellationRequested();
                    channel.Writer.TryWrite(token.Token);
                }, texts.Count == 0 ? null : (_, tokens) => TextStop(tokenizer, tokens, texts));
                channel.Writer.Complete();
                return produced[0];
            }
            catch (Exception e)
            {
                channel.Writer.Complete(e);
                throw;
            }
        }, cancellation);
        var tokens = new List<int>();
        int sent = 0;
        await foreach (var token in channel.Reader.ReadAllAsync(cancellation).ConfigureAwait(false))
        {
            tokens.Add(token);
            var text = tokenizer.Decode(tokens);
            // Hold back an incomplete character (decoded as U+FFFD) and an ending that could still begin a stop text.
            int safe = text.EndsWith('\uFFFD') ? text.LastIndexOf('\uFFFD') : text.Length;
            safe = Math.Min(safe, text.Length - StopPrefixLength(text, texts));
            if (safe > sent)
            {
                yield return text[sent..safe];
                sent = safe;
            }
        }
        var final = Cut(tokenizer.Decode(await decoding.ConfigureAwait(false)), texts);
        if (final.Length > sent) yield return final[sent..];
    }

    // The longest ending of text that is the beginning of a stop text.
    private static int StopPrefixLength(string text, List<string> stops)
    {
        int longest = 0;
        foreach (var stop in stops)
        {
            for (int n = Math.Min(stop.Length - 1, text.Length); n > longest; n--)
            {
                if (string.CompareOrdinal(text, text.Length - n, stop, 0, n) == 0)
                {
                    longest = n;
                    break;
                }
            }
        }
        return longest;
    }

    private static GenerationOptions WithEos(ITextTokenizer tokenizer, GenerationOptions options) =>
        options with { EndOfSequenceId = options.EndOfSequenceId ?? tokenizer.EndOfSequenceId };

    private static List<string> TextStops(IReadOnlyList<string>? stop)
    {
        var texts = stop?.ToList() ?? [];
        if (texts.Any(string.IsNullOrEmpty)) throw new ArgumentException("A stop text must not be empty.", nameof(stop));
        return texts;
    }

    // Text stop sequences stop a row (-1: go on) without dropping tokens: the caller cuts the decoded text (Cut).
    private static int TextStop(ITextTokenizer tokenizer, List<int> tokens, List<string> stops) =>
        FirstStop(tokenizer.Decode(tokens), stops) >= 0 ? 0 : -1;

    private static int FirstStop(string text, List<string> stops)
    {
        int first = -1;
        foreach (var stop in stops)
        {
            int at = text.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (first < 0 || at < first)) first = at;
        }
        return first;
    }

    private static string Cut(string text, List<string> stops)
    {
        int at = FirstStop(text, stops);
        return at < 0 ? text : text[..at];
    }
}
