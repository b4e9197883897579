using System.Collections;

namespace Gateway.Icap.Protocol;

/// <summary>An ordered list of header fields with case-insensitive lookup (ICAP headers and encapsulated HTTP headers).</summary>
public sealed class IcapHeaders : IEnumerable<KeyValuePair<string, string>>
{
    private readonly List<KeyValuePair<string, string>> _fields;

    public IcapHeaders() => _fields = new List<KeyValuePair<string, string>>();

    public IcapHeaders(int capacity) => _fields = new List<KeyValuePair<string, string>>(capacity);

    public IcapHeaders(IEnumerable<KeyValuePair<string, string>> fields) => _fields = new List<KeyValuePair<string, string>>(fields);

    public int Count => _fields.Count;

    public KeyValuePair<string, string> this[int index] => _fields[index];

    /// <summary>The first value of <paramref name="name"/>, or null. Setting replaces every value (null removes).</summary>
    public string? this[string name]
    {
        get => TryGetValue(name, out var v) ? v : null;
        set
        {
            if (value is null) Remove(name);
            else Set(name, value);
        }
    }

    public void Add(string name, string value) => _fields.Add(new(name, value));

    public void Set(string name, string value)
    {
        var i = IndexOf(name);
        if (i < 0)
        {
            _fields.Add(new(name, value));
            return;
        }
        _fields[i] = new(name, value);
        for (var j = _fields.Count - 1; j > i; j--)
        {
            if (string.Equals(_fields[j].Key, name, StringComparison.OrdinalIgnoreCase)) _fields.RemoveAt(j);
        }
    }

    public bool Remove(string name) => _fields.RemoveAll(f => string.Equals(f.Key, name, StringComparison.OrdinalIgnoreCase)) > 0;

    public bool Contains(string name) => IndexOf(name) >= 0;

    public bool TryGetValue(string name, out string value)
    {
        var i = IndexOf(name);
        value = i < 0 ? string.Empty : _fields[i].Value;
        return i >= 0;
    }

    public IEnumerable<string> GetValues(string name)
    {
        foreach (var f in _fields)
        {
            if (string.Equals(f.Key, name, StringComparison.OrdinalIgnoreCase)) yield return f.Value;
        }
    }

    /// <summary>True when a comma-separated list header (e.g. <c>Allow</c>, <c>Connection</c>) contains <paramref name="token"/>.</summary>
    public bool ContainsToken(string name, string token)
    {
        foreach (var f in _fields)
        {
            if (!string.Equals(f.Key, name, StringComparison.OrdinalIgnoreCase)) continue;
            foreach (var part in f.Value.AsSpan().Split(','))
            {
                if (f.Value.AsSpan()[part].Trim().Equals(token, StringComparison.OrdinalIgnoreCase)) return true;
            }
        }
        return false;
    }

    public IcapHeaders Clone() => new(_fields);

    private int IndexOf(string name)
    {
        for (var i = 0; i < _fields.Count; i++)
        {
            if (string.Equals(_fields[i].Key, name, StringComparison.OrdinalIgnoreCase)) return i;
        }
        return -1;
    }

    public List<KeyValuePair<string, string>>.Enumerator GetEnumerator() => _fields.GetEnumerator();

    IEnumerator<KeyValuePair<string, string>> IEnumerable<KeyValuePair<string, string>>.GetEnumerator() => _fields.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => _fields.GetEnumerator();
}
