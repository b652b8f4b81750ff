#!/usr/bin/env python3
"""pypi_make_index.py - build a small Python package index for Larder's tests and benchmarks.

Writes, under OUT:
  packages/<project>/<file>            wheels (and one sdist), built here as real wheel archives, plus
                                       <file>.metadata (PEP 658) for the projects that announce it
  simple/index.html, simple/index.json the project list (PEP 503 HTML, PEP 691 JSON)
  simple/<project>/index.html|json     project pages
  requirements.txt                     `top` and everything it depends on, pinned with --hash (pip-compile style)
  manifest.json                        what was built, for the test's own checks

The pages mix the link styles a real index uses: relative links (`../../packages/...`), absolute links to a
second "files host" (--files-url, like files.pythonhosted.org), data-requires-python, data-yanked,
data-dist-info-metadata / data-core-metadata. `badpkg` is listed with a wrong sha256 on purpose.

The wheels from /usr/share/python-wheels (pip, setuptools) are added as they are, when present.

usage: pypi_make_index.py OUT --files-url http://127.0.0.1:PORT/ [--add-version PROJECT VERSION]
"""

import argparse
import base64
import glob
import gzip
import hashlib
import html
import io
import json
import os
import re
import shutil
import tarfile
import zipfile

# project -> list of (version, requires_dist, requires_python, yanked, metadata announced)
PROJECTS = {
    "top": [("1.0", ["alpha==1.0", "beta==2.1", "gamma-utils==0.3", "epsilon", "zeta", "eta==1.0", "theta==1.0",
                     "iota==1.0", "kappa==1.0", "lambda-pkg==1.0", "mu_sdist==1.0"], None, None, True)],
    "alpha": [("1.0", ["delta>=1.0"], None, None, True)],
    "beta": [("2.0", [], None, None, False), ("2.1", ["delta"], ">=3.7", None, True)],
    "Gamma.Utils": [("0.3", [], None, None, True)],
    "delta": [("1.0", [], None, None, True)],
    # 2.0 needs a Python that does not exist: pip must take 1.0 from data-requires-python
    "epsilon": [("1.0", [], ">=3.6", None, True), ("2.0", [], ">=3.99", None, True)],
    # 1.1 is yanked: pip must take 1.0
    "zeta": [("1.0", [], None, None, False), ("1.1", [], None, "broken build", False)],
    "eta": [("1.0", [], None, None, True)],
    "theta": [("1.0", [], None, None, False)],
    "iota": [("1.0", [], None, None, True)],
    "kappa": [("1.0", [], None, None, True)],
    "lambda_pkg": [("1.0", [], None, None, False)],
    "badpkg": [("1.0", [], None, None, False)],
    "legacy-meta": [("1.0", [], None, None, True)],
    # a project with a long release history: its page is about 10 KB (the benchmark's page)
    "omega": [(f"1.{i}", [], ">=3.7", None, i % 2 == 0) for i in range(32)],
}
SDISTS = {"mu_sdist": "1.0"}  # an sdist only project (pip builds it, setuptools without isolation)
LEGACY_JSON_METADATA = {"legacy-meta"}  # JSON pages with the pre-PEP 714 key
ABSOLUTE = {"alpha", "delta", "eta", "kappa", "mu-sdist"}  # linked on the files host, the rest relatively


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def dist_name(name):
    return re.sub(r"[-_.]+", "_", name)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def metadata_text(name, version, requires, requires_python):
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
             f"Summary: test package {name} {version} for Larder"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    for r in requires:
        lines.append(f"Requires-Dist: {r}")
    return "\n".join(lines) + "\n\n"


def build_wheel(outdir, name, version, requires, requires_python):
    dn = dist_name(name)
    fn = f"{dn}-{version}-py3-none-any.whl"
    mod = dn.lower()
    info = f"{dn}-{version}.dist-info"
    files = {
        f"{mod}/__init__.py": f'"""{name} {version}: a Larder test package."""\nVERSION = "{version}"\n'
                              + "# padding\n" * 200,
        f"{info}/METADATA": metadata_text(name, version, requires, requires_python),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: larder-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/top_level.txt": mod + "\n",
    }
    record = []
    for path, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path, text in files.items():
            zi = zipfile.ZipInfo(path, date_time=(2024, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            z.writestr(zi, text)
    data = buf.getvalue()
    with open(os.path.join(outdir, fn), "wb") as f:
        f.write(data)
    return fn, data, files[f"{info}/METADATA"].encode()


def build_sdist(outdir, name, version):
    dn = dist_name(name)
    base = f"{dn}-{version}"
    fn = f"{base}.tar.gz"
    members = {
        f"{base}/setup.py": f"from setuptools import setup\nsetup(name={name!r}, version={version!r}, "
                            f"py_modules=[{dn.lower()!r}])\n",
        f"{base}/{dn.lower()}.py": f'VERSION = "{version}"\n',
        f"{base}/PKG-INFO": metadata_text(name, version, [], None),
    }
    buf = io.BytesIO()
    # gzip with a fixed mtime: rebuilding the index must give the same bytes (released files never change)
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as t:
        for path, text in members.items():
            data = text.encode()
            ti = tarfile.TarInfo(path)
            ti.size = len(data)
            ti.mtime = 1704067200
            ti.mode = 0o644
            t.addfile(ti, io.BytesIO(data))
    data = buf.getvalue()
    with open(os.path.join(outdir, fn), "wb") as f:
        f.write(data)
    return fn, data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--files-url", required=True, help="base URL of the second host serving packages/")
    ap.add_argument("--add-version", nargs=2, metavar=("PROJECT", "VERSION"), action="append", default=[],
                    help="add a release (to simulate an upload after pages were cached)")
    args = ap.parse_args()
    out = args.out
    files_url = args.files_url.rstrip("/") + "/"
    projects = {k: list(v) for k, v in PROJECTS.items()}
    for proj, ver in args.add_version:
        projects.setdefault(proj, []).append((ver, [], None, None, True))

    shutil.rmtree(os.path.join(out, "simple"), ignore_errors=True)
    os.makedirs(os.path.join(out, "simple"), exist_ok=True)
    manifest = {"projects": {}, "files": {}}
    entries = {}  # normalized project -> list of file dicts

    def add_file(proj, fn, data, requires_python=None, yanked=None, meta=None):
        norm = normalize(proj)
        entries.setdefault(norm, [])
        rel = f"packages/{norm}/{fn}"
        if norm in ABSOLUTE:
            url = files_url + rel
        else:
            url = "../../" + rel
        digest = sha256(data)
        listed = digest
        if norm == "badpkg":
            listed = sha256(b"not the bytes that are served")
        f = {"filename": fn, "url": url, "sha256": listed, "real_sha256": digest, "size": len(data),
             "requires_python": requires_python, "yanked": yanked, "meta_sha256": sha256(meta) if meta else None,
             "path": rel}
        entries[norm].append(f)
        manifest["files"][fn] = {"project": norm, "sha256": digest, "listed_sha256": listed, "path": rel,
                                 "absolute": norm in ABSOLUTE, "metadata_sha256": f["meta_sha256"],
                                 "requires_python": requires_python, "yanked": yanked}

    for proj, releases in projects.items():
        norm = normalize(proj)
        pdir = os.path.join(out, "packages", norm)
        os.makedirs(pdir, exist_ok=True)
        for version, requires, rp, yanked, announce_meta in releases:
            fn, data, meta = build_wheel(pdir, proj, version, requires, rp)
            if announce_meta:
                with open(os.path.join(pdir, fn + ".metadata"), "wb") as f:
                    f.write(meta)
            add_file(proj, fn, data, rp, yanked, meta if announce_meta else None)
        manifest["projects"][norm] = [r[0] for r in releases]
    for proj, version in SDISTS.items():
        norm = normalize(proj)
        pdir = os.path.join(out, "packages", norm)
        os.makedirs(pdir, exist_ok=True)
        fn, data = build_sdist(pdir, proj, version)
        add_file(proj, fn, data)
        manifest["projects"][norm] = [version]
    for whl in sorted(glob.glob("/usr/share/python-wheels/*.whl")):
        fn = os.path.basename(whl)
        m = re.match(r"^([^-]+)-([^-]+)-", fn)
        if not m or m.group(1) not in ("pip", "setuptools"):
            continue
        norm = normalize(m.group(1))
        pdir = os.path.join(out, "packages", norm)
        os.makedirs(pdir, exist_ok=True)
        shutil.copyfile(whl, os.path.join(pdir, fn))
        with open(whl, "rb") as f:
            add_file(m.group(1), fn, f.read())
        manifest["projects"][norm] = [m.group(2)]

    # the project list
    names = sorted(entries)
    with open(os.path.join(out, "simple", "index.html"), "w") as f:
        f.write("<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.1\">"
                "<title>Simple index</title></head><body>\n")
        for n in names:
            f.write(f'<a href="/simple/{n}/">{n}</a>\n')
        f.write("</body></html>\n")
    with open(os.path.join(out, "simple", "index.json"), "w") as f:
        json.dump({"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}, f)

    for n in names:
        d = os.path.join(out, "simple", n)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "index.html"), "w") as f:
            f.write("<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"1.1\">\n"
                    f"    <title>Links for {n}</title>\n  </head>\n  <body>\n    <h1>Links for {n}</h1>\n")
            for e in entries[n]:
                attrs = ""
                if e["requires_python"]:
                    attrs += f' data-requires-python="{html.escape(e["requires_python"])}"'
                if e["yanked"]:
                    attrs += f' data-yanked="{html.escape(e["yanked"])}"'
                if e["meta_sha256"]:
                    attrs += f' data-dist-info-metadata="sha256={e["meta_sha256"]}"'
                    attrs += f' data-core-metadata="sha256={e["meta_sha256"]}"'
                f.write(f'    <a href="{html.escape(e["url"])}#sha256={e["sha256"]}"{attrs}>{e["filename"]}</a><br />\n')
            f.write("  </body>\n</html>\n")
        files = []
        for e in entries[n]:
            fj = {"filename": e["filename"], "url": e["url"], "hashes": {"sha256": e["sha256"]},
                  "size": e["size"], "upload-time": "2024-01-01T00:00:00.000000Z"}
            if e["requires_python"]:
                fj["requires-python"] = e["requires_python"]
            if e["yanked"]:
                fj["yanked"] = e["yanked"]
            if e["meta_sha256"] and n in LEGACY_JSON_METADATA:
                # what an index written before PEP 714 sends; pip 22.3-23.0 crash on it
                fj["dist-info-metadata"] = {"sha256": e["meta_sha256"]}
            elif e["meta_sha256"]:
                # what PyPI sends: the PEP 714 key and the misspelled key of 2023 (ignored by pip)
                fj["core-metadata"] = {"sha256": e["meta_sha256"]}
                fj["data-dist-info-metadata"] = {"sha256": e["meta_sha256"]}
            files.append(fj)
        versions = sorted({re.split(r"-", e["filename"])[1].replace(".tar.gz", "") for e in entries[n]})
        with open(os.path.join(d, "index.json"), "w") as f:
            json.dump({"meta": {"api-version": "1.1"}, "name": n, "versions": versions, "files": files}, f)

    # requirements.txt for `top` (what pip-compile would write), hashes of every file of the pinned versions
    pins = {"top": "1.0", "alpha": "1.0", "beta": "2.1", "gamma-utils": "0.3", "delta": "1.0", "epsilon": "1.0",
            "zeta": "1.0", "eta": "1.0", "theta": "1.0", "iota": "1.0", "kappa": "1.0", "lambda-pkg": "1.0",
            "mu-sdist": "1.0"}
    with open(os.path.join(out, "requirements.txt"), "w") as f:
        f.write("#\n# This file is autogenerated by pip-compile with Python 3.11\n#\n")
        for p in sorted(pins):
            hashes = [e["sha256"] for e in entries[p]
                      if re.split(r"-", e["filename"])[1].replace(".tar.gz", "") == pins[p]]
            f.write(f"{p}=={pins[p]}")
            for h in hashes:
                f.write(f" \\\n    --hash=sha256:{h}")
            f.write("\n    # via top\n" if p != "top" else "\n    # via -r requirements.in\n")
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
