using System.Buffers;

namespace Gateway.Icap.Tests;

/// <summary>Builds multi-segment sequences ("gratuitously split buffers").</summary>
internal static class TestSequence
{
    public static ReadOnlySequence<byte> Create(ReadOnlySpan<byte> data, int segmentSize)
    {
        if (data.Length == 0) return ReadOnlySequence<byte>.Empty;
        Segment? first = null, last = null;
        for (var i = 0; i < data.Length; i += segmentSize)
        {
            var part = data.Slice(i, Math.Min(segmentSize, data.Length - i)).ToArray();
            if (first is null) first = last = new Segment(part, 0);
            else last = last!.Append(part);
        }
        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
