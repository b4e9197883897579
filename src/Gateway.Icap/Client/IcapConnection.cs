using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;

namespace Gateway.Icap.Client;

/// <summary>One TCP connection to an ICAP service: a socket, a <see cref="PipeReader"/> over it for answers, and raw writes.</summary>
internal sealed class IcapConnection : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private int _disposed;

    private IcapConnection(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false);
        Reader = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 8 * 1024, leaveOpen: true));
    }

    public PipeReader Reader { get; }

    /// <summary>Transactions completed on this connection (0 for a fresh one).</summary>
    public int Uses { get; set; }

    /// <summary>When it went back to the pool (<see cref="TimeProvider.GetTimestamp"/>).</summary>
    public long IdleSince { get; set; }

    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    public static async Task<IcapConnection> ConnectAsync(string host, int port, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            if (IPAddress.TryParse(host, out var ip))
            {
                if (ip.AddressFamily == AddressFamily.InterNetwork && socket.AddressFamily == AddressFamily.InterNetworkV6) socket.DualMode = true;
                await socket.ConnectAsync(new IPEndPoint(ip, port), cts.Token);
            }
            else
            {
                await socket.ConnectAsync(new DnsEndPoint(host, port), cts.Token);
            }
            return new IcapConnection(socket);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new IcapClientException(IcapClientError.ConnectFailed, $"connect to {host}:{port} timed out after {timeout.TotalSeconds:0.###} s");
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            throw new IcapClientException(IcapClientError.ConnectFailed, $"connect to {host}:{port} failed: {ex.SocketErrorCode}", ex);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken) => _stream.WriteAsync(data, cancellationToken);

    /// <summary>
    /// True when an idle connection still looks usable: not readable (a readable idle socket means the peer closed it
    /// or sent bytes nobody asked for).
    /// </summary>
    public bool IsReusable()
    {
        if (IsDisposed) return false;
        try
        {
            return !_socket.Poll(0, SelectMode.SelectRead);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }

    /// <summary>Closes the socket at once (pending reads and writes fail).</summary>
    public void Abort()
    {
        try
        {
            _socket.Close(0);
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Abort();
        try
        {
            await Reader.CompleteAsync();
        }
        catch (Exception)
        {
            // completing a reader over a closed socket may throw; nothing to do
        }
        await _stream.DisposeAsync();
        _socket.Dispose();
    }
}

/// <summary>
/// Persistent connections to one service: at most <see cref="Limit"/> open at once (the configured cap, lowered by the
/// service's <c>Max-Connections</c>); waiters queue in order. Idle connections are checked before reuse.
/// </summary>
internal sealed class IcapConnectionPool : IAsyncDisposable
{
    private readonly IcapClientOptions _options;
    private readonly TimeProvider _time;
    private readonly object _lock = new();
    private readonly Stack<IcapConnection> _idle = new();
    private readonly Queue<TaskCompletionSource> _waiters = new();
    private int _open;
    private int _limit;
    private bool _disposed;

    public IcapConnectionPool(IcapClientOptions options, TimeProvider time)
    {
        _options = options;
        _time = time;
        _limit = options.MaxConnections ?? IcapClientOptions.DefaultMaxConnections;
    }

    public int Limit => Volatile.Read(ref _limit);

    public int Open
    {
        get
        {
            lock (_lock) return _open;
        }
    }

    public int Idle
    {
        get
        {
            lock (_lock) return _idle.Count;
        }
    }

    /// <summary>Applies the service's <c>Max-Connections</c> (never above the configured cap).</summary>
    public void SetServiceLimit(int? serviceMax)
    {
        var limit = _options.MaxConnections ?? serviceMax ?? IcapClientOptions.DefaultMaxConnections;
        if (serviceMax is { } s && s < limit) limit = s;
        lock (_lock)
        {
            _limit = Math.Max(1, limit);
            WakeLocked();
        }
    }

    /// <summary>A connection: an idle one that still looks alive (<paramref name="reused"/> true), or a new one.</summary>
    public async Task<(IcapConnection Connection, bool Reused)> RentAsync(bool fresh, CancellationToken cancellationToken)
    {
        while (true)
        {
            TaskCompletionSource? wait = null;
            List<IcapConnection>? stale = null;
            IcapConnection? idle = null;
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                while (!fresh && _idle.TryPop(out var c))
                {
                    if (_time.GetElapsedTime(c.IdleSince) < _options.IdleTimeout && c.IsReusable())
                    {
                        idle = c;
                        break;
                    }
                    (stale ??= []).Add(c);
                    _open--;
                }
                if (idle is null)
                {
                    if (fresh && _idle.TryPop(out var drop))
                    {
                        (stale ??= []).Add(drop);
                        _open--;
                    }
                    if (_open < _limit)
                    {
                        _open++;
                    }
                    else
                    {
                        wait = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                        _waiters.Enqueue(wait);
                    }
                }
            }
            if (stale is not null)
            {
                foreach (var c in stale) await c.DisposeAsync();
            }
            if (idle is not null) return (idle, true);
            if (wait is not null)
            {
                try
                {
                    await wait.Task.WaitAsync(_options.IoTimeout, _time, cancellationToken);
                }
                catch (TimeoutException)
                {
                    wait.TrySetCanceled();
                    throw new IcapClientException(IcapClientError.Timeout,
                        $"no connection to {_options.Host}:{_options.Port} became free within {_options.IoTimeout.TotalSeconds:0.###} s (limit {Limit})");
                }
                catch (OperationCanceledException)
                {
                    wait.TrySetCanceled();
                    throw;
                }
                continue;
            }
            try
            {
                var connection = await IcapConnection.ConnectAsync(_options.Host, _options.Port, _options.ConnectTimeout, cancellationToken);
                return (connection, false);
            }
            catch
            {
                Release();
                throw;
            }
        }
    }

    /// <summary>Gives a connection back: kept idle when <paramref name="reusable"/>, closed otherwise.</summary>
    public async ValueTask ReturnAsync(IcapConnection connection, bool reusable)
    {
        if (reusable && !connection.IsDisposed)
        {
            connection.Uses++;
            connection.IdleSince = _time.GetTimestamp();
            lock (_lock)
            {
                if (!_disposed)
                {
                    _idle.Push(connection);
                    WakeLocked();
                    return;
                }
            }
        }
        await connection.DisposeAsync();
        Release();
    }

    private void Release()
    {
        lock (_lock)
        {
            _open--;
            WakeLocked();
        }
    }

    private void WakeLocked()
    {
        // Wake one waiter per free slot or idle connection; each re-checks under the lock.
        var capacity = _limit - _open + _idle.Count;
        while (capacity > 0 && _waiters.TryDequeue(out var w))
        {
            if (w.TrySetResult()) capacity--; // a waiter that gave up does not use a slot
        }
    }

    public async ValueTask DisposeAsync()
    {
        IcapConnection[] idle;
        lock (_lock)
        {
            _disposed = true;
            idle = _idle.ToArray();
            _idle.Clear();
            while (_waiters.TryDequeue(out var w)) w.TrySetException(new ObjectDisposedException(nameof(IcapConnectionPool)));
        }
        foreach (var c in idle) await c.DisposeAsync();
    }
}
