#!/usr/bin/env python3
"""Writes appsettings.json for one benchmark scenario: none | miss | hit.

none: 0 rules. miss: 1,000 host and path rules, none matching the benchmark request.
hit: the same 1,000 rules, one of which (a path rule) matches and sets a request header.
"""
import json, sys

scenario, proxy_port, admin_port, backend_port, out = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
rules = {}
if scenario in ("miss", "hit"):
    drop = {}
    for i in range(500):
        drop[f"host{i}"] = {"Match": {"Host": f"h{i}.example" if i % 2 else f"*.d{i}.example"}}
        drop[f"path{i}"] = {"Match": {"Path": f"/p{i}/*"}}
    rules["Drop"] = drop
    if scenario == "hit":
        # Replace one path rule by a rewrite rule that matches the benchmark path.
        del drop["path499"]
        rules["Rewrite"] = {"bench": {"Match": {"Path": "/bench/*"}, "Request": {"Headers": {"Set": {"X-Bench": "1"}}}}}
config = {
    "Logging": {"LogLevel": {"Default": "Warning"}},
    "Kestrel": {"Endpoints": {"Proxy": {"Url": f"http://127.0.0.1:{proxy_port}"}, "Admin": {"Url": f"http://127.0.0.1:{admin_port}"}}},
    "Gateway": {"Rules": rules, "Cache": {"Enabled": False}, "Icap": {"Server": {"Enabled": False}}},
    "ReverseProxy": {
        "Routes": {"r1": {"ClusterId": "c1", "Match": {"Path": "{**catch-all}"}}},
        "Clusters": {"c1": {"Destinations": {"d1": {"Address": f"http://127.0.0.1:{backend_port}/"}}}},
    },
}
with open(out, "w") as f:
    json.dump(config, f, indent=1)
