using PeftGen.Training;
using PeftGen.Formats.SafeTensors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftGen.Benchmarks;

// The naive baseline: the tiny GPT written by hand in plain TorchSharp (nn.Linear, nn.Embedding, nn.LayerNorm),
// with LoRA as two extra nn.Linear layers beside a frozen base, no generator and no PeftGen runtime type.

/// <summary>A frozen nn.Linear plus a trainable low-rank path <c>scale · B(A(dropout(x)))</c>.</summary>
public sealed class HandLoraLinear : nn.Module<Tensor, Tensor>
{
    private readonly Linear base_layer;
    private readonly Linear lora_A;
    private readonly Linear lora_B;
    private readonly Dropout lora_dropout;
    private readonly double scale;

    public HandLoraLinear(long inFeatures, long outFeatures, int rank, double alpha, double dropout) : base(nameof(HandLoraLinear))
    {
        base_layer = nn.Linear(inFeatures, outFeatures);
        base_layer.weight!.requires_grad = false;
        base_layer.bias!.requires_grad = false;
        lora_A = nn.Linear(inFeatures, rank, hasBias: false);
        lora_B = nn.Linear(rank, outFeatures, hasBias: false);
        using (no_grad()) lora_B.weight!.zero_();
        lora_dropout = nn.Dropout(dropout);
        scale = alpha / rank;
        RegisterComponents();
    }

    /// <summary>Copies a GPT-2 Conv1D checkpoint weight (<c>in × out</c>) and bias into the frozen base.</summary>
    public void LoadConv1D(SafeTensorsFile file, string prefix)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        base_layer.weight!.copy_(file.Read(prefix + ".weight").t());
        base_layer.bias!.copy_(file.Read(prefix + ".bias"));
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var result = base_layer.forward(x) + lora_B.forward(lora_A.forward(lora_dropout.forward(x))) * scale;
        return result.MoveToOuterDisposeScope();
    }
}

/// <summary>One pre-norm GPT-2 block.</summary>
public sealed class HandBlock : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm ln_1;
    private readonly HandLoraLinear c_attn;
    private readonly HandLoraLinear attn_proj;
    private readonly LayerNorm ln_2;
    private readonly HandLoraLinear c_fc;
    private readonly HandLoraLinear mlp_proj;
    private readonly long heads;

    public HandBlock(long width, long heads, int rank, double alpha, double dropout) : base(nameof(HandBlock))
    {
        this.heads = heads;
        ln_1 = nn.LayerNorm(width);
        c_attn = new HandLoraLinear(width, 3 * width, rank, alpha, dropout);
        attn_proj = new HandLoraLinear(width, width, rank, alpha, dropout);
        ln_2 = nn.LayerNorm(width);
        c_fc = new HandLoraLinear(width, 4 * width, rank, alpha, dropout);
        mlp_proj = new HandLoraLinear(4 * width, width, rank, alpha, dropout);
        RegisterComponents();
    }

    /// <summary>Copies block <paramref name="prefix"/> (e.g. <c>transformer.h.0</c>) of a GPT-2 checkpoint.</summary>
    public void Load(SafeTensorsFile file, string prefix)
    {
        HandWrittenGpt.LoadNorm(ln_1, file, prefix + ".ln_1");
        HandWrittenGpt.LoadNorm(ln_2, file, prefix + ".ln_2");
        c_attn.LoadConv1D(file, prefix + ".attn.c_attn");
        attn_proj.LoadConv1D(file, prefix + ".attn.c_proj");
        c_fc.LoadConv1D(file, prefix + ".mlp.c_fc");
        mlp_proj.LoadConv1D(file, prefix + ".mlp.c_proj");
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long batch = x.shape[0], seq = x.shape[1], width = x.shape[2];
        var qkv = c_attn.forward(ln_1.forward(x)).split(width, dim: 2);
        var q = qkv[0].view(batch, seq, heads, width / heads).transpose(1, 2);
        var k = qkv[1].view(batch, seq, heads, width / heads).transpose(1, 2);
        var v = qkv[2].view(batch, seq, heads, width / heads).transpose(1, 2);
        var y = nn.functional.scaled_dot_product_attention(q, k, v, is_casual: true);
        y = y.transpose(1, 2).contiguous().view(batch, seq, width);
        x = x + attn_proj.forward(y);
        var hidden = nn.functional.gelu(c_fc.forward(ln_2.forward(x)), GELU.Approximate.tanh);
        x = x + mlp_proj.forward(hidden);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>The whole GPT: embeddings, blocks, final norm and a head tied to the token embedding.</summary>
public sealed class HandWrittenGpt : nn.Module<Tensor, Tensor>, ICausalLanguageModel
{
    private readonly Embedding wte;
    private readonly Embedding wpe;
    private readonly ModuleList<HandBlock> h;
    private readonly LayerNorm ln_f;

    public HandWrittenGpt(long vocab, long context, long width, int layers, long heads, int rank, double alpha, double dropout) : base(nameof(HandWrittenGpt))
    {
        wte = nn.Embedding(vocab, width);
        wpe = nn.Embedding(context, width);
        h = nn.ModuleList<HandBlock>();
        for (int i = 0; i < layers; i++) h.Add(new HandBlock(width, heads, rank, alpha, dropout));
        ln_f = nn.LayerNorm(width);
        RegisterComponents();
        // LoRA: only the adapters train; embeddings and norms stay frozen as in the generated model.
        wte.weight!.requires_grad = false;
        wpe.weight!.requires_grad = false;
        foreach (var (name, parameter) in named_parameters())
        {
            if (!name.Contains("lora_")) parameter.requires_grad = false;
        }
    }

    /// <summary>Copies the weights of a GPT-2-layout <c>model.safetensors</c> in <paramref name="folder"/> (adapters keep their init).</summary>
    public void LoadBase(string folder)
    {
        using var file = SafeTensorsFile.Open(Path.Combine(folder, "model.safetensors"));
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            wte.weight!.copy_(file.Read("transformer.wte.weight"));
            wpe.weight!.copy_(file.Read("transformer.wpe.weight"));
        }
        for (int i = 0; i < h.Count; i++) h[i].Load(file, $"transformer.h.{i}");
        LoadNorm(ln_f, file, "transformer.ln_f");
    }

    internal static void LoadNorm(LayerNorm norm, SafeTensorsFile file, string prefix)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        norm.weight!.copy_(file.Read(prefix + ".weight"));
        norm.bias!.copy_(file.Read(prefix + ".bias"));
    }

    /// <summary>Final hidden states (<c>batch × seq × width</c>), before the head.</summary>
    public Tensor ForwardHidden(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var x = wte.forward(ids) + wpe.forward(arange(ids.shape[1], dtype: ScalarType.Int64, device: ids.device));
        foreach (var block in h) x = block.forward(x);
        return ln_f.forward(x).MoveToOuterDisposeScope();
    }

    /// <summary>The head, tied to the token embedding.</summary>
    public Tensor HeadWeight => wte.weight!;

    /// <summary>Logits for every position (<c>batch × seq × vocab</c>).</summary>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        return ForwardHidden(ids).matmul(wte.weight!.t()).MoveToOuterDisposeScope();
    }
}
