"""Reading a topology file (YAML) into a checked `Lab`, with bounded effort.

A file is read as bytes and refused, with a sentence naming what is wrong, when it is
larger than `MAX_FILE_BYTES` or is not UTF-8 (the line of the first bad byte). YAML is
parsed safely (no tags, no Python objects) by a loader that bounds what a small file
could make expensive, each refused at the line where it happens:

* nesting deeper than `MAX_DEPTH` (a topology file needs about 8 levels; 20,000 nested
  brackets would exhaust Python's recursion);
* more than `MAX_NODES` nodes once aliases are expanded (an alias is counted as every
  node it stands for, so a "billion laughs" file of nested aliases is refused after
  composing it once, in time linear in its length, never by a timer), and an alias to
  an enclosing node (a cycle);
* an integer of more than `MAX_INT_DIGITS` digits (Python refuses to convert very long
  ones anyway).

A plain YAML parser keeps the last of two equal keys without a word; here the node tree
is walked first and every duplicate key is reported at its path with its line, like any
other problem. Then the document goes through `validate.check_document` and, when
nothing is wrong, through `Lab.from_dict`, whose Hyperplane ENIs must find addresses
and the forwarder's ports and tables room (`Lab.allocation_problems`). Nothing here
touches the kernel, so a bad file never creates anything.
"""
from __future__ import annotations

import os
from typing import Any

import yaml

from .problems import Problem, TopologyError, join
from .topology import Lab
from .validate import check_document

MAX_FILE_BYTES = 1 << 20    # 1 MiB: a 50-VPC lab's file is about 60 KB
MAX_DEPTH = 64
MAX_NODES = 200_000
MAX_INT_DIGITS = 30
INT_TAG = "tag:yaml.org,2002:int"


class _Refused(yaml.YAMLError):
    def __init__(self, mark: yaml.Mark | None, problem: str):
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader (pure Python) with the module docstring's bounds."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}    # id(node) → nodes it stands for, expanded

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        # The scanner reads ahead while a simple key may be pending, and each open
        # bracket leaves one; bound the brackets here, before that costs anything.
        if self.flow_level >= MAX_DEPTH:
            raise _Refused(self.get_mark(), f"nested more than {MAX_DEPTH} levels deep")
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: Any, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)    # an unknown anchor raises
            if id(node) not in self._sizes:
                raise _Refused(event.start_mark, f"alias *{event.anchor} refers to a node "
                               f"that encloses it (a cycle)")
            return node
        mark = self.peek_event().start_mark
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(mark, f"nested more than {MAX_DEPTH} levels deep")
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, yaml.ScalarNode):
            size = 1
            if node.tag == INT_TAG and len(node.value) > MAX_INT_DIGITS:
                raise _Refused(mark, f"a number of {len(node.value)} digits (at most "
                               f"{MAX_INT_DIGITS})")
        elif isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self._sizes[id(v)] for v in node.value)
        else:
            size = 1 + sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
        if size > MAX_NODES:
            raise _Refused(mark, f"more than {MAX_NODES} values once aliases are expanded "
                           f"(a topology file needs far fewer)")
        self._sizes[id(node)] = size
        return node


def _duplicates(node: yaml.Node, path: list[Any], out: list[Problem],
                seen_nodes: set[int]) -> None:
    if id(node) in seen_nodes:          # an alias: its node was walked where it stands
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else None
            if key is not None and key in seen:
                out.append(Problem(join(path + [key]),
                                   f"duplicate key (line {k.start_mark.line + 1}); "
                                   f"names must be unique"))
            seen.add(key)
            _duplicates(v, path + [key], out, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _duplicates(v, path + [i], out, seen_nodes)


def parse(text: str, source: str = "<string>") -> tuple[Any, list[Problem]]:
    """YAML text → (plain document, duplicate-key problems). TopologyError on bad YAML
    or on a bound of the module docstring, naming the line."""
    if len(text) > MAX_FILE_BYTES:
        raise TopologyError([Problem("", f"{source}: {len(text)} characters; a topology "
                                         f"file is at most {MAX_FILE_BYTES} bytes")])
    loader = BoundedLoader(text)
    try:
        root = loader.get_single_node()
        problems: list[Problem] = []
        if root is None:
            return None, problems
        _duplicates(root, [], problems, set())
        return loader.construct_document(root), problems
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}, line {mark.line + 1}" if mark else source
        raise TopologyError([Problem("", f"{where}: not valid YAML: "
                                         f"{getattr(e, 'problem', None) or e}")]) from None
    finally:
        loader.dispose()


def loads(text: str, source: str = "<string>", name: str | None = None) -> Lab:
    """The lab `text` describes; `name` replaces its `lab:` name (`up FILE --name
    LAB2`: the same file as a second lab, every kernel object named after it)."""
    doc, problems = parse(text, source)
    if name is not None and isinstance(doc, dict):
        doc["lab"] = name
    problems += check_document(doc)
    if problems:
        raise TopologyError(problems)
    lab = Lab.from_dict(doc)
    problems = lab.allocation_problems()
    if problems:
        raise TopologyError(problems)
    return lab


def read_text(path: str | os.PathLike) -> str:
    """The file at `path` as text: at most MAX_FILE_BYTES of UTF-8, or TopologyError."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise TopologyError([Problem("", f"{path}: {e.strerror}")]) from None
    if len(data) > MAX_FILE_BYTES:
        raise TopologyError([Problem("", f"{path}: larger than {MAX_FILE_BYTES} bytes, "
                                         f"the most a topology file may be")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise TopologyError([Problem("", f"{path}, line {line}: not UTF-8 (byte "
                                         f"0x{data[e.start]:02x} at offset {e.start})")]) from None


def load(path: str | os.PathLike, name: str | None = None) -> Lab:
    """Read, check and build the lab in the file at `path` (TopologyError if it's bad),
    named `name` instead of the file's `lab:` when given."""
    return loads(read_text(path), str(path), name)
