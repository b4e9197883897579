using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Gateway.Observability;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Proxy;

/// <summary>A policy that may refuse a CONNECT target (e.g. the Drop rules); returns the reason, or null to allow.</summary>
public interface IConnectFilter
{
    string? Deny(string host, int port);
}

/// <summary>
/// CONNECT tunnels, in Kestrel connection middleware on the proxy listener (Kestrel parses CONNECT but cannot tunnel it).
/// Peeks the first bytes of a connection: anything but <c>CONNECT </c> is handed to HTTP untouched; a CONNECT head is
/// checked (client allowed, port allowed, no loop), the target is dialled, <c>200 Connection established</c> is
/// written and bytes are relayed both ways until either side closes or the tunnel idles out.
/// </summary>
internal sealed partial class ConnectTunnelMiddleware
{
    private static ReadOnlySpan<byte> ConnectPrefix => "CONNECT "u8;
    private static ReadOnlySpan<byte> HeadEnd => "\r\n\r\n"u8;

    private readonly ForwardProxySettings _settings;
    private readonly IConnectFilter[] _filters;
    private readonly ViaHeader _via;
    private readonly ILogger _logger;
    private readonly ILogger _accessLog;

    public ConnectTunnelMiddleware(ForwardProxySettings settings, ViaHeader via, ILoggerFactory loggers, IEnumerable<IConnectFilter> filters)
    {
        _settings = settings;
        _filters = filters.ToArray();
        _via = via;
        _logger = loggers.CreateLogger("Gateway.Proxy.Connect");
        _accessLog = loggers.CreateLogger("Gateway.AccessLog");
    }

    public async Task OnConnectionAsync(ConnectionContext connection, ConnectionDelegate next)
    {
        if (!_settings.Options.Enabled)
        {
            await next(connection);
            return;
        }

        var input = connection.Transport.Input;
        ConnectHead? head = null;
        while (true)
        {
            ReadResult result;
            try
            {
                result = await input.ReadAsync(connection.ConnectionClosed);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            var buffer = result.Buffer;
            var verdict = Classify(buffer, _settings.Options.MaxConnectHeaderBytes, out var headLength);
            if (verdict == Verdict.NotConnect || (verdict == Verdict.NeedMore && result.IsCompleted))
            {
                // Not ours: give HTTP the bytes exactly as they came (examined = start so its first read returns at once).
                input.AdvanceTo(buffer.Start, buffer.Start);
                break;
            }
            if (verdict == Verdict.NeedMore)
            {
                input.AdvanceTo(buffer.Start, buffer.End);
                continue;
            }
            if (verdict == Verdict.TooLarge)
            {
                input.AdvanceTo(buffer.End);
                await RespondAndCloseAsync(connection.Transport, connection.ConnectionClosed, 431, "Request Header Fields Too Large", "CONNECT request head too large");
                return;
            }
            var headBytes = buffer.Slice(0, headLength);
            head = ConnectHead.Parse(headBytes);
            input.AdvanceTo(headBytes.End);
            break;
        }

        if (head is null)
        {
            // Plain HTTP. Keep a handle that lets a later CONNECT on this keep-alive connection take it over.
            var original = connection.Transport;
            var hijack = new TunnelHijack(original);
            connection.Transport = hijack;
            connection.Items[typeof(TunnelHijack)] = hijack;
            try
            {
                await next(connection);
            }
            finally
            {
                connection.Transport = original;
            }
            return;
        }
        await TunnelAsync(connection.Transport, (connection.RemoteEndPoint as IPEndPoint)?.Address, head, connection.ConnectionClosed);
    }

    /// <summary>
    /// CONNECT that arrived as an HTTP request on a keep-alive connection (after earlier requests): Kestrel has parsed
    /// it; take the connection over from Kestrel and tunnel on the raw transport. Kestrel's own response to this request
    /// is discarded and it sees the connection end when the tunnel does.
    /// </summary>
    public async Task TunnelFromHttpAsync(HttpContext context)
    {
        var items = context.Features.Get<Microsoft.AspNetCore.Connections.Features.IConnectionItemsFeature>()?.Items;
        if (items is null || !items.TryGetValue(typeof(TunnelHijack), out var value) || value is not TunnelHijack hijack || !_settings.Options.Enabled)
        {
            await ProxyErrors.WriteAsync(context, StatusCodes.Status405MethodNotAllowed, "connect_unsupported",
                "405 Method Not Allowed: CONNECT is not available on this listener");
            return;
        }
        var raw = hijack.Hijack();
        try
        {
            var head = ConnectHead.FromRequest(context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestFeature>()!.RawTarget, context.Request.Headers.Via);
            await TunnelAsync(raw, context.Connection.RemoteIpAddress, head, CancellationToken.None);
        }
        finally
        {
            hijack.Release();
        }
    }

    private enum Verdict { NotConnect, NeedMore, Complete, TooLarge }

    private static Verdict Classify(in ReadOnlySequence<byte> buffer, int maxHead, out long headLength)
    {
        headLength = 0;
        Span<byte> prefix = stackalloc byte[8];
        var n = (int)Math.Min(buffer.Length, prefix.Length);
        buffer.Slice(0, n).CopyTo(prefix);
        if (!ConnectPrefix[..n].SequenceEqual(prefix[..n]))
        {
            return Verdict.NotConnect;
        }
        if (n < ConnectPrefix.Length)
        {
            return Verdict.NeedMore;
        }
        var reader = new SequenceReader<byte>(buffer);
        if (reader.TryReadTo(out ReadOnlySequence<byte> _, HeadEnd, advancePastDelimiter: true))
        {
            headLength = reader.Consumed;
            return headLength > maxHead ? Verdict.TooLarge : Verdict.Complete;
        }
        return buffer.Length > maxHead ? Verdict.TooLarge : Verdict.NeedMore;
    }

    private async Task TunnelAsync(IDuplexPipe transport, IPAddress? client, ConnectHead head, CancellationToken closed)
    {
        var started = Stopwatch.GetTimestamp();
        long upBytes = 0, downBytes = 0;
        var status = 200;
        try
        {
            if (head.Error is not null)
            {
                status = 400;
                await RespondAndCloseAsync(transport, closed, 400, "Bad Request", head.Error);
                return;
            }
            if (!_settings.IsAllowed(client))
            {
                status = 403;
                GatewayTelemetry.ProxyErrors.Add(1, new KeyValuePair<string, object?>("kind", "client_denied"));
                await RespondAndCloseAsync(transport, closed, 403, "Forbidden", "this client may not use the forward proxy");
                return;
            }
            if (!_settings.ConnectPorts.Contains(head.Port))
            {
                status = 403;
                GatewayTelemetry.ProxyErrors.Add(1, new KeyValuePair<string, object?>("kind", "connect_port_denied"));
                await RespondAndCloseAsync(transport, closed, 403, "Forbidden", $"CONNECT to port {head.Port} is not allowed");
                return;
            }
            foreach (var filter in _filters)
            {
                if (filter.Deny(head.Host, head.Port) is { } reason)
                {
                    status = 403;
                    GatewayTelemetry.ProxyErrors.Add(1, new KeyValuePair<string, object?>("kind", "connect_denied_by_rule"));
                    await RespondAndCloseAsync(transport, closed, 403, "Forbidden", reason);
                    return;
                }
            }
            if (head.HasOurVia(_via))
            {
                status = 508;
                GatewayTelemetry.ProxyErrors.Add(1, new KeyValuePair<string, object?>("kind", "loop"));
                await RespondAndCloseAsync(transport, closed, 508, "Loop Detected", $"the request already passed through {_via.Name}");
                return;
            }

            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            using (var connectCts = CancellationTokenSource.CreateLinkedTokenSource(closed))
            {
                connectCts.CancelAfter(_settings.Options.ConnectTimeout);
                try
                {
                    await socket.ConnectAsync(head.Host, head.Port, connectCts.Token);
                }
                catch (OperationCanceledException) when (!closed.IsCancellationRequested)
                {
                    status = 504;
                    GatewayTelemetry.ProxyErrors.Add(1, new KeyValuePair<string, object?>("kind", "origin_timeout"));
                    await RespondAndCloseAsync(transport, closed, 504, "Gateway Timeout", $"connecting to {head.Authority} timed out");
                    return;
                }
                catch (SocketException ex)
                {
                    status = 502;
                    GatewayTelemetry.ProxyErrors.Add(1, new KeyValuePair<string, object?>("kind", "origin_unreachable"));
                    await RespondAndCloseAsync(transport, closed, 502, "Bad Gateway", $"cannot reach {head.Authority} ({ex.SocketErrorCode})");
                    return;
                }
            }

            var output = transport.Output;
            await output.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 Connection established\r\nVia: {_via.Value}\r\n\r\n"), closed);

            GatewayTelemetry.ActiveTunnels.Add(1);
            try
            {
                // Not linked to ConnectionClosed: Kestrel signals that on a half-close, and a tunnel must keep relaying
                // the other direction until that side ends too.
                using var idle = new CancellationTokenSource();
                idle.CancelAfter(_settings.Options.TunnelIdleTimeout);
                var stream = new NetworkStream(socket, ownsSocket: false);
                var up = PumpUpAsync(transport.Input, socket, idle, _settings.Options.TunnelIdleTimeout);
                var down = PumpDownAsync(stream, output, idle, _settings.Options.TunnelIdleTimeout);
                await Task.WhenAll(up, down);
                upBytes = up.Result;
                downBytes = down.Result;
            }
            finally
            {
                GatewayTelemetry.ActiveTunnels.Add(-1);
                GatewayTelemetry.TunnelBytes.Add(upBytes + downBytes);
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ConnectionResetException or InvalidOperationException)
        {
            Log.TunnelEnded(_logger, head.Authority, ex.Message);
        }
        finally
        {
            var elapsed = Stopwatch.GetElapsedTime(started);
            if (_accessLog.IsEnabled(LogLevel.Information))
            {
                Log.Access(_accessLog, client?.ToString() ?? "-", head.Authority, status, downBytes, upBytes, elapsed.TotalMilliseconds);
            }
            GatewayTelemetry.ProxyRequests.Add(1, new KeyValuePair<string, object?>("mode", "connect"), new KeyValuePair<string, object?>("status", status));
        }
    }

    private static async Task<long> PumpUpAsync(PipeReader from, Socket to, CancellationTokenSource idle, TimeSpan idleTimeout)
    {
        long total = 0;
        try
        {
            while (true)
            {
                var result = await from.ReadAsync(idle.Token);
                var buffer = result.Buffer;
                foreach (var segment in buffer)
                {
                    var sent = 0;
                    while (sent < segment.Length)
                    {
                        sent += await to.SendAsync(segment[sent..], SocketFlags.None, idle.Token);
                    }
                }
                total += buffer.Length;
                if (!buffer.IsEmpty)
                {
                    idle.CancelAfter(idleTimeout);
                }
                from.AdvanceTo(buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }
            to.Shutdown(SocketShutdown.Send);
        }
        catch (Exception) when (idle.IsCancellationRequested)
        {
        }
        catch (Exception)
        {
            idle.Cancel();
            throw;
        }
        return total;
    }

    private static async Task<long> PumpDownAsync(Stream from, PipeWriter to, CancellationTokenSource idle, TimeSpan idleTimeout)
    {
        long total = 0;
        try
        {
            while (true)
            {
                var memory = to.GetMemory(16 * 1024);
                var read = await from.ReadAsync(memory, idle.Token);
                if (read == 0)
                {
                    break;
                }
                to.Advance(read);
                total += read;
                var flush = await to.FlushAsync(idle.Token);
                idle.CancelAfter(idleTimeout);
                if (flush.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception) when (idle.IsCancellationRequested)
        {
        }
        catch (Exception)
        {
            idle.Cancel();
            throw;
        }
        finally
        {
            // Origin closed (or failed): end the client side too, which also ends the up pump.
            await to.CompleteAsync();
            idle.Cancel();
        }
        return total;
    }

    private static async Task RespondAndCloseAsync(IDuplexPipe transport, CancellationToken closed, int status, string reason, string message)
    {
        var body = $"{status} {reason}: {message}\n";
        var response = $"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {Encoding.UTF8.GetByteCount(body)}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n{body}";
        try
        {
            await transport.Output.WriteAsync(Encoding.UTF8.GetBytes(response), closed);
            await transport.Output.CompleteAsync();
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ConnectionResetException or InvalidOperationException)
        {
        }
    }

    /// <summary>A parsed CONNECT request head: <c>CONNECT host:port HTTP/1.x</c> plus headers.</summary>
    private sealed class ConnectHead
    {
        public string Host { get; private init; } = "";
        public int Port { get; private init; }
        public string Authority => Host.Contains(':') ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
        public string? Error { get; private init; }
        public List<string> Via { get; } = [];

        public bool HasOurVia(ViaHeader via) => Via.Count > 0 && via.IsLoop(new Microsoft.Extensions.Primitives.StringValues(Via.ToArray()));

        public static ConnectHead FromRequest(string rawTarget, Microsoft.Extensions.Primitives.StringValues via)
        {
            var head = Parse(new ReadOnlySequence<byte>(Encoding.Latin1.GetBytes($"CONNECT {rawTarget} HTTP/1.1\r\n\r\n")));
            foreach (var v in via)
            {
                if (v is not null)
                {
                    head.Via.Add(v);
                }
            }
            return head;
        }

        public static ConnectHead Parse(ReadOnlySequence<byte> bytes)
        {
            var text = Encoding.Latin1.GetString(bytes);
            var lines = text.Split("\r\n");
            var parts = lines[0].Split(' ');
            if (parts.Length != 3 || parts[0] != "CONNECT" || !parts[2].StartsWith("HTTP/1.", StringComparison.Ordinal))
            {
                return new ConnectHead { Error = "malformed CONNECT request line" };
            }
            var authority = parts[1];
            string host;
            string portText;
            if (authority.StartsWith('['))
            {
                var close = authority.IndexOf(']');
                if (close < 0 || close + 1 >= authority.Length || authority[close + 1] != ':')
                {
                    return new ConnectHead { Error = "CONNECT target must be host:port" };
                }
                host = authority[1..close];
                portText = authority[(close + 2)..];
            }
            else
            {
                var colon = authority.LastIndexOf(':');
                if (colon <= 0)
                {
                    return new ConnectHead { Error = "CONNECT target must be host:port" };
                }
                host = authority[..colon];
                portText = authority[(colon + 1)..];
            }
            if (!int.TryParse(portText, System.Globalization.NumberStyles.None, null, out var port) || port is < 1 or > 65535
                || host.Length == 0 || Uri.CheckHostName(host) == UriHostNameType.Unknown)
            {
                return new ConnectHead { Error = "CONNECT target must be host:port" };
            }
            var head = new ConnectHead { Host = host, Port = port };
            for (var i = 1; i < lines.Length; i++)
            {
                var line = lines[i];
                var colon = line.IndexOf(':');
                if (colon > 0 && line.AsSpan(0, colon).Trim().Equals("Via", StringComparison.OrdinalIgnoreCase))
                {
                    head.Via.Add(line[(colon + 1)..].Trim());
                }
            }
            return head;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1200, Level = LogLevel.Debug, Message = "CONNECT tunnel to {Authority} ended: {Reason}")]
        public static partial void TunnelEnded(ILogger logger, string authority, string reason);

        [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "{Client} CONNECT {Authority} {Status} {Bytes} {DurationMs:0.0}ms up={UpBytes}")]
        public static partial void Access(ILogger logger, string client, string authority, int status, long bytes, long upBytes, double durationMs);
    }
}
