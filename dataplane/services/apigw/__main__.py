"""API Gateway's front end: `python -m dataplane.services.apigw --config FILE`.

Reads the configuration (config.py; the contract is notes/apigw-config.md), serves every
API of the lab (frontend.py) and exits 0 on SIGTERM. A configuration it can't serve —
bad JSON, a wrong field, a listener address it can't bind, a certificate it can't load —
is one line on stderr naming the field, and exit status 2.

`--header-timeout` and `--idle-timeout` change the engine's read deadlines (seconds;
defaults 10 and 60): the root tests shorten them to test slowloris quickly.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

import uvloop

from dataplane.services.proxy.personality import Limits

from dataplane.services.serving import ConfigError, read_config

from .config import ApigwConfig
from .frontend import FrontEnd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dataplane.services.apigw",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the front end's JSON configuration")
    parser.add_argument("--header-timeout", type=float, default=Limits.header_timeout_s,
                        help="seconds for a request's head to arrive (slowloris)")
    parser.add_argument("--idle-timeout", type=float, default=Limits.idle_timeout_s,
                        help="seconds an idle keep-alive client connection is kept")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="apigw %(asctime)s %(message)s")
    doc = read_config("apigw", args.config)
    if doc is None:
        return 2
    limits = Limits(header_timeout_s=args.header_timeout, idle_timeout_s=args.idle_timeout)
    try:
        config = ApigwConfig.from_json(doc)
        front_end = FrontEnd(config, limits)
        listeners = ", ".join(f"{'https' if l.tls else 'http'}://{l.address}:{l.port}"
                              for l in config.listeners)
        uvloop.run(front_end.run(ready=lambda: print(
            f"apigw {os.getpid()}: {len(config.apis)} APIs on {listeners}, control "
            f"{config.socket}", flush=True)))
    except ConfigError as exc:
        print(f"apigw: {args.config}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
