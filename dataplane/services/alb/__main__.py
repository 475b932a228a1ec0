"""An ALB node: `python -m dataplane.services.alb --config FILE`.

Reads the node's configuration (config.py; the contract is notes/alb-config.md), serves
its listeners (node.py) and exits 0 on SIGTERM. A configuration it can't serve — bad
JSON, a wrong field, a listener it can't bind, a certificate it can't load, an access
log it can't open — is one line on stderr naming the field, and exit status 2. Once
serving, it prints one line on stdout: `alb <pid>: <name> node <address>: http://…:80,
https://…:443, control <socket>`.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

import uvloop

from dataplane.services.serving import ConfigError, read_config

from .config import AlbConfig
from .node import AlbNode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dataplane.services.alb",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the node's JSON configuration")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="alb %(asctime)s %(message)s")
    doc = read_config("alb", args.config)
    if doc is None:
        return 2
    try:
        config = AlbConfig.from_json(doc)
        node = AlbNode(config)
        address = config.node.address
        listeners = ", ".join(f"{l.protocol.lower()}://{address}:{l.port}"
                              for l in config.listeners)
        uvloop.run(node.run(ready=lambda: print(
            f"alb {os.getpid()}: {config.name} node {address}: {listeners}, control "
            f"{config.socket}", flush=True)))
    except ConfigError as exc:
        print(f"alb: {args.config}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
