// clients.js - copy-paste set-up for every client of this appliance, written for the address the browser used
// (editable: the name clients use may differ) and for this daemon's mounts, registries and git remotes
// (GET /-/api/v1/info, falling back to /stats and the default mounts). Each snippet follows docs/<protocol>.md.
"use strict";
import { fill, h, get, button, copyText } from "./lib.js";

const DEFAULT_MOUNTS = { files: "/files/", pypi: "/pypi/", npm: "/npm/", apt: "/apt/", oci: "/v2/", gems: "/gems/", git: "/git/" };
const ADDR_KEY = "larder-client-base";

function names(x) {
  if (!x) return [];
  if (Array.isArray(x)) return x.map((v) => (typeof v === "string" ? v : v && v.name)).filter(Boolean);
  if (typeof x === "object") return Object.keys(x);
  return [];
}

function snippet(id, title, where, code, note) {
  const pre = h("pre.code", { id: "snip-" + id, tabindex: "0", "aria-label": title }, h("code", { text: code }));
  const copy = button("Copy", () => copyText(code, copy), "small copy", { "aria-label": "Copy " + title, "data-snippet": id });
  return h("div.snippet", { "data-snippet": id },
    h("div.snippet-head", null, h("h3", { text: title }), copy),
    where ? h("p.where", null, where) : null,
    pre,
    note ? h("p.hint", null, note) : null);
}

export function render(main) {
  const saved = sessionStorage.getItem(ADDR_KEY) || "";
  const addr = h("input#client-base", { type: "url", value: saved || location.origin, autocomplete: "off", spellcheck: "false", "aria-describedby": "client-base-help" });
  const body = h("div#client-snippets", null, h("p.muted", { text: "Loading…" }));
  const reset = button("Use this page's address", () => { addr.value = location.origin; sessionStorage.removeItem(ADDR_KEY); draw(); }, "small");
  main.append(h("h1", { text: "Clients" }),
    h("section", { "aria-labelledby": "h-addr" }, h("h2#h-addr", { text: "Larder's address" }),
      h("div.row.addr-row", null, h("label", { for: "client-base" }, "Clients reach Larder at"), addr, reset),
      h("p.hint#client-base-help", { text: "Every snippet below uses this address. Build containers reach the host at its bridge address (usually http://172.17.0.1:PORT), not at localhost." })),
    body);
  addr.addEventListener("change", () => { sessionStorage.setItem(ADDR_KEY, addr.value.trim()); draw(); });

  let info = null, stats = null;
  Promise.all([get("info").catch(() => null), get("stats").catch(() => null)]).then(([i, s]) => { info = i; stats = s; draw(); });

  function draw() {
    let base;
    try { base = new URL(addr.value.trim() || location.origin); } catch { base = new URL(location.origin); }
    fill(body, ...build(base, info, stats));
  }
}

function build(u, info, stats) {
  const origin = u.origin; // scheme://host[:port], no trailing slash
  const host = u.host; // host[:port]
  const hostname = u.hostname.replace(/^\[|\]$/g, "");
  const http = u.protocol === "http:";
  const local = ["localhost", "127.0.0.1", "::1"].includes(hostname);
  const insecure = http && !local;
  const port = u.port || (http ? "80" : "443");

  const protos = {};
  if (info && info.protocols) for (const [n, p] of Object.entries(info.protocols)) protos[n] = { enabled: p.enabled !== false, mount: p.mount || DEFAULT_MOUNTS[n] };
  else if (stats && stats.protocols) for (const [n, p] of Object.entries(stats.protocols)) protos[n] = { enabled: !!p.enabled, mount: DEFAULT_MOUNTS[n] };
  else for (const n of Object.keys(DEFAULT_MOUNTS)) protos[n] = { enabled: true, mount: DEFAULT_MOUNTS[n] };
  const on = (n) => protos[n] && protos[n].enabled;
  const mount = (n) => "/" + String((protos[n] && protos[n].mount) || DEFAULT_MOUNTS[n]).replace(/^\/+|\/+$/g, "");
  const registries = names(info && info.oci_registries);
  if (!registries.length) registries.push("docker.io");
  const pinfo = (n) => (info && info.protocols && info.protocols[n]) || {};
  // git remotes: [{name, url}] (name is the path under /git/, url the upstream a clone would have used)
  const gitRemotes = (Array.isArray(pinfo("git").remotes) ? pinfo("git").remotes : [])
    .map((r) => (typeof r === "string" ? { name: r, url: "https://" + r } : r)).filter((r) => r && r.name);
  if (!gitRemotes.length) gitRemotes.push({ name: "github.com", url: "https://github.com" });
  const dockerHub = info ? pinfo("oci").docker_hub : "docker.io";
  const files = (info && info.files) || {};
  const pins = names(files.pins), mirrors = names(files.mirrors);

  const out = [];
  const section = (id, title, enabled, intro, ...snips) => {
    out.push(h("section.client-group", { id: "clients-" + id, "aria-labelledby": "h-cl-" + id },
      h("h2", { id: "h-cl-" + id }, title, enabled ? null : h("span.badge-off", { text: " not enabled in larder.yaml" })),
      intro ? h("p.hint", null, intro) : null, ...snips));
  };
  if (!info) out.push(h("p.msg.warn", { text: "This daemon has no GET /-/api/v1/info: the snippets assume the default mounts, docker.io only and github.com for git." }));

  // ---- pip / uv
  const simple = origin + mount("pypi") + "/simple/";
  section("pip", "pip and uv", on("pypi"), "Every Python install goes through Larder's index cache; hashes (--require-hashes) keep working.",
    snippet("pip-conf", "pip.conf", "/etc/pip.conf (all users), ~/.config/pip/pip.conf or $VIRTUAL_ENV/pip.conf",
      "[global]\nindex-url = " + simple + (insecure ? "\ntrusted-host = " + hostname : "") + "\n"),
    snippet("pip-env", "PIP_INDEX_URL", "CI jobs, Dockerfiles (ARG), tox",
      "export PIP_INDEX_URL=" + simple + (insecure ? "\nexport PIP_TRUSTED_HOST=" + hostname : "") + "\n"),
    snippet("uv-env", "UV_DEFAULT_INDEX (uv)", "uv ≥ 0.4.23 (older uv: UV_INDEX_URL)",
      "export UV_DEFAULT_INDEX=" + simple + (insecure ? "\nexport UV_INSECURE_HOST=" + hostname : "") + "\n"));

  // ---- npm / yarn
  // npm.public_url, when set, is the registry URL clients must use (tarball links are written with it)
  const pub = pinfo("npm").public_url;
  const reg = pub ? String(pub).replace(/\/*$/, "/") : origin + mount("npm") + "/";
  section("npm", "npm and yarn", on("npm"), "Lockfiles written against registry.npmjs.org work unchanged with npm 7+ (it sends those tarball requests to the configured registry).",
    snippet("npmrc", ".npmrc", "next to package.json, or ~/.npmrc", "registry=" + reg + "\n"),
    snippet("npm-env", "NPM_CONFIG_REGISTRY", "CI jobs, Dockerfile ARG/ENV", "export NPM_CONFIG_REGISTRY=" + reg + "\n"),
    snippet("yarnrc", "yarn 1 (.yarnrc)", ".yarnrc next to package.json, or ~/.yarnrc", "registry \"" + reg + "\"\n"),
    snippet("yarn-lock", "yarn 1: a yarn.lock made against the public registry", "once, in the project: yarn 1 downloads from the URLs its yarn.lock records, whatever the registry says",
      "sed -i -e 's#https://registry.yarnpkg.com/#" + reg + "#g' \\\n       -e 's#https://registry.npmjs.org/#" + reg + "#g' yarn.lock\nyarn install --frozen-lockfile\n",
      "The integrity fields stay valid: the tarballs are the same bytes."),
    snippet("yarnrc-yml", "yarn 2+ (.yarnrc.yml)", ".yarnrc.yml next to package.json",
      "npmRegistryServer: \"" + reg + "\"\n" + (insecure ? "unsafeHttpWhitelist:\n  - \"" + hostname + "\"\n" : "")));

  // ---- apt
  section("apt", "apt", on("apt"), "apt uses Larder as its HTTP proxy; sources.list stays as it is (write http:// sources; Larder fetches the hosts listed in apt.https_hosts over TLS).",
    snippet("apt-proxy", "apt proxy file", "/etc/apt/apt.conf.d/01proxy", "Acquire::http::Proxy \"" + origin + "\";\n",
      "Per command: apt-get -o Acquire::http::Proxy=" + origin + " update. Only the hosts in apt.allow are fetched."));

  // ---- OCI
  const regs = registries;
  const containerd = regs.map((r) => "# /etc/containerd/certs.d/" + r + "/hosts.toml\nserver = \"" + (r === "docker.io" ? "https://registry-1.docker.io" : "https://" + r) + "\"\n\n[host.\"" + origin + "\"]\n  capabilities = [\"pull\", \"resolve\"]\n").join("\n");
  const buildkit = regs.map((r) => "[registry.\"" + r + "\"]\n  mirrors = [\"" + host + "\"]\n").join("\n") +
    (http ? "\n[registry.\"" + host + "\"]    # the mirror's own entry: plain HTTP\n  http = true\n" : "");
  const podmanRegs = regs.filter((r) => !r.includes(":"));
  const podman = podmanRegs.map((r) => "[[registry]]\nprefix = \"" + r + "\"\nlocation = \"" + r + "\"\n\n[[registry.mirror]]\nlocation = \"" + host + (r === "docker.io" ? "" : "/" + r) + "\"\n" + (http ? "insecure = true\n" : "")).join("\n");
  section("oci", "Docker, containerd, BuildKit, podman", on("oci"),
    "Registries mirrored by this Larder: " + regs.join(", ") + " (oci.registries).",
    dockerHub ? snippet("daemon-json", "Docker daemon (daemon.json)", "/etc/docker/daemon.json, then systemctl restart docker",
      JSON.stringify(http ? { "registry-mirrors": [origin], "insecure-registries": [host] } : { "registry-mirrors": [origin] }, null, 2) + "\n",
      "The docker daemon uses a mirror for Docker Hub only; pull other registries' images as " + host + "/ghcr.io/owner/image:tag.") : null,
    snippet("hosts-toml", "containerd (hosts.toml)", "one directory per registry under /etc/containerd/certs.d/ (config_path in the CRI registry section)", containerd),
    snippet("buildkitd", "BuildKit (buildkitd.toml)", "/etc/buildkit/buildkitd.toml, or the config of a docker-container buildx builder", buildkit),
    snippet("registries-conf", "podman, skopeo, CRI-O (registries.conf)", "/etc/containers/registries.conf or ~/.config/containers/registries.conf", podman,
      regs.length > podmanRegs.length ? "A registry with a port needs an alias name in oci.registries for registries.conf (see docs/docker.md)." : null));

  // ---- gems
  const gems = origin + mount("gems");
  section("gems", "Bundler and gem", on("gems"), "The Gemfile keeps source \"https://rubygems.org\"; bundler sends its requests to the mirror.",
    snippet("bundler", "bundler mirror", "once per machine (or user)", "bundle config set --global mirror.https://rubygems.org " + gems + "\n"),
    snippet("bundler-env", "BUNDLE_MIRROR (environment)", "CI jobs, Dockerfile ENV", "export BUNDLE_MIRROR__HTTPS://RUBYGEMS__ORG/=" + gems + "\n"),
    snippet("gem", "gem install", "per command, or :sources: in ~/.gemrc", "gem install --clear-sources --source " + gems + "/ rails\n"));

  // ---- git
  const gitBase = origin + mount("git");
  section("git", "git", on("git"), "One insteadOf line per remote makes every git clone (submodules, pip git+https, npm github: dependencies) go through Larder.",
    snippet("git-insteadof", "git insteadOf", "the build's git configuration (/etc/gitconfig, or --global)",
      gitRemotes.map((r) => "git config --global url.\"" + gitBase + "/" + r.name + "/\".insteadOf \"" + String(r.url).replace(/\/*$/, "/") + "\"").join("\n") + "\n"));

  // ---- files
  const filesBase = origin + mount("files");
  const fileExample = pins.length ? pins[0] : mirrors.length ? mirrors[0] + "/path/to/file" : "NAME";
  section("files", "Files (pins and mirrors)", on("files"),
    (pins.length ? "Pins: " + pins.join(", ") + ". " : "") + (mirrors.length ? "Mirrors: " + mirrors.join(", ") + "." : ""),
    snippet("files-curl", "curl / ADD", "a pin by name, or <mirror>/<path>", "curl -fsSLO " + filesBase + "/" + fileExample + "\n"),
    snippet("pyenv", "pyenv (python-build)", "fetches <mirror>/<sha256 of the tarball>",
      "export PYTHON_BUILD_MIRROR_URL=" + filesBase + "/sha256\n"));

  // ---- Tutor
  const tutorUrl = local ? "http://172.17.0.1:" + port : origin;
  section("tutor", "Tutor / Open edX", true, "The tutor-larder plugin (contrib/tutor-larder in Larder's source) points apt, uv/pip, pyenv, nodeenv, npm and git of `tutor images build` at Larder from one LARDER_URL; see docs/tutor.md.",
    snippet("tutor", "tutor-larder plugin", "on the machine that runs tutor, in Tutor's Python environment",
      "pip install /path/to/larder/contrib/tutor-larder\ntutor plugins enable larder\ntutor config save --set LARDER_URL=" + tutorUrl + "\n",
      (local ? "LARDER_URL must be reachable from the build containers and the docker daemon: 172.17.0.1 is the default bridge's host address (this page was opened on " + hostname + ")." :
        "LARDER_URL must be reachable from the build containers and the docker daemon.") +
      (["python", "nodejs"].every((m) => mirrors.includes(m)) ? "" : " The plugin also expects the files mirrors python and nodejs (files.mirrors in larder.yaml; see docs/tutor.md).")));
  return out;
}
