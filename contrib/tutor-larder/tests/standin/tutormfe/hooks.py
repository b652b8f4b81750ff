"""Stand-in for tutormfe/hooks.py (tutor-mfe v21.0.0): the MFE_APPS filter, {name: {repository, port, version}}."""
from tutor.hooks import Filter

MFE_APPS = Filter("MFE_APPS")
PLUGIN_SLOTS = Filter("PLUGIN_SLOTS")
