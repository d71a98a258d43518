using System.Collections.Generic;

namespace PeftGen;

/// <summary>
/// A PEFT model: implemented by the generator on every <see cref="PeftModelAttribute"/> class. The training glue
/// works on this.
/// </summary>
public interface IPeftModel
{
    /// <summary>The model's dimensions.</summary>
    ModelDims Dims { get; }

    /// <summary>Every layer, in registration order, with its checkpoint path.</summary>
    IReadOnlyList<PeftLayer> Layers { get; }
}
