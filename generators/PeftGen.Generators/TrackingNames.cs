namespace PeftGen.Generators;

/// <summary>Names of the generator's tracked steps (tests check each step's caching by these names).</summary>
internal static class TrackingNames
{
    public const string ModelParses = nameof(ModelParses);
    public const string ModuleParses = nameof(ModuleParses);
    public const string Models = nameof(Models);
    public const string Modules = nameof(Modules);
    public const string AllModules = nameof(AllModules);
    public const string ResolvedModels = nameof(ResolvedModels);
    public const string Diagnostics = nameof(Diagnostics);
    public const string Sites = nameof(Sites);
    public const string BlockDimensions = nameof(BlockDimensions);
}
