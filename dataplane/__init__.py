"""vpclab's control plane: the resource model, the Hyperplane engine wrapper, the CLI,
and the Python API.

`from dataplane import Lab` is the API (dataplane/api.py): the model's builder that
also comes up, runs commands and goes down. It is imported on first use, so that
`import dataplane.model` (and `vpclab validate`) loads nothing of the lab machinery.
"""
from __future__ import annotations

from typing import Any

_API = ("Lab", "LabError", "TopologyError", "ExecError", "leftovers")
__all__ = list(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'dataplane' has no attribute {name!r}")
