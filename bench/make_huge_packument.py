#!/usr/bin/env python3
"""make_huge_packument.py NAME VERSIONS TARBALL_BASE OUT.json - a synthetic packument of the size of the largest real
ones (@types/node, aws-sdk: 20-40 MB): VERSIONS versions, each with dependencies, scripts, a long description and
its own readme-sized text, as registries store them. Tarball URLs point at TARBALL_BASE/<name>/-/<name>-<v>.tgz."""
import base64
import hashlib
import json
import sys

name, nver, base, out = sys.argv[1], int(sys.argv[2]), sys.argv[3].rstrip("/"), sys.argv[4]
versions, times = {}, {"created": "2020-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z"}
filler = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore. " * 100)
for i in range(nver):
    v = f"{i // 100}.{(i // 10) % 10}.{i % 10}"
    digest = hashlib.sha512(f"{name}{v}".encode()).digest()
    versions[v] = {
        "name": name, "version": v, "description": filler[: 200 + i % 50],
        "main": "index.js", "license": "MIT",
        "scripts": {"test": "node test.js", "build": "tsc -p ."},
        "dependencies": {f"dep-{k}": f"^{k}.0.0" for k in range(8)},
        "devDependencies": {f"dev-{k}": f"~{k}.1.0" for k in range(12)},
        "readme": filler[:8000],
        "_id": f"{name}@{v}", "_nodeVersion": "20.11.0", "_npmVersion": "10.2.4",
        "maintainers": [{"name": "someone", "email": "someone@example.org"}],
        "dist": {"integrity": "sha512-" + base64.b64encode(digest).decode(),
                 "shasum": hashlib.sha1(digest).hexdigest(),
                 "tarball": f"{base}/{name}/-/{name}-{v}.tgz", "fileCount": 12, "unpackedSize": 123456},
    }
    times[v] = "2023-01-01T00:00:00.000Z"
doc = {"_id": name, "name": name, "dist-tags": {"latest": v}, "versions": versions, "time": times,
       "readme": filler, "description": "a very large packument"}
with open(out, "w") as f:
    json.dump(doc, f)
