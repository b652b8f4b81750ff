#!/usr/bin/env bash
# test_tutor_plugin.sh - contrib/tutor-larder (the Tutor plugin): it loads against Tutor v21's hook names, uses only
# v21 patch points, renders with Jinja2 (Debian's python3-jinja2) without anything left unrendered, its shell lines
# work (run with /bin/sh and git), and the final and development images of Tutor's Dockerfile carry no proxy or
# index setting. The checks are in contrib/tutor-larder/tests/test_plugin.py, which prints the closing line.
#
#   TUTOR_SRC       a Tutor v21 source tree (tutor/templates/..., tutor/hooks/catalog.py): also render the real
#                   openedx Dockerfile and compare the kept names with Tutor's (SKIP when unset)
#   TUTOR_MFE_SRC   a tutor-mfe v21 source tree (tutormfe/templates/...): also render the real MFE Dockerfile
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
exec /usr/bin/python3 -B "$REPO/contrib/tutor-larder/tests/test_plugin.py"
