using System;
using PeftGen;
using static TorchSharp.torch;

using var x = ones(2, 4);
using var layer = new LoraLinear(4, 3);
layer.AddAdapter("default", new LoraConfig(Rank: 2, Alpha: 4));
using var y = layer.forward(x);
Console.WriteLine($"consumer: LoraLinear output [{string.Join(", ", y.shape)}]");
