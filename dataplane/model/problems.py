"""What is wrong with a topology, said so that a person can fix it.

A `Problem` is one thing wrong: the dotted path of the field (`vpcs.shop.subnets.a.cidr`,
list items indexed as `…ingress[1].source`) and a sentence. `TopologyError` carries every
problem found at once. `add_unique` is how every builder method refuses a second
resource of the same name, so Python and YAML fail the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable


class TopologyError(Exception):
    """A topology that cannot be built. `problems` lists every one as (path, reason)."""

    def __init__(self, problems: list["Problem"]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a topology: the dotted path to the field and why."""
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


def join(path: Iterable[Any]) -> str:
    """["vpcs", "shop", "rules", 1] → "vpcs.shop.rules[1]"."""
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def add_unique(table: dict, name: str, obj: Any, what: str, where: str,
               shares_names_with: tuple[dict, ...] = ()) -> Any:
    """Put `obj` in `table` under `name`, or raise naming the duplicate at `where`.
    `shares_names_with`: other tables of the same file section (NLBs and ALBs are both
    `load_balancers`), whose names count as taken too."""
    if name in table or any(name in other for other in shares_names_with):
        raise TopologyError([Problem(f"{where}.{name}", f"duplicate {what} name")])
    table[name] = obj
    return obj
