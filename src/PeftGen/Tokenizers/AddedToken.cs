namespace PeftGen.Tokenizers;

/// <summary>
/// A token added on top of a tokenizer's learned vocabulary (<c>added_tokens</c> of <c>tokenizer.json</c>,
/// <c>added_tokens_decoder</c> of <c>tokenizer_config.json</c>): matched whole in the text, never split.
/// </summary>
/// <param name="Id">Its id.</param>
/// <param name="Content">Its text, for example <c>&lt;|im_start|&gt;</c>.</param>
/// <param name="Special">Whether decoding drops it (transformers' <c>skip_special_tokens</c>).</param>
public sealed record AddedToken(int Id, string Content, bool Special);
