"""A stand-in for `tutor.hooks` of Tutor v21.0.8, for testing tutor-larder where Tutor cannot be installed.

It has exactly the filter and action names of Tutor v21.0.8's tutor/hooks/catalog.py (kept in ../../tutor_v21.py),
so a plugin naming any other fails with AttributeError, and it records every callback so that the test can apply
them as Tutor would: by priority, then in the order added (tutor/core/hooks/priorities.py), each callback's return
value passed to the next.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
import tutor_v21  # noqa: E402


class priorities:  # noqa: N801 - the module name in Tutor
    HIGH = tutor_v21.PRIORITIES["HIGH"]
    DEFAULT = tutor_v21.PRIORITIES["DEFAULT"]
    LOW = tutor_v21.PRIORITIES["LOW"]


class _Callbacks:
    def __init__(self, name):
        self.name = name
        self.callbacks = []  # (priority, seq, func)

    def add(self, priority=None):
        def inner(func):
            self.callbacks.append((priorities.DEFAULT if priority is None else priority, len(self.callbacks), func))
            self.callbacks.sort(key=lambda c: (c[0], c[1]))
            return func

        return inner


class Filter(_Callbacks):
    def apply(self, value, *args, **kwargs):
        for _p, _s, func in self.callbacks:
            value = func(value, *args, **kwargs)
        return value

    def add_item(self, item, priority=None):
        self.add_items([item], priority=priority)

    def add_items(self, items, priority=None):
        @self.add(priority=priority)
        def callback(values, *_args, **_kwargs):
            return values + list(items)

    def iterate(self, *args, **kwargs):
        yield from self.apply([], *args, **kwargs)


class Action(_Callbacks):
    def do(self, *args, **kwargs):
        for _p, _s, func in self.callbacks:
            func(*args, **kwargs)


class _Catalog:
    def __init__(self, names, cls):
        for name in names:
            setattr(self, name, cls(name))


Filters = _Catalog(tutor_v21.FILTERS, Filter)
Actions = _Catalog(tutor_v21.ACTIONS, Action)
