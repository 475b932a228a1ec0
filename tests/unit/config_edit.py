"""A copy of a configuration document with one value changed or removed: the config
tests' way of breaking one field at a time."""
from __future__ import annotations

import copy
from typing import Any


def broken(doc: dict, path: list, value: Any) -> dict:
    """`doc` deep-copied with the value at `path` set to `value` (KeyError: removed)."""
    doc = copy.deepcopy(doc)
    where = doc
    for key in path[:-1]:
        where = where[key]
    if value is KeyError:
        del where[path[-1]]
    else:
        where[path[-1]] = value
    return doc
