#!/usr/bin/env python3
"""pypi_check_simple.py - check a Simple API document served by Larder against PEP 503/691/700/714 and the test
index's manifest.json (what pypi_make_index.py built), the way a strict client would read it.

usage: pypi_check_simple.py KIND FILE MANIFEST [PROJECT]
  KIND: index-json | index-html | page-json | page-html;  PROJECT: the normalized project name (pages)

Checks, among others: JSON is an object with meta.api-version "1.x" (1.1 requires versions and sizes), the
project list is [{"name": ...}] naming every project of the index; a project page has the normalized name, every
file of the manifest with its sha256 in "hashes", urls without a fragment and relative to our /pypi/files/<project>/,
requires-python, yanked and core-metadata as the index has them, never "dist-info-metadata" (it crashes
pip 22.3-23.0); HTML has pypi:repository-version, one anchor per file whose text is the URL's last path segment, a
#sha256= fragment, data-requires-python with < and > escaped, data-yanked, data-core-metadata equal to
data-dist-info-metadata. Prints "ok: ..." or the problems found (exit 1).
"""

import html.parser
import json
import re
import sys
import urllib.parse


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


class Anchors(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.anchors, self.meta, self._cur = [], {}, None

    def handle_starttag(self, tag, attrs):
        if tag == "meta":
            d = dict(attrs)
            if "name" in d:
                self.meta[d["name"]] = d.get("content")
        if tag == "a":
            self._cur = {"attrs": dict(attrs), "text": ""}

    def handle_data(self, data):
        if self._cur is not None:
            self._cur["text"] += data

    def handle_endtag(self, tag):
        if tag == "a" and self._cur is not None:
            self._cur["text"] = self._cur["text"].strip()
            self.anchors.append(self._cur)
            self._cur = None


def main():
    kind, path, manifest_path = sys.argv[1:4]
    project = sys.argv[4] if len(sys.argv) > 4 else None
    manifest = json.load(open(manifest_path))
    raw = open(path, "rb").read().decode("utf-8")
    errors = []
    err = errors.append
    files = {fn: f for fn, f in manifest["files"].items() if f["project"] == project}

    if kind.endswith("json"):
        try:
            d = json.loads(raw)
        except ValueError as e:
            print(f"not JSON: {e}: {raw[:200]!r}")
            return 1
        if not isinstance(d, dict):
            print("a JSON response must be an object")
            return 1
        ver = (d.get("meta") or {}).get("api-version")
        if not isinstance(ver, str) or not re.fullmatch(r"1\.\d+", ver):
            err(f"meta.api-version must be '1.x', got {ver!r}")
            ver = "1.0"
        minor = int(ver.split(".")[1])
    if kind == "index-json":
        ps = d.get("projects")
        if not isinstance(ps, list) or not all(isinstance(p, dict) and isinstance(p.get("name"), str) for p in ps):
            err("projects must be a list of {\"name\": str}")
        else:
            got = {normalize(p["name"]) for p in ps}
            if got != set(manifest["projects"]):
                err(f"projects differ: missing {set(manifest['projects']) - got}, extra {got - set(manifest['projects'])}")
    elif kind == "index-html":
        a = Anchors()
        a.feed(raw)
        got = set()
        for an in a.anchors:
            n = normalize(an["text"])
            got.add(n)
            href = an["attrs"].get("href", "")
            if urllib.parse.urljoin("http://x/pypi/simple/", href) != f"http://x/pypi/simple/{n}/":
                err(f"project {an['text']!r} links to {href!r}, not to its page")
        if got != set(manifest["projects"]):
            err(f"projects differ: missing {set(manifest['projects']) - got}, extra {got - set(manifest['projects'])}")
        if not (a.meta.get("pypi:repository-version") or "").startswith("1."):
            err("no <meta name=\"pypi:repository-version\" content=\"1.x\">")
    elif kind == "page-json":
        if d.get("name") != project:
            err(f"name must be the normalized project name {project!r}, got {d.get('name')!r}")
        fl = d.get("files")
        if not isinstance(fl, list):
            print("files must be a list")
            return 1
        if minor >= 1 and not isinstance(d.get("versions"), list):
            err("api-version 1.1 requires versions")
        seen = set()
        for f in fl:
            fn = f.get("filename")
            url = f.get("url")
            if not isinstance(fn, str) or not isinstance(url, str):
                err(f"file without filename/url: {f}")
                continue
            seen.add(fn)
            if "#" in url:
                err(f"{fn}: url carries a fragment: {url}")
            if not url.startswith(f"../../files/{project}/"):
                err(f"{fn}: url is not our link for this project: {url}")
            if urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]) != fn:
                err(f"{fn}: filename is not the url's last path segment")
            h = f.get("hashes")
            if not isinstance(h, dict) or any(k != k.lower() or not re.fullmatch(r"[0-9a-f]+", v or "") for k, v in h.items()):
                err(f"{fn}: hashes must be a dict of lower-case names to hex digests: {h!r}")
            for k in ("dist-info-metadata", "data-dist-info-metadata"):
                if k in f:
                    err(f"{fn}: carries {k} (JSON must use core-metadata only)")
            if minor >= 1 and not isinstance(f.get("size"), int):
                err(f"{fn}: api-version 1.1 requires size")
            if "gpg-sig" in f and not isinstance(f["gpg-sig"], bool):
                err(f"{fn}: gpg-sig must be a boolean")
            y = f.get("yanked", False)
            if not (isinstance(y, bool) or (isinstance(y, str) and y)):
                err(f"{fn}: yanked must be a boolean or a non-empty string")
            m = files.get(fn)
            if not m:
                err(f"{fn}: not a file of {project}")
                continue
            if (h or {}).get("sha256") != m["listed_sha256"]:
                err(f"{fn}: hashes.sha256 {h!r} is not the index's {m['listed_sha256']}")
            if f.get("requires-python") != m["requires_python"]:
                err(f"{fn}: requires-python {f.get('requires-python')!r}, index has {m['requires_python']!r}")
            if (y or None) != m["yanked"]:
                err(f"{fn}: yanked {y!r}, index has {m['yanked']!r}")
            cm = f.get("core-metadata")
            want = {"sha256": m["metadata_sha256"]} if m["metadata_sha256"] else None
            if (cm or None) != want:
                err(f"{fn}: core-metadata {cm!r}, expected {want!r}")
        if seen != set(files):
            err(f"files differ: missing {set(files) - seen}, extra {seen - set(files)}")
    elif kind == "page-html":
        a = Anchors()
        a.feed(raw)
        if not (a.meta.get("pypi:repository-version") or "").startswith("1."):
            err("no <meta name=\"pypi:repository-version\" content=\"1.x\">")
        for v in re.findall(r'data-requires-python="([^"]*)"', raw):
            if "<" in v or ">" in v:
                err(f"data-requires-python not HTML-escaped: {v!r}")
        seen = set()
        for an in a.anchors:
            at, fn = an["attrs"], an["text"]
            seen.add(fn)
            href = at.get("href") or ""
            u = urllib.parse.urlsplit(href)
            if urllib.parse.unquote(u.path.rsplit("/", 1)[-1]) != fn:
                err(f"{fn}: anchor text is not the href's last path segment ({href})")
            if not href.startswith(f"../../files/{project}/"):
                err(f"{fn}: href is not our link for this project: {href}")
            m = files.get(fn)
            if not m:
                err(f"{fn}: not a file of {project}")
                continue
            if u.fragment != f"sha256={m['listed_sha256']}":
                err(f"{fn}: fragment {u.fragment!r} is not sha256={m['listed_sha256']}")
            if at.get("data-requires-python") != m["requires_python"]:
                err(f"{fn}: data-requires-python {at.get('data-requires-python')!r}, index has {m['requires_python']!r}")
            if ("data-yanked" in at) != bool(m["yanked"]) or (m["yanked"] and at["data-yanked"] != m["yanked"]):
                err(f"{fn}: data-yanked {at.get('data-yanked')!r}, index has {m['yanked']!r}")
            want = f"sha256={m['metadata_sha256']}" if m["metadata_sha256"] else None
            if at.get("data-core-metadata") != want or at.get("data-dist-info-metadata") != want:
                err(f"{fn}: data-core-metadata {at.get('data-core-metadata')!r} / data-dist-info-metadata "
                    f"{at.get('data-dist-info-metadata')!r}, expected {want!r}")
        if seen != set(files):
            err(f"files differ: missing {set(files) - seen}, extra {seen - set(files)}")
    else:
        print(f"unknown kind {kind}")
        return 2
    if errors:
        print("\n".join(errors[:20]))
        return 1
    print(f"ok: {kind} {project or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
