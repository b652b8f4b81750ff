"""tutor-larder: every download of `tutor images build` goes through a Larder build cache.

Written against Tutor v21.0.8 (tutor/templates/build/openedx/Dockerfile, tutor/hooks/catalog.py) and tutor-mfe
v21.0.0 (tutormfe/templates/mfe/build/mfe/Dockerfile, tutormfe/hooks.py). One setting is enough: LARDER_URL, the
Larder base URL as the build containers reach it; every other setting defaults from it. How each download step of
Tutor's Dockerfiles is covered (docs/tutor.md in the Larder repository has the whole table):

- apt, in every stage. Tutor's `apt install` lines have no patch point inside them, and the first ones (the openedx
  `minimal` stage, the MFE `base` stage) run before the first patch point of their Dockerfile. Docker's predefined
  `http_proxy` build argument reaches them all: it is added to every image's build command (IMAGES_BUILD), with
  `no_proxy` naming Larder's host so that the clients told to use Larder's own endpoints talk to it directly.
  Docker leaves predefined proxy arguments out of the image's configuration and history.
- uv/pip, pyenv's python-build, git, npm: build ARGs declared in the `openedx-dockerfile-minimal` and
  `mfe-dockerfile-base` patches. BuildKit hands a stage's ARGs on to the stages built FROM it (Tutor's own
  `ARG PIP_COMMAND` in `minimal` reaches `python-requirements` that way), and an ARG is never part of an image's
  environment.
- nodeenv 1.9.1 reads its mirror from no environment variable, only from `~/.nodeenvrc`: the `minimal` patch writes
  /root/.nodeenvrc, the `openedx-dockerfile` patch (production stage, the base of final and development) deletes it.
- edx-platform and the MFE repositories: `ADD <git url>` runs inside BuildKit, where git's configuration does not
  apply. EDX_PLATFORM_REPOSITORY is overridden; MFE repositories are rewritten through tutor-mfe's MFE_APPS filter;
  the checkouts' `origin` remote is set back to the upstream URL afterwards.
- images (`FROM`, `COPY --from=`, the `# syntax=` frontend) are pulled by the build host's docker daemon or BuildKit:
  their settings are rendered into $(tutor config printroot)/env/plugins/larder/build-host/.
"""

from __future__ import annotations

import os
import sys
import typing as t
from urllib.parse import urlsplit

from tutor import hooks

from . import __version__

# Tutor v21.0.8 defines NPM_REGISTRY and EDX_PLATFORM_REPOSITORY (tutor/templates/config/defaults.yml); it does not
# define APT_PROXY_URL or PIP_INDEX_URL: those two are this plugin's, named as the community's pull-through-cache
# proposal for Tutor names them.
CONFIG_DEFAULTS: list[tuple[str, t.Any]] = [
    ("LARDER_VERSION", __version__),
    ("LARDER_URL", "http://172.17.0.1:3142"),
    ("APT_PROXY_URL", "{{ LARDER_URL.rstrip('/') }}"),
    ("PIP_INDEX_URL", "{{ LARDER_URL.rstrip('/') }}/pypi/simple/"),
    ("LARDER_PYTHON_BUILD_MIRROR_URL", "{{ LARDER_URL.rstrip('/') }}/files/python"),
    ("LARDER_NODEENV_MIRROR", "{{ LARDER_URL.rstrip('/') }}/files/nodejs"),
    ("LARDER_GIT_HOSTS", ["github.com"]),
]
CONFIG_OVERRIDES: list[tuple[str, t.Any]] = [
    ("NPM_REGISTRY", "{{ LARDER_URL.rstrip('/') }}/npm/"),
    ("EDX_PLATFORM_REPOSITORY", "{{ LARDER_URL.rstrip('/') }}/git/github.com/openedx/edx-platform.git"),
]


def larder_host(url: str) -> str:
    """The host name of a URL (what no_proxy and pip's trusted-host want)."""
    return urlsplit(url).hostname or ""


def larder_hostport(url: str) -> str:
    """host[:port] of a URL (what daemon.json's insecure-registries and buildkitd.toml's mirrors want)."""
    return urlsplit(url).netloc.rsplit("@", 1)[-1]


def larder_git_url(url: str, larder_url: str, hosts: t.Iterable[str]) -> str:
    """https://<host>/<path> of a host Larder mirrors -> <LARDER_URL>/git/<host>/<path>; anything else unchanged."""
    base = larder_url.rstrip("/")
    for host in hosts:
        prefix = f"https://{host}/"
        if base and url.startswith(prefix):
            return f"{base}/git/{host}/{url[len(prefix):]}"
    return url


# uv: Tutor v21 copies uv 0.9.18, which reads UV_DEFAULT_INDEX (uv >= 0.4.23). Its older spelling UV_INDEX_URL is
# not set as well: two default indexes are one too many for uv's newer releases.
# git: one insteadOf per mirrored host, as GIT_CONFIG_COUNT/KEY/VALUE (git >= 2.31; Ubuntu 22.04 has 2.34): the
# pyenv clone, pip's git+https lines, npm's git dependencies and atlas's translation checkouts all read it.
_GIT_ARGS = """
{%- if LARDER_GIT_HOSTS %}
ARG GIT_CONFIG_COUNT={{ LARDER_GIT_HOSTS|length }}
{%- for host in LARDER_GIT_HOSTS %}
ARG GIT_CONFIG_KEY_{{ loop.index0 }}=url.{{ LARDER_URL.rstrip('/') }}/git/{{ host }}/.insteadOf
ARG GIT_CONFIG_VALUE_{{ loop.index0 }}=https://{{ host }}/
{%- endfor %}
{%- endif %}
ARG NPM_CONFIG_REGISTRY={{ NPM_REGISTRY }}"""

# BuildKit's `ADD --keep-git-dir=true` keeps the URL it fetched as `origin`: give the image the upstream's instead
_ORIGIN_BACK = """
RUN if url=$(git remote get-url origin 2>/dev/null); then case "$url" in \\
      "{{ LARDER_URL.rstrip('/') }}/git/"*) git remote set-url origin "https://${url#"{{ LARDER_URL.rstrip('/') }}/git/"}" ;; \\
    esac; fi"""

PATCHES: list[tuple[str, str]] = [
    (
        # end of the `minimal` stage, which python, code, python-requirements, nodejs-requirements and production
        # (hence development and final) are built from
        "openedx-dockerfile-minimal",
        """# tutor-larder: downloads go through Larder ({{ LARDER_URL }}). ARGs, not ENVs: the stages built FROM this
# one use them in their RUN steps, and no image keeps them in its environment.
{%- if PIP_INDEX_URL %}
ARG PIP_INDEX_URL={{ PIP_INDEX_URL }}
{%- if PIP_INDEX_URL.startswith('http:') %}
ARG PIP_TRUSTED_HOST={{ PIP_INDEX_URL|larder_host }}
{%- endif %}
ARG UV_DEFAULT_INDEX={{ PIP_INDEX_URL }}
{%- endif %}
{%- if LARDER_PYTHON_BUILD_MIRROR_URL %}
ARG PYTHON_BUILD_MIRROR_URL={{ LARDER_PYTHON_BUILD_MIRROR_URL }}
ARG PYTHON_BUILD_MIRROR_URL_SKIP_CHECKSUM=1
{%- endif %}"""
        + _GIT_ARGS
        + """
{%- if LARDER_NODEENV_MIRROR %}
RUN printf '[nodeenv]\\nmirror = %s\\n' '{{ LARDER_NODEENV_MIRROR }}' > /root/.nodeenvrc
{%- endif %}""",
    ),
    ("openedx-dockerfile-post-git-checkout", "# tutor-larder: origin is the upstream, not Larder" + _ORIGIN_BACK),
    (
        # production stage, after every step that could use nodeenv's configuration
        "openedx-dockerfile",
        """{%- if LARDER_NODEENV_MIRROR %}
# tutor-larder: the nodeenv mirror setting of the minimal stage is not part of the image
USER root
RUN rm -f /root/.nodeenvrc
USER ${APP_USER_ID}
{%- endif %}""",
    ),
    # MFE image: `base` is the stage every per-app stage is built from; its `apt install` runs before this patch
    ("mfe-dockerfile-base", "# tutor-larder: downloads go through Larder ({{ LARDER_URL }})" + _GIT_ARGS),
    ("mfe-dockerfile-pre-npm-build", "# tutor-larder: origin is the upstream, not Larder" + _ORIGIN_BACK),
]

hooks.Filters.CONFIG_DEFAULTS.add_items(CONFIG_DEFAULTS)
hooks.Filters.CONFIG_OVERRIDES.add_items(CONFIG_OVERRIDES)
hooks.Filters.ENV_PATCHES.add_items(PATCHES)
hooks.Filters.ENV_TEMPLATE_FILTERS.add_items([("larder_host", larder_host), ("larder_hostport", larder_hostport)])

# the build host's settings (daemon.json, buildkitd.toml) and the Larder configuration the build needs, rendered for
# this LARDER_URL into env/plugins/larder/build-host/
hooks.Filters.ENV_TEMPLATE_ROOTS.add_item(os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates"))
hooks.Filters.ENV_TEMPLATE_TARGETS.add_item(("larder/build-host", "plugins"))


def apt_proxy_build_args(config: t.Mapping[str, t.Any]) -> tuple[str, ...]:
    """The docker build arguments that send apt (and only plain-http traffic) to APT_PROXY_URL."""
    proxy = str(config.get("APT_PROXY_URL") or "")
    if not proxy:
        return ()
    hosts = [larder_host(str(config.get("LARDER_URL") or "")), larder_host(proxy), "localhost", "127.0.0.1"]
    no_proxy = ",".join(dict.fromkeys(h for h in hosts if h))
    return (
        f"--build-arg=http_proxy={proxy}",
        f"--build-arg=no_proxy={no_proxy}",
        f"--build-arg=NO_PROXY={no_proxy}",
    )


# low priority: after Tutor's images and other plugins' (tutor-mfe's), so that every image gets the arguments
@hooks.Filters.IMAGES_BUILD.add(priority=hooks.priorities.LOW)
def _apt_proxy_for_every_image(
    images: list[tuple[str, t.Any, str, tuple[str, ...]]], config: t.Mapping[str, t.Any]
) -> list[tuple[str, t.Any, str, tuple[str, ...]]]:
    extra = apt_proxy_build_args(config)
    if not extra:
        return images
    return [(name, path, tag, tuple(args) + extra) for name, path, tag, args in images]


# tutor-mfe's MFE_APPS filter takes no configuration: keep the loaded one for it
_LOADED: dict[str, t.Any] = {}


@hooks.Actions.CONFIG_LOADED.add()
def _remember_config(config: t.Mapping[str, t.Any]) -> None:
    _LOADED.clear()
    _LOADED.update(config)
    # tutor-mfe caches its app list; it may have been computed before the configuration was loaded. Only a module
    # already imported (the mfe plugin enabled) is touched: importing it here would load its hooks as ours.
    mfe_plugin = sys.modules.get("tutormfe.plugin")
    get_mfes = getattr(mfe_plugin, "get_mfes", None)
    if get_mfes is not None and hasattr(get_mfes, "cache_clear"):
        get_mfes.cache_clear()


def mfe_apps_through_larder(apps: dict[str, dict[str, t.Any]]) -> dict[str, dict[str, t.Any]]:
    base = str(_LOADED.get("LARDER_URL") or "")
    hosts = _LOADED.get("LARDER_GIT_HOSTS") or []
    if not base:
        return apps
    out = {}
    for name, app in apps.items():
        app = dict(app)
        if isinstance(app.get("repository"), str):
            app["repository"] = larder_git_url(app["repository"], base, hosts)
        out[name] = app
    return out


try:
    from tutormfe.hooks import MFE_APPS
except ImportError:  # tutor-mfe not installed: no MFE image to build
    MFE_APPS = None
if MFE_APPS is not None:
    # low priority: after tutor-mfe's own apps (HIGH) and other plugins' additions
    MFE_APPS.add(priority=hooks.priorities.LOW)(mfe_apps_through_larder)
