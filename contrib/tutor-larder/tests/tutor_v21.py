"""What tutor-larder's test checks the plugin against: names and values read from Tutor's own source.

Read from overhangio/tutor at tag v21.0.8 (commit 2d6faeb8ea4745054f6cdbe3650d75e2b5874149, 2026-06-23) and
overhangio/tutor-mfe, release branch at version 21.0.0 (commit 2e30801e0cf823dbaf8dbad697ed3e2faf2299b9). Only names
and a few default values are kept here (facts, not Tutor's code). With TUTOR_SRC / TUTOR_MFE_SRC pointing at those
source trees the test re-reads them and fails when these lists no longer match.
"""

TUTOR_VERSION = "21.0.8"
TUTOR_COMMIT = "2d6faeb8ea4745054f6cdbe3650d75e2b5874149"
TUTOR_MFE_VERSION = "21.0.0"
TUTOR_MFE_COMMIT = "2e30801e0cf823dbaf8dbad697ed3e2faf2299b9"

# tutor/hooks/catalog.py, class Filters and class Actions
FILTERS = """APP_PUBLIC_HOSTS CLI_COMMANDS CLI_DO_COMMANDS CLI_DO_INIT_TASKS COMPOSE_MOUNTS CONFIG_DEFAULTS
CONFIG_OVERRIDES CONFIG_UNIQUE CONFIG_USER DOCKER_BUILD_COMMAND ENV_PATCHES ENV_PATTERNS_IGNORE ENV_PATTERNS_INCLUDE
ENV_TEMPLATE_FILTERS ENV_TEMPLATE_ROOTS ENV_TEMPLATE_TARGETS ENV_TEMPLATE_VARIABLES IMAGES_BUILD IMAGES_BUILD_REQUIRED
IMAGES_BUILD_MOUNTS IMAGES_PULL IMAGES_PUSH MOUNTED_DIRECTORIES PLUGIN_INDEXES PLUGIN_INDEX_URL
PLUGIN_INDEX_ENTRY_TO_INSTALL PLUGINS_INFO PLUGINS_INSTALLED PLUGINS_LOADED IS_FILE_RENDERED LMS_WORKER_COMMAND
CMS_WORKER_COMMAND TESTS""".split()
ACTIONS = """COMPOSE_PROJECT_STARTED CONFIG_INTERACTIVE CONFIG_LOADED CORE_READY DO_JOB PLUGIN_LOADED PLUGINS_LOADED
PLUGIN_UNLOADED PROJECT_ROOT_READY""".split()
# tutor/core/hooks/priorities.py
PRIORITIES = {"HIGH": 5, "DEFAULT": 10, "LOW": 50}

# every {{ patch("...") }} of tutor/templates/build/openedx/Dockerfile, in order
OPENEDX_PATCHES = [
    "openedx-dockerfile-minimal",
    "openedx-dockerfile-git-patches-default",
    "openedx-dockerfile-post-git-checkout",
    "openedx-dockerfile-post-python-requirements",
    "openedx-dockerfile-pre-assets",
    "openedx-dockerfile",
    "openedx-dev-dockerfile-post-python-requirements",
    "openedx-dockerfile-final",
]
# every patch of tutormfe/templates/mfe/build/mfe/Dockerfile; "{}" is an app name
MFE_PATCHES = [
    "mfe-dockerfile-base",
    "mfe-dockerfile-pre-npm-install",
    "mfe-dockerfile-pre-npm-install-{}",
    "mfe-dockerfile-post-npm-install",
    "mfe-dockerfile-post-npm-install-{}",
    "mfe-dockerfile-pre-npm-build",
    "mfe-dockerfile-pre-npm-build-{}",
    "mfe-dockerfile-post-npm-build",
    "mfe-dockerfile-post-npm-build-{}",
    "mfe-dockerfile-production-final",
]

# the stages of tutor/templates/build/openedx/Dockerfile: name -> (FROM, patches inside, in order). "final" is what
# `tutor images build openedx` tags (no --target); "development" is the openedx-dev image (--target=development).
OPENEDX_STAGES = [
    ("minimal", "docker.io/ubuntu:22.04", ["openedx-dockerfile-minimal"]),
    ("python", "minimal", []),
    ("code", "minimal", ["openedx-dockerfile-git-patches-default", "openedx-dockerfile-post-git-checkout"]),
    ("edx-platform", "scratch", []),
    ("python-requirements", "python", ["openedx-dockerfile-post-python-requirements"]),
    ("nodejs-requirements", "python", []),
    ("production", "minimal", ["openedx-dockerfile-pre-assets", "openedx-dockerfile"]),
    ("development", "production", ["openedx-dev-dockerfile-post-python-requirements"]),
    ("final", "production", ["openedx-dockerfile-final"]),
]
# the download steps of that Dockerfile that come before any patch point their stage inherits
OPENEDX_UNPATCHED_DOWNLOADS = ["minimal: apt update && apt install (first RUN of the first stage)"]

# tutor/templates/config/defaults.yml: the values the Dockerfile templates use
CONFIG_DEFAULTS = {
    "ATLAS_REVISION": "{% if OPENEDX_COMMON_VERSION == 'master' %}main{% else %}{{ OPENEDX_COMMON_VERSION }}{% endif %}",
    "ATLAS_REPOSITORY": "openedx/openedx-translations",
    "ATLAS_OPTIONS": "",
    "DOCKER_REGISTRY": "docker.io/",
    "DOCKER_IMAGE_CADDY": "docker.io/caddy:2.7.4",
    "EDX_PLATFORM_REPOSITORY": "https://github.com/openedx/edx-platform.git",
    "EDX_PLATFORM_VERSION": "{{ OPENEDX_COMMON_VERSION }}",
    "LMS_HOST": "local.openedx.io",
    "MONGODB_HOST": "mongodb",
    "MONGODB_PORT": 27017,
    "MOUNTS": [],
    "NPM_REGISTRY": "https://registry.npmjs.org/",
    "OPENEDX_COMMON_VERSION": "release/ulmo.3",
    "OPENEDX_EXTRA_PIP_REQUIREMENTS": [],
}
# tutormfe/plugin.py: config defaults (prefixed MFE_) and two of CORE_MFE_APPS
MFE_CONFIG_DEFAULTS = {
    "MFE_VERSION": "21.0.0",
    "MFE_COMMON_VERSION": "{{ OPENEDX_COMMON_VERSION }}",
    "MFE_CADDY_DOCKER_IMAGE": "{{ DOCKER_IMAGE_CADDY }}",
}
MFE_CORE_APPS = {
    "authn": {"repository": "https://github.com/openedx/frontend-app-authn.git", "port": 1999},
    "learning": {"repository": "https://github.com/openedx/frontend-app-learning.git", "port": 2000},
}
