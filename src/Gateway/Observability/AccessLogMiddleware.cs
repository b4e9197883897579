using System.Diagnostics;
using Gateway.Proxy;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Model;

namespace Gateway.Observability;

/// <summary>
/// One line per proxied request at Information, in the spirit of Squid's access.log:
/// <c>client method url status bytes duration_ms upstream</c>. Category <c>Gateway.AccessLog</c>.
/// </summary>
internal static partial class AccessLog
{
    public static IApplicationBuilder UseGatewayAccessLog(this IApplicationBuilder app)
    {
        var logger = app.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger("Gateway.AccessLog");
        return app.Use(async (context, next) =>
        {
            var start = Stopwatch.GetTimestamp();
            var counting = new CountingResponseBodyFeature(context.Features.GetRequiredFeature<IHttpResponseBodyFeature>());
            context.Features.Set<IHttpResponseBodyFeature>(counting);
            try
            {
                await next(context);
            }
            finally
            {
                var elapsed = Stopwatch.GetElapsedTime(start);
                var feature = context.Features.Get<GatewayRequestFeature>();
                var mode = feature?.Mode ?? ProxyMode.Reverse;
                var upstream = feature?.Upstream
                    ?? context.Features.Get<IReverseProxyFeature>()?.ProxiedDestination?.Model.Config.Address
                    ?? "-";
                var url = feature?.TargetUri.AbsoluteUri ?? context.Request.Path.ToString();
                var status = context.Response.StatusCode;
                if (logger.IsEnabled(LogLevel.Information))
                {
                    Request(logger, context.Connection.RemoteIpAddress?.ToString() ?? "-", context.Request.Method, url, status,
                        counting.BytesWritten, elapsed.TotalMilliseconds, upstream, feature?.CacheStatus ?? "-");
                }
                var modeTag = new KeyValuePair<string, object?>("mode", mode.ToString().ToLowerInvariant());
                var statusTag = new KeyValuePair<string, object?>("status", status);
                GatewayTelemetry.ProxyRequests.Add(1, modeTag, statusTag);
                GatewayTelemetry.ProxyDuration.Record(elapsed.TotalSeconds, modeTag);
                GatewayTelemetry.ProxyBytes.Add(counting.BytesWritten, modeTag);
            }
        });
    }

    [LoggerMessage(EventId = 1000, Level = LogLevel.Information, Message = "{Client} {Method} {Url} {Status} {Bytes} {DurationMs:0.0}ms {Upstream} {Cache}")]
    private static partial void Request(ILogger logger, string client, string method, string url, int status, long bytes, double durationMs, string upstream, string cache);

    /// <summary>Counts body bytes written to the client, whichever API the writer uses (Stream, PipeWriter, SendFile).</summary>
    private sealed class CountingResponseBodyFeature : IHttpResponseBodyFeature
    {
        private readonly IHttpResponseBodyFeature _inner;
        private CountingStream? _stream;
        private CountingPipeWriter? _writer;

        public CountingResponseBodyFeature(IHttpResponseBodyFeature inner) => _inner = inner;

        public long BytesWritten;

        public Stream Stream => _stream ??= new CountingStream(_inner.Stream, this);
        public System.IO.Pipelines.PipeWriter Writer => _writer ??= new CountingPipeWriter(_inner.Writer, this);
        public void DisableBuffering() => _inner.DisableBuffering();
        public Task StartAsync(CancellationToken cancellationToken = default) => _inner.StartAsync(cancellationToken);
        public Task CompleteAsync() => _inner.CompleteAsync();

        public async Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default)
        {
            await _inner.SendFileAsync(path, offset, count, cancellationToken);
            BytesWritten += count ?? Math.Max(0, new FileInfo(path).Length - offset);
        }

        private sealed class CountingStream(Stream inner, CountingResponseBodyFeature owner) : Stream
        {
            public override bool CanRead => false;
            public override bool CanSeek => false;
            public override bool CanWrite => true;
            public override long Length => throw new NotSupportedException();
            public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
            public override void Flush() => inner.Flush();
            public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);
            public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
            public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
            public override void SetLength(long value) => throw new NotSupportedException();
            public override void Write(byte[] buffer, int offset, int count)
            {
                inner.Write(buffer, offset, count);
                owner.BytesWritten += count;
            }
            public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
            {
                await inner.WriteAsync(buffer, cancellationToken);
                owner.BytesWritten += buffer.Length;
            }
            public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
                => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
        }

        private sealed class CountingPipeWriter(System.IO.Pipelines.PipeWriter inner, CountingResponseBodyFeature owner) : System.IO.Pipelines.PipeWriter
        {
            public override void Advance(int bytes)
            {
                owner.BytesWritten += bytes;
                inner.Advance(bytes);
            }
            public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);
            public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);
            public override void CancelPendingFlush() => inner.CancelPendingFlush();
            public override void Complete(Exception? exception = null) => inner.Complete(exception);
            public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);
            public override ValueTask<System.IO.Pipelines.FlushResult> FlushAsync(CancellationToken cancellationToken = default) => inner.FlushAsync(cancellationToken);
            public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;
            public override long UnflushedBytes => inner.UnflushedBytes;
        }
    }
}
