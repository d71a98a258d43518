namespace PeftGen.Generators.Model;

/// <summary>How layer kinds are named to users and in generated code.</summary>
internal static class LayerKinds
{
    /// <summary>The <c>PeftLayerKind</c> member of a layer (blocks and stacks are not layers).</summary>
    public static string RuntimeName(LayerKind kind) => kind switch
    {
        LayerKind.Linear => "Projection",
        LayerKind.TokenEmbedding => "TokenEmbedding",
        LayerKind.Embedding => "Embedding",
        LayerKind.LayerNorm => "LayerNorm",
        LayerKind.RmsNorm => "RmsNorm",
        _ => throw new System.ArgumentOutOfRangeException(nameof(kind), kind, "Blocks and stacks are not layers."),
    };
}
