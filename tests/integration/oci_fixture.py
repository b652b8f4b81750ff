#!/usr/bin/python3
"""oci_fixture.py - the Python half of oci_fixture.sh (standard library only; `cryptography` used when present).

  oci_fixture.py make DIR
      writes OCI image layouts under DIR/layouts/ and DIR/images.json (see oci_fixture.sh for the images)
  oci_fixture.py describe REGISTRY_URL OUT_JSON EXPECT_JSON|- REPO:TAG...
      reads each REPO:TAG back from the registry (following a Bearer challenge anonymously) and writes OUT_JSON
      in the images.json format, as the registry serves them; a REPO:TAG that EXPECT_JSON (an images.json) also
      has must have the same digests there
  oci_fixture.py token-server --port P --key KEY.pem --cert CERT.pem --log LOG [--issuer I] [--service S]
                              [--expiry SECONDS] [--signer auto|cryptography|openssl]
      a Docker registry token server (https://distribution.github.io/distribution/spec/auth/token/) on
      127.0.0.1:P that gives anyone every action asked for (anonymous pull and push), as RS256 JWTs whose header
      carries the signing certificate as x5c (docker-registry checks it against its rootcertbundle)
  oci_fixture.py verify-dir DEST
      checks a `skopeo copy ... dir:DEST` result: every blob the manifest(s) name is there with the right sha256;
      prints "DIGEST_OF_manifest.json BLOBS_CHECKED"

Nothing here touches the network except 127.0.0.1.
"""
import base64
import datetime
import gzip
import hashlib
import http.server
import io
import json
import os
import random
import socketserver
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
LIST_TYPES = (MT_OCI_INDEX, MT_DOCKER_LIST)
ACCEPT = ", ".join([MT_OCI_INDEX, MT_OCI_MANIFEST, MT_DOCKER_LIST, MT_DOCKER_MANIFEST])

MTIME = 1704067200  # 2024-01-01T00:00:00Z, every file in every layer
CREATED = "2024-01-01T00:00:00Z"


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def cjson(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------------------------------------------
# images


class Layout:
    """an OCI image layout directory (oci-layout, index.json, blobs/sha256/)"""

    def __init__(self, path):
        self.path = path
        self.refs = []
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)

    def blob(self, data):
        d = sha256(data)
        p = os.path.join(self.path, "blobs", "sha256", d[7:])
        with open(p, "wb") as f:
            f.write(data)
        return d

    def ref(self, tag, media_type, data):
        self.refs.append({"mediaType": media_type, "digest": self.blob(data), "size": len(data),
                          "annotations": {"org.opencontainers.image.ref.name": tag}})

    def close(self):
        with open(os.path.join(self.path, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion":"1.0.0"}')
        with open(os.path.join(self.path, "index.json"), "wb") as f:
            f.write(cjson({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": self.refs}))


def make_tar(entries):
    """entries: (name, kind, payload, mode) with kind 'dir' | 'file' | 'link' (symlink, payload = target)"""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, kind, payload, mode in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname, ti.mode = MTIME, 0, 0, "root", "root", mode
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
            elif kind == "link":
                ti.type, ti.linkname = tarfile.SYMTYPE, payload
                t.addfile(ti)
            else:
                ti.size = len(payload)
                t.addfile(ti, io.BytesIO(payload))
    return buf.getvalue()


def make_image(layout, layers, arch, os_name="linux", variant=None, cmd=None, labels=None):
    """layers: [(created_by, tar entries)] -> (manifest bytes, description dict)"""
    descs, diff_ids, history = [], [], []
    for created_by, entries in layers:
        tar = make_tar(entries)
        gz = gzip.compress(tar, compresslevel=6, mtime=0)
        d = layout.blob(gz)
        descs.append({"mediaType": MT_OCI_LAYER_GZ, "digest": d, "size": len(gz)})
        diff_ids.append(sha256(tar))
        history.append({"created": CREATED, "created_by": created_by})
    config = {"created": CREATED, "architecture": arch, "os": os_name,
              "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                         "Cmd": cmd or ["/bin/hello"], "WorkingDir": "/", "Labels": labels or {}},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": history}
    if variant:
        config["variant"] = variant
    cb = cjson(config)
    cd = layout.blob(cb)
    manifest = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
                "config": {"mediaType": MT_OCI_CONFIG, "digest": cd, "size": len(cb)}, "layers": descs,
                "annotations": {"org.opencontainers.image.created": CREATED}}
    mb = cjson(manifest)
    md = layout.blob(mb)
    platform = {"architecture": arch, "os": os_name}
    if variant:
        platform["variant"] = variant
    desc = {"kind": "manifest", "media_type": MT_OCI_MANIFEST, "digest": md, "size": len(mb), "platform": platform,
            "config": {"media_type": MT_OCI_CONFIG, "digest": cd, "size": len(cb)},
            "layers": [{"media_type": l["mediaType"], "digest": l["digest"], "size": l["size"], "diff_id": di}
                       for l, di in zip(descs, diff_ids)]}
    return mb, desc


def base_entries(name, rnd):
    doc = "".join("%s line %d: %s\n" % (name, i, rnd.getrandbits(128).to_bytes(16, "big").hex()) for i in range(60))
    return [
        ("bin", "dir", None, 0o755), ("etc", "dir", None, 0o755), ("usr", "dir", None, 0o755),
        ("usr/share", "dir", None, 0o755), ("usr/share/doc", "dir", None, 0o755),
        ("usr/share/doc/%s" % name, "dir", None, 0o755),
        ("etc/os-release", "file", b'PRETTY_NAME="Larder test image"\nID=larder-test\nVERSION_ID="1"\n', 0o644),
        ("etc/hostname", "file", b"larder-test\n", 0o644),
        ("bin/%s" % name, "file", ("#!/bin/sh\necho 'hello from %s'\n" % name).encode(), 0o755),
        ("bin/hi", "link", name, 0o777),
        ("usr/share/doc/%s/README" % name, "file", doc.encode(), 0o644),
        ("usr/share/doc/%s/README.old" % name, "file", b"to be removed by a later layer\n", 0o644),
    ]


def cmd_make(root):
    big = int(os.environ.get("OCIFX_BIG_LAYER_BYTES", str(5 * 1024 * 1024)))
    lroot = os.path.join(root, "layouts")
    images = {}

    # larder-test/hello:1.0 - one linux/amd64 manifest, 3 layers (the second ~5 MB of incompressible data)
    rnd = random.Random(20240101)
    lay = Layout(os.path.join(lroot, "hello"))
    mb, desc = make_image(lay, [
        ("/bin/sh -c #(nop) ADD base", base_entries("hello", rnd)),
        ("/bin/sh -c #(nop) ADD data.bin /opt/hello/", [
            ("opt", "dir", None, 0o755), ("opt/hello", "dir", None, 0o755),
            ("opt/hello/data.bin", "file", rnd.randbytes(big), 0o644)]),
        ("/bin/sh -c echo greeting=hello > /etc/hello.conf && rm /usr/share/doc/hello/README.old", [
            ("etc", "dir", None, 0o755), ("etc/hello.conf", "file", b"greeting=hello\n", 0o644),
            ("usr/share/doc/hello/.wh.README.old", "file", b"", 0o644)]),
    ], "amd64", labels={"org.larder.test": "hello"})
    lay.ref("1.0", MT_OCI_MANIFEST, mb)
    lay.close()
    desc.update({"repo": "larder-test/hello", "tag": "1.0", "layout": lay.path,
                 "oci_ref": "oci:%s:1.0" % lay.path})
    images["larder-test/hello:1.0"] = desc

    # larder-test/multi:2.0 - an OCI image index: linux/amd64 and linux/arm64/v8, sharing their base layer
    rnd = random.Random(20240202)
    lay = Layout(os.path.join(lroot, "multi"))
    base = ("/bin/sh -c #(nop) ADD base", base_entries("multi", rnd))
    plats = {}
    idx_entries = []
    for arch, variant, size in (("amd64", None, 1024 * 1024), ("arm64", "v8", 768 * 1024)):
        mb, desc = make_image(lay, [base, ("/bin/sh -c #(nop) ADD app-%s /opt/app/" % arch, [
            ("opt", "dir", None, 0o755), ("opt/app", "dir", None, 0o755),
            ("opt/app/app-%s.bin" % arch, "file", rnd.randbytes(size), 0o755)])],
            arch, variant=variant, cmd=["/opt/app/app-%s.bin" % arch], labels={"org.larder.test": "multi"})
        e = {"mediaType": MT_OCI_MANIFEST, "digest": desc["digest"], "size": desc["size"],
             "platform": desc["platform"]}
        idx_entries.append(e)
        plats["linux/" + arch] = desc
    ib = cjson({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": idx_entries})
    lay.ref("2.0", MT_OCI_INDEX, ib)
    lay.close()
    images["larder-test/multi:2.0"] = {"kind": "index", "repo": "larder-test/multi", "tag": "2.0",
                                       "layout": lay.path, "oci_ref": "oci:%s:2.0" % lay.path,
                                       "media_type": MT_OCI_INDEX, "digest": sha256(ib), "size": len(ib),
                                       "manifests": plats}
    write_json(os.path.join(root, "images.json"), {"images": images, "blobs": blob_table(images)})


def blob_table(images):
    """every distinct blob (configs and layers) -> size, and the repositories that use it"""
    out = {}
    for key, img in images.items():
        repo = img["repo"]
        for m in (img["manifests"].values() if img["kind"] == "index" else [img]):
            for b in [m["config"]] + m["layers"]:
                e = out.setdefault(b["digest"], {"size": b["size"], "repos": []})
                if repo not in e["repos"]:
                    e["repos"].append(repo)
    return out


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------------------------
# registry client (for describe)


class Client:
    def __init__(self, base):
        self.base = base.rstrip("/")
        self.tokens = {}

    def _token(self, challenge):
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() != "bearer":
            raise SystemExit("unsupported challenge: " + challenge)
        p = dict(urllib.request.parse_keqv_list(urllib.request.parse_http_list(params)))
        q = {k: p[k] for k in ("service", "scope") if k in p}
        url = p["realm"] + ("?" + urllib.parse.urlencode(q) if q else "")
        doc = json.load(urllib.request.urlopen(url, timeout=30))
        return doc.get("token") or doc["access_token"]

    def get(self, repo, path, accept=ACCEPT, method="GET"):
        url = "%s/v2/%s/%s" % (self.base, repo, path)
        for _ in range(2):
            h = {"Accept": accept}
            if repo in self.tokens:
                h["Authorization"] = "Bearer " + self.tokens[repo]
            try:
                r = urllib.request.urlopen(urllib.request.Request(url, headers=h, method=method), timeout=60)
                return r.headers, r.read()
            except urllib.error.HTTPError as e:
                if e.code == 401 and repo not in self.tokens and e.headers.get("WWW-Authenticate"):
                    self.tokens[repo] = self._token(e.headers["WWW-Authenticate"])
                    continue
                raise SystemExit("%s %s: HTTP %d %s" % (method, url, e.code, e.read()[:300]))
        raise SystemExit("%s: still 401 with a token" % url)

    def manifest(self, repo, ref):
        h, body = self.get(repo, "manifests/" + ref)
        d = h.get("Docker-Content-Digest")
        if d != sha256(body):
            raise SystemExit("%s@%s: Docker-Content-Digest %s but the body hashes to %s" % (repo, ref, d, sha256(body)))
        return h.get("Content-Type", "").split(";")[0], d, body


def describe_manifest(cl, repo, ref, platform=None):
    mt, d, body = cl.manifest(repo, ref)
    m = json.loads(body)
    out = {"media_type": mt, "digest": d, "size": len(body), "manifest_path": "/v2/%s/manifests/%s" % (repo, d)}
    if mt in LIST_TYPES:
        out["kind"] = "index"
        out["manifests"] = {}
        for e in m["manifests"]:
            p = e.get("platform", {})
            key = "%s/%s" % (p.get("os"), p.get("architecture"))
            sub = describe_manifest(cl, repo, e["digest"], p)
            if sub["size"] != e["size"] or sub["media_type"] != e["mediaType"]:
                raise SystemExit("%s@%s: index entry %s disagrees with the manifest served" % (repo, ref, e))
            out["manifests"][key] = sub
        return out
    out["kind"] = "manifest"
    if platform is not None:
        out["platform"] = platform
    c = m["config"]
    _, cb = cl.get(repo, "blobs/" + c["digest"], accept="*/*")
    cfg = json.loads(cb)
    diff_ids = cfg.get("rootfs", {}).get("diff_ids", [])
    if platform is None:
        out["platform"] = {k: cfg[k] for k in ("architecture", "os", "variant") if k in cfg}
    out["config"] = {"media_type": c["mediaType"], "digest": c["digest"], "size": c["size"],
                     "path": "/v2/%s/blobs/%s" % (repo, c["digest"])}
    out["layers"] = []
    for i, l in enumerate(m["layers"]):
        h, _ = cl.get(repo, "blobs/" + l["digest"], accept="*/*", method="HEAD")
        size = int(h.get("Content-Length", "-1"))
        if size != l["size"]:
            raise SystemExit("%s: blob %s: HEAD says %d bytes, the manifest %d" % (repo, l["digest"], size, l["size"]))
        out["layers"].append({"media_type": l["mediaType"], "digest": l["digest"], "size": l["size"],
                              "diff_id": diff_ids[i] if i < len(diff_ids) else None,
                              "path": "/v2/%s/blobs/%s" % (repo, l["digest"])})
    return out


def check_same(what, want, got):
    """the digests in an images.json entry and in what the registry serves agree"""
    if want["digest"] != got["digest"] or want["media_type"] != got["media_type"]:
        raise SystemExit("%s: built %s %s, the registry serves %s %s" % (
            what, want["media_type"], want["digest"], got["media_type"], got["digest"]))
    if want["kind"] == "index":
        if sorted(want["manifests"]) != sorted(got["manifests"]):
            raise SystemExit("%s: platforms %s, the registry serves %s" % (what, sorted(want["manifests"]),
                                                                          sorted(got["manifests"])))
        for k in want["manifests"]:
            check_same(what + " " + k, want["manifests"][k], got["manifests"][k])
        return
    w = [want["config"]["digest"]] + [l["digest"] for l in want["layers"]]
    g = [got["config"]["digest"]] + [l["digest"] for l in got["layers"]]
    if w != g:
        raise SystemExit("%s: blobs %s, the registry serves %s" % (what, w, g))


def cmd_describe(url, out_path, expect_path, refs):
    cl = Client(url)
    expect = json.load(open(expect_path))["images"] if expect_path != "-" else {}
    hostport = urllib.parse.urlparse(url).netloc
    images = {}
    for r in refs:
        repo, _, tag = r.rpartition(":")
        d = describe_manifest(cl, repo, tag)
        d.update({"repo": repo, "tag": tag, "ref": "%s/%s:%s" % (hostport, repo, tag),
                  "tag_path": "/v2/%s/manifests/%s" % (repo, tag)})
        images[r] = d
        if r in expect:
            check_same(r, expect[r], d)
    write_json(out_path, {"registry": url, "images": images, "blobs": blob_table(images)})


# ---------------------------------------------------------------------------------------------------------------
# token server


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Signer:
    def __init__(self, key_path, how):
        self.key_path = key_path
        self.key = None
        if how in ("auto", "cryptography"):
            try:
                from cryptography.hazmat.primitives import hashes, serialization
                from cryptography.hazmat.primitives.asymmetric import padding
                with open(key_path, "rb") as f:
                    self.key = serialization.load_pem_private_key(f.read(), password=None)
                self._args = (padding.PKCS1v15(), hashes.SHA256())
                self.how = "cryptography"
            except ImportError:
                if how == "cryptography":
                    raise
        if self.key is None:
            self.how = "openssl"

    def sign(self, data):
        if self.key is not None:
            return self.key.sign(data, *self._args)
        return subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key_path], input=data, check=True,
                              stdout=subprocess.PIPE).stdout


def pem_der(path):
    lines = open(path).read().split("-----BEGIN CERTIFICATE-----", 1)[1].split("-----END CERTIFICATE-----")[0]
    return base64.b64decode("".join(lines.split()))


class TokenHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "larder-test-token/1"

    def log_message(self, fmt, *args):  # quiet: requests go to the JSON log
        pass

    def _issue(self, method, query):
        srv = self.server
        if urllib.parse.urlparse(self.path).path != "/token":
            self._send(404, {"error": "not found"})
            return
        scopes = []
        for s in query.get("scope", []):
            scopes.extend(s.split())
        access = []
        for s in scopes:
            parts = s.split(":")
            if len(parts) < 3:
                continue
            # type:name:actions, where the name may hold a port (host:port/repo), so split from both ends
            typ, actions, name = parts[0], parts[-1], ":".join(parts[1:-1])
            access.append({"type": typ, "name": name, "actions": [a for a in actions.split(",") if a]})
        now = int(time.time())
        account = (query.get("account") or [""])[0]
        claims = {"iss": srv.issuer, "sub": account, "aud": (query.get("service") or [srv.service])[0],
                  "exp": now + srv.expiry, "nbf": now - 10, "iat": now, "jti": str(uuid.uuid4()), "access": access}
        header = {"typ": "JWT", "alg": "RS256", "x5c": [srv.x5c]}
        signing_input = (b64url(cjson(header)) + "." + b64url(cjson(claims))).encode()
        token = signing_input.decode() + "." + b64url(srv.signer.sign(signing_input))
        issued = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._send(200, {"token": token, "access_token": token, "expires_in": srv.expiry, "issued_at": issued})
        with srv.lock, open(srv.log_path, "a") as f:
            f.write(json.dumps({"time": now, "method": method, "target": self.path, "query": query,
                                "scopes": scopes, "granted": access, "status": 200}) + "\n")

    def _send(self, code, doc):
        body = cjson(doc)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._issue("GET", urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query))

    def do_POST(self):  # the OAuth2 form (docker login with a refresh token): same answer
        n = int(self.headers.get("Content-Length") or 0)
        self._issue("POST", urllib.parse.parse_qs(self.rfile.read(n).decode()))


class TokenServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def cmd_token_server(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="oci_fixture.py token-server")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--issuer", default="larder-test-issuer")
    ap.add_argument("--service", default="larder-test-registry")
    ap.add_argument("--expiry", type=int, default=300)
    ap.add_argument("--signer", default="auto", choices=("auto", "cryptography", "openssl"))
    a = ap.parse_args(argv)
    srv = TokenServer(("127.0.0.1", a.port), TokenHandler)
    srv.issuer, srv.service, srv.expiry, srv.log_path = a.issuer, a.service, a.expiry, a.log
    srv.x5c = base64.b64encode(pem_der(a.cert)).decode()
    srv.signer = Signer(a.key, a.signer)
    srv.lock = threading.Lock()
    open(a.log, "a").close()
    print("token server on 127.0.0.1:%d, signing with %s" % (a.port, srv.signer.how), file=sys.stderr, flush=True)
    srv.serve_forever()


# ---------------------------------------------------------------------------------------------------------------
# checking a pulled dir: copy


def cmd_verify_dir(dest):
    def check_blob(d):
        p = os.path.join(dest, d.split(":", 1)[1])
        if not os.path.isfile(p):
            raise SystemExit("%s: blob %s missing" % (dest, d))
        if sha256(open(p, "rb").read()) != d:
            raise SystemExit("%s: blob %s has the wrong content" % (dest, d))

    def check_manifest(body):
        m = json.loads(body)
        n = 0
        if m.get("mediaType") in LIST_TYPES or "manifests" in m:
            for e in m["manifests"]:
                p = os.path.join(dest, e["digest"].split(":", 1)[1] + ".manifest.json")
                if os.path.isfile(p):  # only the instances that were copied (all of them with --all)
                    sub = open(p, "rb").read()
                    if sha256(sub) != e["digest"]:
                        raise SystemExit("%s: %s has the wrong content" % (dest, p))
                    n += check_manifest(sub)
            return n
        for b in [m["config"]] + m["layers"]:
            check_blob(b["digest"])
            n += 1
        return n

    body = open(os.path.join(dest, "manifest.json"), "rb").read()
    print(sha256(body), check_manifest(body))


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "make" and len(args) == 1:
        cmd_make(args[0])
    elif cmd == "describe" and len(args) >= 4:
        cmd_describe(args[0], args[1], args[2], args[3:])
    elif cmd == "token-server":
        cmd_token_server(args)
    elif cmd == "verify-dir" and len(args) == 1:
        cmd_verify_dir(args[0])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
