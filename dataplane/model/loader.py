"""Reading a topology file (YAML) into a checked `Lab`.

YAML is parsed safely (no tags, no Python objects). A plain YAML parser keeps the last
of two equal keys without a word; here the node tree is walked first and every
duplicate key is reported at its path with its line, like any other problem. Then the
document goes through `validate.check_document` and, when nothing is wrong, through
`Lab.from_dict`, whose Hyperplane ENIs must find addresses and forwarder ports. Nothing here touches the kernel, so a bad file never creates anything.
"""
from __future__ import annotations

import os
from typing import Any

import yaml

from .problems import Problem, TopologyError, join
from .topology import Lab
from .validate import check_document


def _duplicates(node: yaml.Node, path: list[Any], out: list[Problem]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else None
            if key is not None and key in seen:
                out.append(Problem(join(path + [key]),
                                   f"duplicate key (line {k.start_mark.line + 1}); "
                                   f"names must be unique"))
            seen.add(key)
            _duplicates(v, path + [key], out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _duplicates(v, path + [i], out)


def parse(text: str, source: str = "<string>") -> tuple[Any, list[Problem]]:
    """YAML text → (plain document, duplicate-key problems). TopologyError on bad YAML."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        problems: list[Problem] = []
        if root is not None:
            _duplicates(root, [], problems)
        return yaml.safe_load(text), problems
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}, line {mark.line + 1}" if mark else source
        raise TopologyError([Problem("", f"{where}: not valid YAML: "
                                         f"{getattr(e, 'problem', None) or e}")]) from None


def loads(text: str, source: str = "<string>") -> Lab:
    doc, problems = parse(text, source)
    problems += check_document(doc)
    if problems:
        raise TopologyError(problems)
    lab = Lab.from_dict(doc)
    problems = lab.allocation_problems()
    if problems:
        raise TopologyError(problems)
    return lab


def load(path: str | os.PathLike) -> Lab:
    """Read, check and build the lab in the file at `path` (TopologyError if it's bad)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise TopologyError([Problem("", f"{path}: {e.strerror}")]) from None
    return loads(text, str(path))
