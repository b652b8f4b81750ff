#!/usr/bin/env python3
"""pypi_pip_accept.py - run the real pip with the Accept header of its index requests replaced by $PIP_ACCEPT
(pip 23 always asks for JSON first; this makes it an HTML-only client, as older pips were, so its own HTML parser
reads what Larder renders). Everything else is pip itself: usage as `python3 -m pip`."""

import os
import sys

import pip._internal.network.session as session
from pip._internal.cli.main import main

_request = session.PipSession.request


def request(self, method, url, *args, **kwargs):
    headers = kwargs.get("headers") or {}
    if "vnd.pypi.simple" in headers.get("Accept", ""):
        headers = dict(headers, Accept=os.environ["PIP_ACCEPT"])
        kwargs["headers"] = headers
    return _request(self, method, url, *args, **kwargs)


session.PipSession.request = request
sys.exit(main())
