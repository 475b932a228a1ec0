"""`vpclab graph [-l LAB | FILE] [--name LAB] [--format mermaid|dot] [-o FILE]`: the lab
drawn — VPCs, subnets, instances, ENIs, endpoints, endpoint services, load balancers,
target groups, VPC links, APIs and Cloud Map services with their connections
(dataplane/graph.py says what is drawn and how).

From a file it needs no root and touches nothing; from a running lab it reads the
topology in the lab's state file. Mermaid (the default) pastes into a Markdown file as a
```mermaid block, which GitHub renders; `--format dot` is Graphviz's language
(`vpclab graph FILE --format dot | dot -Tsvg > lab.svg`).
"""
from __future__ import annotations

import sys

from .. import graph
from ..model import Lab, TopologyError
from .common import EXIT_OK, EXIT_USAGE, CliError, pick_lab
from .validate import add_name_option, load_named, report


def register(sub) -> None:
    p = sub.add_parser("graph", help="draw a lab (a file, or a running lab) as mermaid or dot")
    p.add_argument("file", nargs="?", help="a topology file (default: the running lab)")
    p.add_argument("-l", "--lab", help="a running lab (its state file's topology)")
    add_name_option(p)
    p.add_argument("--format", choices=graph.FORMATS, default="mermaid",
                   help="mermaid (default; GitHub renders it) or dot (Graphviz)")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.file and args.lab:
        raise CliError("name a file or a lab (-l), not both", EXIT_USAGE)
    if args.file:
        try:
            lab = load_named(args.file, args.name)
        except TopologyError as e:
            report(args.file, e)
            return EXIT_USAGE
    else:
        if args.name:
            raise CliError("--name goes with a file", EXIT_USAGE)
        lab = Lab.from_dict(pick_lab(args.lab).data["topology"])
    text = graph.render(lab, args.format)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK
