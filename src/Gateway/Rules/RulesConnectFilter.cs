using Gateway.Proxy;

namespace Gateway.Rules;

/// <summary>Drop rules apply to CONNECT tunnels too: a target matching one (as <c>https://host:port/</c>, method CONNECT) gets 403.</summary>
internal sealed class RulesConnectFilter(RuleStore rules) : IConnectFilter
{
    public string? Deny(string host, int port)
        => rules.MatchConnect(host, port) is { } drop ? $"CONNECT to {host}:{port} is blocked by rule '{drop.Id}'" : null;
}
