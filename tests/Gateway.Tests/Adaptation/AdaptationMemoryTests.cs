namespace Gateway.Tests.Adaptation;

/// <summary>Runs alone (no other test allocates meanwhile), so the process-wide managed heap measures this test only.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MemoryCollection
{
    public const string Name = "Memory-sensitive";
}

[Collection(MemoryCollection.Name)]
public sealed class AdaptationMemoryTests
{
    [Fact]
    public Task Respmod_Echo_100MB_ByteIdentical_MemoryBounded()
        => AdaptationTests.EchoThroughRespmodAsync(100 * 1024 * 1024, "echo?prefer=200");
}
