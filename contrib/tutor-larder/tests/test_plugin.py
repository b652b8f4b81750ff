#!/usr/bin/python3
"""test_plugin.py - tutor-larder loads, registers only Tutor v21 hooks and patch names, and renders as Tutor would.

Tutor is not installable on the test machine (not in Debian, PyPI unreachable), so the plugin is imported against
standin/tutor/hooks, which has exactly the filter and action names of Tutor v21.0.8 (tutor_v21.py keeps them, with
where they were read). Patches and config values are rendered with Jinja2 (Debian's python3-jinja2) the way Tutor's
Renderer does: StrictUndefined, the plugins' template filters, config rendered in one pass.

Always run: the hook and patch names; every patch rendered under three configurations, with no `{{`/`{%` left; the
ARG lines; the shell of the patches run for real (/bin/sh, git: the insteadOf ARGs, the origin reset, the
.nodeenvrc); the IMAGES_BUILD and MFE_APPS callbacks; the build-host templates parsed (json, tomllib, yaml); and a
skeleton of the v21 openedx Dockerfile (its stages and patch points, tutor_v21.OPENEDX_STAGES) rendered with the
patches, whose final and development images must carry no proxy or index setting: no ENV naming one, no file
written with one that a later step of the same lineage does not remove.
With TUTOR_SRC (a Tutor v21 source tree: tutor/templates/..., tutor/hooks/catalog.py) and TUTOR_MFE_SRC (tutor-mfe:
tutormfe/templates/...): the lists of tutor_v21.py are checked against the real files, and the real openedx and MFE
Dockerfiles are rendered with the plugin's patches and checked the same way. Without them those checks print SKIP:
Tutor's templates are AGPL-licensed and not copied into this repository. DUMP_DIR=dir writes the rendered real
Dockerfiles there.
The checker checks itself first on a patch that does leave settings behind (it must complain).
"""

import configparser
import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib

import jinja2
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "standin"), os.path.dirname(HERE), HERE]

import tutor_v21  # noqa: E402
from tutor import hooks  # noqa: E402  (the stand-in)
from tutormfe.hooks import MFE_APPS  # noqa: E402  (the stand-in)

PASSED = FAILED = SKIPPED = 0


def ok(cond, what, detail=""):
    global PASSED, FAILED
    if cond:
        PASSED += 1
        if os.environ.get("VERBOSE") == "1":
            print(f"ok: {what}", file=sys.stderr)
    else:
        FAILED += 1
        print(f"FAIL: {what}" + (f"\n    {detail}" if detail else ""), file=sys.stderr)
    return cond


def skip(what):
    global SKIPPED
    SKIPPED += 1
    print(f"SKIP: {what}", file=sys.stderr)


# ---- Tutor's side, as in v21.0.8: its defaults.yml at HIGH priority, tutor-mfe's defaults and core apps ----------
@hooks.Filters.CONFIG_DEFAULTS.add(priority=hooks.priorities.HIGH)
def _tutor_defaults(items):
    return items + list(TUTOR_DEFAULTS.items())


hooks.Filters.CONFIG_DEFAULTS.add_items(list(tutor_v21.MFE_CONFIG_DEFAULTS.items()))


@MFE_APPS.add(priority=hooks.priorities.HIGH)
def _core_mfes(apps):
    apps.update(copy.deepcopy(tutor_v21.MFE_CORE_APPS))
    apps["custom"] = {"repository": "https://git.example.org/team/frontend-app-custom.git", "port": 3000}
    return apps


TUTOR_SRC = os.environ.get("TUTOR_SRC", "")
MFE_SRC = os.environ.get("TUTOR_MFE_SRC", "")
TUTOR_DEFAULTS = dict(tutor_v21.CONFIG_DEFAULTS)
if TUTOR_SRC:
    with open(os.path.join(TUTOR_SRC, "tutor/templates/config/defaults.yml"), encoding="utf-8") as f:
        real_defaults = yaml.safe_load(f)
    for key, value in tutor_v21.CONFIG_DEFAULTS.items():
        ok(real_defaults.get(key) == value, f"tutor_v21.CONFIG_DEFAULTS[{key}] is the value in TUTOR_SRC's defaults.yml",
           f"{value!r} here, {real_defaults.get(key)!r} there")
    TUTOR_DEFAULTS = real_defaults
    # base.yml holds the generated secrets (rendered with Tutor's own filters) that some defaults name: stand-ins
    with open(os.path.join(TUTOR_SRC, "tutor/templates/config/base.yml"), encoding="utf-8") as f:
        BASE_STANDINS = {k: "base-yml-value" for k in yaml.safe_load(f)}
else:
    BASE_STANDINS = {}

# ---- the plugin ------------------------------------------------------------------------------------------------------
used = {}


def _spy(catalog, kind):
    for name in dir(catalog):
        obj = getattr(catalog, name)
        if hasattr(obj, "callbacks"):
            used[(kind, name)] = len(obj.callbacks)


_spy(hooks.Filters, "filter")
_spy(hooks.Actions, "action")
before = dict(used)
try:
    import tutorlarder.plugin as plugin  # noqa: E402
except AttributeError as e:  # a hook name Tutor v21 does not have
    ok(False, "the plugin imports against Tutor v21's hook names", str(e))
    print(f"test_tutor_plugin: {PASSED} passed, {FAILED} failed")
    sys.exit(1)
ok(True, "the plugin imports against the stand-in of Tutor v21's tutor.hooks")
_spy(hooks.Filters, "filter")
_spy(hooks.Actions, "action")
registered = sorted(n for k, n in used if used[(k, n)] != before.get((k, n), 0))
for kind, name in [(k, n) for k, n in used if used[(k, n)] != before.get((k, n), 0)]:
    names = tutor_v21.FILTERS if kind == "filter" else tutor_v21.ACTIONS
    ok(name in names, f"the plugin's {kind} {name} is one of Tutor v21's")
ok({"CONFIG_DEFAULTS", "CONFIG_OVERRIDES", "ENV_PATCHES", "IMAGES_BUILD", "CONFIG_LOADED"} <= set(registered),
   "the plugin registers defaults, overrides, patches, the build arguments and the config hook", str(registered))
ok(len(MFE_APPS.callbacks) == 2, "the plugin adds one MFE_APPS callback (tutor-mfe's filter)")

# the names of the real source trees, when given
if TUTOR_SRC:
    with open(os.path.join(TUTOR_SRC, "tutor/hooks/catalog.py"), encoding="utf-8") as f:
        catalog = f.read()
    filters_src = catalog.split("class Filters", 1)[1].split("class Contexts", 1)[0]
    actions_src = catalog.split("class Actions", 1)[1].split("class Filters", 1)[0]
    real_filters = re.findall(r"^    ([A-Z][A-Z_]+): ", filters_src, re.M)
    real_actions = re.findall(r"^    ([A-Z][A-Z_]+): ", actions_src, re.M)
    ok(sorted(real_filters) == sorted(tutor_v21.FILTERS), "tutor_v21.FILTERS are TUTOR_SRC's filters",
       f"{sorted(set(real_filters) ^ set(tutor_v21.FILTERS))}")
    ok(sorted(real_actions) == sorted(tutor_v21.ACTIONS), "tutor_v21.ACTIONS are TUTOR_SRC's actions")
    with open(os.path.join(TUTOR_SRC, "tutor/templates/build/openedx/Dockerfile"), encoding="utf-8") as f:
        OPENEDX_DOCKERFILE = f.read()
    real = re.findall(r'patch\("([^"]+)"\)', OPENEDX_DOCKERFILE)
    ok(list(dict.fromkeys(real)) == tutor_v21.OPENEDX_PATCHES, "tutor_v21.OPENEDX_PATCHES are the real Dockerfile's",
       f"{list(dict.fromkeys(real))}")
else:
    OPENEDX_DOCKERFILE = None
    skip("TUTOR_SRC not set: hook names, patch names and defaults not compared with Tutor's source; the real "
         "openedx Dockerfile not rendered (set TUTOR_SRC to a Tutor v21 source tree)")
if MFE_SRC:
    with open(os.path.join(MFE_SRC, "tutormfe/templates/mfe/build/mfe/Dockerfile"), encoding="utf-8") as f:
        MFE_DOCKERFILE = f.read()
    real = re.findall(r'patch\("([^"]+)"(?:\.format\(app_name\))?\)', MFE_DOCKERFILE)
    ok(list(dict.fromkeys(real)) == tutor_v21.MFE_PATCHES, "tutor_v21.MFE_PATCHES are the real MFE Dockerfile's",
       f"{list(dict.fromkeys(real))}")
else:
    MFE_DOCKERFILE = None
    skip("TUTOR_MFE_SRC not set: the real MFE Dockerfile not rendered (set it to a tutor-mfe v21 source tree)")

ALLOWED_PATCHES = set(tutor_v21.OPENEDX_PATCHES)
for p in tutor_v21.MFE_PATCHES:
    ALLOWED_PATCHES |= {p.format(app) for app in tutor_v21.MFE_CORE_APPS} if "{}" in p else {p}
PATCHES = list(hooks.Filters.ENV_PATCHES.iterate())
ok(len(PATCHES) >= 5, "the plugin has patches", str(len(PATCHES)))
for name, _content in PATCHES:
    ok(name in ALLOWED_PATCHES, f"patch {name!r} is a patch point of Tutor v21 / tutor-mfe v21")


# ---- a renderer as Tutor's (tutor/env.py Renderer, tutor/config.py load_full) ----------------------------------------
def make_env(config):
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    for name, func in hooks.Filters.ENV_TEMPLATE_FILTERS.iterate():
        env.filters[name] = func
    env.globals.update(HOST_USER_ID=1000, TUTOR_APP="tutor", TUTOR_VERSION=tutor_v21.TUTOR_VERSION,
                       TUTOR_VERSION_MAJOR=21, TUTOR_VERSION_MINOR=0, TUTOR_BRANCH_IS_MAIN=False)
    env.globals["iter_mounted_directories"] = lambda mounts, image: iter(())
    env.globals["iter_mfes"] = lambda: MFE_APPS.apply({}).items()

    def patch(name, separator="\n", suffix=""):
        out = separator.join(render(config, c) for n, c in hooks.Filters.ENV_PATCHES.iterate() if n == name)
        return out + suffix if out else out

    env.globals["patch"] = patch
    return env


def render(config, text):
    return make_env(config).from_string(text).render(**config)


def load_config(user):
    config = dict(BASE_STANDINS, **user)
    base = dict(hooks.Filters.CONFIG_UNIQUE.iterate())
    base.update(hooks.Filters.CONFIG_OVERRIDES.iterate())
    for src in (base, dict(hooks.Filters.CONFIG_DEFAULTS.iterate())):
        for k, v in src.items():
            config.setdefault(k, v)
    for k, v in config.items():  # one pass, in order, as render_full
        config[k] = (render(config, v) if isinstance(v, str)
                     else [render(config, x) if isinstance(x, str) else x for x in v] if isinstance(v, list) else v)
    hooks.Actions.CONFIG_LOADED.do(copy.deepcopy(config))
    return config


# ---- what an image carries ---------------------------------------------------------------------------------------
WATCHED = re.compile(r"\b(https?_proxy|no_proxy|HTTPS?_PROXY|NO_PROXY|PIP_INDEX_URL|PIP_TRUSTED_HOST|UV_DEFAULT_INDEX|"
                     r"UV_INDEX_URL|UV_INDEX|PYTHON_BUILD_MIRROR_URL\w*|GIT_CONFIG_\w+|NPM_CONFIG_REGISTRY)\b|"
                     r"Acquire::https?::Proxy|insteadOf|\[nodeenv\]")


def instructions(dockerfile):
    out, cur = [], ""
    for line in dockerfile.splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        cur += (" " if cur else "") + s
        if cur.endswith("\\"):
            cur = cur[:-1].rstrip()
            continue
        out.append(cur)
        cur = ""
    return out


def stages(dockerfile):
    st = []
    for ins in instructions(dockerfile):
        m = re.match(r"(?i)FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$", ins)
        if m:
            st.append({"base": m.group(1), "name": m.group(2) or f"#{len(st)}", "ins": []})
        elif st:
            st[-1]["ins"].append(ins)
    return st


def carried(dockerfile, target, larder_url):
    """Settings the image of stage `target` keeps: ENVs that name a proxy/index/mirror setting or Larder, files
    written with one (`> /path`, `git config --system/--global`) and not removed (`rm -f /path`) later on."""
    by_name = {s["name"]: s for s in stages(dockerfile)}
    chain, name = [], target
    while name in by_name:
        chain.insert(0, by_name[name])
        name = by_name[name]["base"]
    if not chain:
        return [f"no stage {target}"]
    problems, written = [], {}
    for s in chain:
        for ins in s["ins"]:
            kw = ins.split(None, 1)[0].upper()
            if kw == "ENV" and (WATCHED.search(ins) or larder_url in ins):
                problems.append(f"{s['name']}: {ins}")
            if kw == "RUN" and (WATCHED.search(ins) or larder_url in ins):
                for path in re.findall(r"(?<![0-9&])>>?\s*(/[^\s;&|]+)", ins):
                    if not path.startswith("/dev/"):
                        written[path] = f"{s['name']}: {ins}"
                if re.search(r"git config (--system|--global)", ins):
                    problems.append(f"{s['name']}: {ins}")
            if kw == "RUN":
                for path in re.findall(r"\brm -f\s+(/[^\s;&|]+)", ins):
                    written.pop(path, None)
    return problems + [f"written and never removed: {w}" for w in written.values()]


# the checker must be able to fail
_bad = "FROM x AS minimal\nENV UV_DEFAULT_INDEX=http://l/pypi/simple/\nRUN echo '[nodeenv]' > /root/.nodeenvrc\n" \
       "FROM minimal AS final\nRUN true\n"
ok(len(carried(_bad, "final", "http://l")) == 2, "the checker finds an ENV and a file left behind",
   str(carried(_bad, "final", "http://l")))
ok(carried(_bad + "RUN rm -f /root/.nodeenvrc\n", "final", "http://l") == [f"minimal: ENV UV_DEFAULT_INDEX=http://l/pypi/simple/"],
   "the checker accepts a removed file")


def skeleton():
    """The stages and patch points of Tutor v21's openedx Dockerfile (tutor_v21.OPENEDX_STAGES), nothing else."""
    out = []
    for name, base, patches in tutor_v21.OPENEDX_STAGES:
        out.append(f"FROM {base} AS {name}")
        if name == "minimal":
            out.append("RUN apt update && apt install -y build-essential curl git language-pack-en")
        if name == "production":
            out += ["ARG APP_USER_ID=1000", "USER ${APP_USER_ID}"]
        out += ['{{ patch("%s") }}' % p for p in patches]
    return "\n".join(out) + "\n"


def sh(cmd, env=None, cwd=None):
    return subprocess.run(["/bin/sh", "-c", cmd], env=env, cwd=cwd, capture_output=True, text=True, check=False)


def run_line(rendered, prefix):
    """The RUN instruction of a rendered patch that starts with prefix, as the shell command it runs."""
    for ins in instructions(rendered):
        if ins.startswith("RUN ") and prefix in ins:
            return ins[4:]
    return None


def args_of(rendered):
    return dict(re.match(r"ARG ([A-Za-z_][A-Za-z0-9_]*)=(\S+)$", i).groups()
                for i in instructions(rendered) if i.startswith("ARG "))


# ---- three configurations ----------------------------------------------------------------------------------------
CASES = [
    ("defaults", {}, "http://172.17.0.1:3142"),
    ("https, trailing slash", {"LARDER_URL": "https://larder.example:8443/"}, "https://larder.example:8443"),
    ("apt proxy and nodeenv mirror off", {"LARDER_URL": "http://10.0.0.5:3142", "APT_PROXY_URL": "",
                                          "LARDER_NODEENV_MIRROR": ""}, "http://10.0.0.5:3142"),
]
for case, user, base in CASES:
    cfg = load_config(user)
    tag = f"[{case}]"
    ok(cfg["NPM_REGISTRY"] == f"{base}/npm/", f"{tag} NPM_REGISTRY (Tutor's) defaults from LARDER_URL", cfg["NPM_REGISTRY"])
    ok(cfg["EDX_PLATFORM_REPOSITORY"] == f"{base}/git/github.com/openedx/edx-platform.git",
       f"{tag} EDX_PLATFORM_REPOSITORY goes through /git/", cfg["EDX_PLATFORM_REPOSITORY"])
    ok(cfg["PIP_INDEX_URL"] == f"{base}/pypi/simple/", f"{tag} PIP_INDEX_URL defaults from LARDER_URL")
    ok(cfg["APT_PROXY_URL"] == ("" if "APT_PROXY_URL" in user else base), f"{tag} APT_PROXY_URL")

    rendered = {}
    for name, content in PATCHES:
        try:
            text = render(cfg, content)
        except jinja2.TemplateError as e:
            ok(False, f"{tag} patch {name} renders", repr(e))
            continue
        rendered[name] = rendered.get(name, "") + text
        ok("{{" not in text and "{%" not in text and "}}" not in text, f"{tag} patch {name} has nothing unrendered",
           text)
        for ins in instructions(text):
            ok(ins.split(None, 1)[0] in ("ARG", "RUN", "USER"), f"{tag} {name}: only ARG, RUN and USER", ins)
            if ins.startswith("ARG "):
                ok(re.match(r"ARG [A-Za-z_][A-Za-z0-9_]*=\S+$", ins), f"{tag} {name}: one ARG=value", ins)

    a = args_of(rendered["openedx-dockerfile-minimal"])
    want = {"PIP_INDEX_URL": f"{base}/pypi/simple/", "UV_DEFAULT_INDEX": f"{base}/pypi/simple/",
            "PYTHON_BUILD_MIRROR_URL": f"{base}/files/python",
            "PYTHON_BUILD_MIRROR_URL_SKIP_CHECKSUM": "1", "NPM_CONFIG_REGISTRY": f"{base}/npm/",
            "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"url.{base}/git/github.com/.insteadOf",
            "GIT_CONFIG_VALUE_0": "https://github.com/"}
    for k, v in want.items():
        ok(a.get(k) == v, f"{tag} minimal patch: ARG {k}={v}", str(a.get(k)))
    ok(("PIP_TRUSTED_HOST" in a) == base.startswith("http:"), f"{tag} PIP_TRUSTED_HOST only for plain http")
    ok("UV_INDEX_URL" not in a, f"{tag} one default index for uv, not two")
    mfe_args = args_of(rendered["mfe-dockerfile-base"])
    ok(mfe_args.get("GIT_CONFIG_KEY_0") == want["GIT_CONFIG_KEY_0"], f"{tag} MFE base patch: the git insteadOf ARGs")

    # the git ARGs, given to a real git as a build step's environment gets them
    env = dict(os.environ, **{k: v for k, v in a.items() if k.startswith("GIT_CONFIG_")})
    env.pop("GIT_CONFIG_GLOBAL", None)
    r = subprocess.run(["git", "ls-remote", "--get-url", "https://github.com/pyenv/pyenv"], env=env,
                       capture_output=True, text=True, check=False)
    ok(r.stdout.strip() == f"{base}/git/github.com/pyenv/pyenv", f"{tag} git rewrites github.com through Larder",
       r.stdout + r.stderr)
    r = subprocess.run(["git", "ls-remote", "--get-url", "https://gitlab.example/x"], env=env,
                       capture_output=True, text=True, check=False)
    ok(r.stdout.strip() == "https://gitlab.example/x", f"{tag} git leaves other hosts alone")

    # nodeenv's configuration file, written by the RUN line (to a temporary path), read as nodeenv 1.9.1 reads it
    line = run_line(rendered["openedx-dockerfile-minimal"], ".nodeenvrc")
    if cfg["LARDER_NODEENV_MIRROR"]:
        with tempfile.TemporaryDirectory() as d:
            r = sh(line.replace("/root/.nodeenvrc", f"{d}/.nodeenvrc"))
            cp = configparser.ConfigParser()
            cp.read(f"{d}/.nodeenvrc")
            ok(r.returncode == 0 and cp.get("nodeenv", "mirror", fallback="") == f"{base}/files/nodejs",
               f"{tag} /root/.nodeenvrc names the nodeenv mirror", r.stderr)
        ok("rm -f /root/.nodeenvrc" in rendered["openedx-dockerfile"], f"{tag} the production stage removes it")
    else:
        ok(line is None and rendered["openedx-dockerfile"].strip() == "", f"{tag} no .nodeenvrc when the mirror is off")

    # the origin reset, run in a real checkout whose origin is Larder's URL (as BuildKit's ADD --keep-git-dir leaves it)
    for pname in ("openedx-dockerfile-post-git-checkout", "mfe-dockerfile-pre-npm-build"):
        line = run_line(rendered[pname], "git remote")
        with tempfile.TemporaryDirectory() as d:
            sh(f"git init -q . && git remote add origin '{base}/git/github.com/openedx/edx-platform.git'", cwd=d)
            r = sh(line, cwd=d)
            got = sh("git remote get-url origin", cwd=d).stdout.strip()
            ok(r.returncode == 0 and got == "https://github.com/openedx/edx-platform.git",
               f"{tag} {pname}: origin set back to the upstream", f"{got} {r.stderr}")
            sh("git remote set-url origin https://example.org/other.git", cwd=d)
            r = sh(line, cwd=d)
            ok(sh("git remote get-url origin", cwd=d).stdout.strip() == "https://example.org/other.git",
               f"{tag} {pname}: another origin is left alone")
        with tempfile.TemporaryDirectory() as d:
            ok(sh(line, cwd=d).returncode == 0, f"{tag} {pname}: no checkout, no failure")

    # apt: the predefined proxy build arguments, on every image
    images = [("openedx", "build/openedx", "docker.io/overhangio/openedx:21.0.8", ()),
              ("openedx-dev", "build/openedx", "openedx-dev:21.0.8", ("--target=development",)),
              ("mfe", "plugins/mfe/build/mfe", "mfe:21.0.0", ())]
    built = hooks.Filters.IMAGES_BUILD.apply(list(images), cfg)
    host = re.sub(r"^https?://([^:/]+).*", r"\1", base)
    for name, _p, _t, args in built:
        if cfg["APT_PROXY_URL"]:
            ok(f"--build-arg=http_proxy={base}" in args and f"--build-arg=no_proxy={host},localhost,127.0.0.1" in args,
               f"{tag} image {name}: http_proxy and no_proxy build arguments", str(args))
        else:
            ok(not any("proxy" in x for x in args), f"{tag} image {name}: no proxy argument when APT_PROXY_URL is empty")
    ok(built[1][3][0] == "--target=development", f"{tag} the image's own arguments are kept")

    # the MFE repositories
    apps = MFE_APPS.apply({})
    ok(apps["learning"]["repository"] == f"{base}/git/github.com/openedx/frontend-app-learning.git",
       f"{tag} MFE repositories go through /git/", apps["learning"]["repository"])
    ok(apps["custom"]["repository"] == "https://git.example.org/team/frontend-app-custom.git",
       f"{tag} an MFE on a host Larder does not mirror is left alone")

    # the build host's settings
    tdir = os.path.join(os.path.dirname(HERE), "tutorlarder", "templates", "larder", "build-host")
    ok(("larder/build-host", "plugins") in list(hooks.Filters.ENV_TEMPLATE_TARGETS.iterate())
       and os.path.join(os.path.dirname(HERE), "tutorlarder", "templates") in
       [os.path.normpath(p) for p in hooks.Filters.ENV_TEMPLATE_ROOTS.iterate()],
       f"{tag} build-host templates are a template target")
    hostport = re.sub(r"^https?://", "", base)
    with open(os.path.join(tdir, "daemon.json"), encoding="utf-8") as f:
        daemon = json.loads(render(cfg, f.read()))
    ok(daemon["registry-mirrors"] == [base], f"{tag} daemon.json registry-mirrors", str(daemon))
    ok(daemon.get("insecure-registries", []) == ([hostport] if base.startswith("http:") else []),
       f"{tag} daemon.json insecure-registries only for plain http", str(daemon))
    with open(os.path.join(tdir, "buildkitd.toml"), encoding="utf-8") as f:
        bk = tomllib.loads(render(cfg, f.read()))
    ok(bk["registry"]["docker.io"]["mirrors"] == [hostport] and bk["registry"]["ghcr.io"]["mirrors"] == [hostport],
       f"{tag} buildkitd.toml mirrors docker.io and ghcr.io", str(bk))
    ok(bk["registry"].get(hostport, {}).get("http", False) == base.startswith("http:")
       and "http" not in bk["registry"]["docker.io"], f"{tag} buildkitd.toml: http on the mirror's own key", str(bk))
    with open(os.path.join(tdir, "larder.yaml"), encoding="utf-8") as f:
        ly = yaml.safe_load(render(cfg, f.read()))
    ok({m["name"] for m in ly["files"]["mirrors"]} == {"python", "nodejs"} and "ghcr.io" in ly["oci"]["registries"],
       f"{tag} larder.yaml names the python and nodejs mirrors and ghcr.io")

    # the images: nothing carried into final or development (skeleton always; the real Dockerfiles when given)
    sk = render(cfg, skeleton())
    for target in ("final", "development"):
        p = carried(sk, target, base)
        ok(not p, f"{tag} skeleton of the v21 Dockerfile: the {target} image carries no proxy or index setting",
           "\n    ".join(p))
    minimal = next(s for s in stages(sk) if s["name"] == "minimal")
    ok(any(i.startswith("ARG UV_DEFAULT_INDEX=") for i in minimal["ins"]), f"{tag} skeleton: the index ARGs in minimal")
    if OPENEDX_DOCKERFILE is not None:
        real = render(cfg, OPENEDX_DOCKERFILE)
        if os.environ.get("DUMP_DIR"):  # to read what Tutor would render
            with open(os.path.join(os.environ["DUMP_DIR"], f"openedx.{CASES.index((case, user, base))}"), "w") as f:
                f.write(real)
        ok("{{" not in real and "{%" not in real, f"{tag} the real openedx Dockerfile renders completely")
        ok(f"ADD --keep-git-dir=true $EDX_PLATFORM_REPOSITORY#" in real
           and f"ARG EDX_PLATFORM_REPOSITORY={base}/git/github.com/openedx/edx-platform.git" in real,
           f"{tag} real Dockerfile: edx-platform is added from Larder")
        for target in ("final", "development"):
            p = carried(real, target, base)
            ok(not p, f"{tag} real openedx Dockerfile: the {target} image carries no proxy or index setting",
               "\n    ".join(p))
        names = [s["name"] for s in stages(real)]
        ok([n for n, _b, _p in tutor_v21.OPENEDX_STAGES] == [n for n in names if not n.startswith("mnt-")],
           f"{tag} the skeleton's stages are the real Dockerfile's", str(names))
        for s in stages(real):
            if s["name"] in ("python", "python-requirements", "nodejs-requirements", "production"):
                chain = [x for x in stages(real) if x["name"] == "minimal"][0]["ins"]
                ok(any(i.startswith("ARG UV_DEFAULT_INDEX=") for i in chain), f"{tag} {s['name']} inherits the ARGs")
    if MFE_DOCKERFILE is not None:
        real = render(cfg, MFE_DOCKERFILE)
        if os.environ.get("DUMP_DIR"):
            with open(os.path.join(os.environ["DUMP_DIR"], f"mfe.{CASES.index((case, user, base))}"), "w") as f:
                f.write(real)
        ok("{{" not in real and "{%" not in real, f"{tag} the real MFE Dockerfile renders completely")
        ok(f"ADD --keep-git-dir=true {base}/git/github.com/openedx/frontend-app-authn.git#" in real,
           f"{tag} real MFE Dockerfile: the apps are added from Larder")
        for target in ("production", "authn-dev", "learning-dev"):
            p = carried(real, target, base)
            ok(not p, f"{tag} real MFE Dockerfile: the {target} image carries no proxy or index setting",
               "\n    ".join(p))

print(f"test_tutor_plugin: {PASSED} passed, {FAILED} failed" + (f", {SKIPPED} skipped" if SKIPPED else ""))
sys.exit(1 if FAILED else 0)
