// oneDNN keeps a compiled kernel for every shape of bfloat16 product it meets (up to 1,024); fine-tuning on records of
// varying length and generation meet many. Bounding the cache before the first product lowered the main job's LoRA peak
// by about 0.14 GiB at the same speed (PeftGen.Precision.OneDnnPrimitiveCache); an environment's own capacity stands.
PeftGen.Precision.OneDnnPrimitiveCache.TryLimit(64);
return TinyGpt.Cli.Run(args);
