namespace Gateway.Icap;
internal static class Placeholder {}
