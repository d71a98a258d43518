using PeftGen.Tests.Support;
using TorchSharp.Modules;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PeftGen.Tests.SoftPrompt;

[Collection(ProcessMemoryCollection.Name)]
public sealed class TokenRowsMemoryTests(ITestOutputHelper output)
{
    [Fact]
    public void A_trained_tables_lookup_adds_its_rows_to_the_gradient_without_a_table_sized_one()
    {
        const long count = 50_257, dim = 256, rows = 2048; // a 51 MB float32 table, 2 MB of looked-up rows
        manual_seed(3);
        using var scope = NewDisposeScope();
        var table = new Parameter(randn(count, dim) * 0.02);
        table.grad = zeros(count, dim); // a training loop's gradient, zeroed in place between steps
        var ids = randint(0, count, new long[] { rows });
        var upstream = randn(rows, dim);

        long PeakOfBackward(bool plain) => NativeHeap.PeakGrowth(() =>
        {
            var looked = plain ? table.index_select(0, ids) : TokenRowsFunction.Lookup(table, ids);
            (looked * upstream).sum().backward();
        });

        long plain = PeakOfBackward(plain: true); // index_select's backward: a zero-filled table-sized gradient
        long lookup = PeakOfBackward(plain: false);
        if (plain < 0) return; // No /proc/self/clear_refs: nothing to measure on this host.
        const long tableBytes = count * dim * sizeof(float);
        output.WriteLine($"{rows} rows of a {tableBytes / 1e6:F0} MB table: index_select +{plain / 1e6:F0} MB, lookup +{lookup / 1e6:F0} MB");
        Assert.True(plain >= tableBytes * 9 / 10, $"index_select's backward peaked only {plain / 1e6:F0} MB: this measurement would not see a table-sized gradient");
        Assert.True(lookup < tableBytes / 3, $"the lookup's backward peaked {lookup / 1e6:F0} MB above its inputs; the table is {tableBytes / 1e6:F0} MB");
        // Both gradients are the same: 2 × the rows' contribution after the two backward passes.
        Assert.True(Reference.RelativeError(table.grad!, zeros(count, dim).index_add_(0, ids, upstream, 2.0)) < 1e-6);
    }
}
