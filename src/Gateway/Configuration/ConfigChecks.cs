using System.Globalization;

namespace Gateway.Configuration;

/// <summary>Small helpers for configuration validators: each adds a <see cref="ConfigError"/> naming the full key.</summary>
public static class ConfigChecks
{
    public static void Bool(IConfigurationSection section, string key, ICollection<ConfigError> errors)
    {
        var value = section[key];
        if (value is not null && !bool.TryParse(value, out _))
        {
            errors.Add(new ConfigError(Path(section, key), $"'{value}' is not true or false"));
        }
    }

    public static void PositiveInt(IConfigurationSection section, string key, ICollection<ConfigError> errors, long max = int.MaxValue)
    {
        var value = section[key];
        if (value is not null && (!long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) || n <= 0 || n > max))
        {
            errors.Add(new ConfigError(Path(section, key), $"'{value}' is not a positive integer (at most {max})"));
        }
    }

    public static void PositiveTimeSpan(IConfigurationSection section, string key, ICollection<ConfigError> errors)
    {
        var value = section[key];
        if (value is not null && (!TimeSpan.TryParse(value, CultureInfo.InvariantCulture, out var t) || t <= TimeSpan.Zero))
        {
            errors.Add(new ConfigError(Path(section, key), $"'{value}' is not a positive duration (hh:mm:ss)"));
        }
    }

    public static void Enum<T>(IConfigurationSection section, string key, ICollection<ConfigError> errors) where T : struct, System.Enum
    {
        var value = section[key];
        if (value is not null && !System.Enum.TryParse<T>(value, ignoreCase: true, out _))
        {
            errors.Add(new ConfigError(Path(section, key), $"'{value}' is not one of {string.Join(", ", System.Enum.GetNames<T>())}"));
        }
    }

    /// <summary>Reports every child key of <paramref name="section"/> that is not in <paramref name="known"/>.</summary>
    public static void UnknownKeys(IConfigurationSection section, ICollection<ConfigError> errors, params string[] known)
    {
        foreach (var child in section.GetChildren())
        {
            if (!known.Contains(child.Key, StringComparer.OrdinalIgnoreCase))
            {
                errors.Add(new ConfigError(child.Path, $"unknown key (expected one of: {string.Join(", ", known)})"));
            }
        }
    }

    /// <summary>Parses sizes such as <c>1GB</c>, <c>512MB</c>, <c>64KiB</c>, <c>1048576</c>.</summary>
    public static bool TryParseSize(string? text, out long bytes)
    {
        bytes = 0;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }
        var s = text.Trim();
        var i = 0;
        while (i < s.Length && (char.IsDigit(s[i]) || s[i] == '.'))
        {
            i++;
        }
        if (i == 0 || !double.TryParse(s.AsSpan(0, i), NumberStyles.Float, CultureInfo.InvariantCulture, out var number))
        {
            return false;
        }
        var unit = s[i..].Trim().ToUpperInvariant();
        long multiplier = unit switch
        {
            "" or "B" => 1,
            "K" or "KB" or "KIB" => 1L << 10,
            "M" or "MB" or "MIB" => 1L << 20,
            "G" or "GB" or "GIB" => 1L << 30,
            "T" or "TB" or "TIB" => 1L << 40,
            _ => 0,
        };
        if (multiplier == 0 || number < 0 || number * multiplier > long.MaxValue)
        {
            return false;
        }
        bytes = (long)(number * multiplier);
        return true;
    }

    public static void Size(IConfigurationSection section, string key, ICollection<ConfigError> errors)
    {
        var value = section[key];
        if (value is not null && !TryParseSize(value, out _))
        {
            errors.Add(new ConfigError(Path(section, key), $"'{value}' is not a size (e.g. 1GB, 512MB, 65536)"));
        }
    }

    private static string Path(IConfigurationSection section, string key) => section.Path + ":" + key;
}
