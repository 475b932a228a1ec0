"""The lab's Cloud Map process: `python -m dataplane.services.cloudmap --config FILE`.

The configuration (written by `up`, lab/realise_cloud_map.py) names the registry file and,
per VPC, its namespace, the resolver's address and the ports (server.py). The process
opens every socket, prints one line saying where it listens, and serves until SIGTERM
(exit 0). A configuration it can't use, or an address it can't bind, is one line on
stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys

from .server import CloudMapServer, listeners


async def _serve(server: CloudMapServer) -> None:
    await server.start()
    where = "; ".join(f"{v.vpc}: http://{v.address}:{v.http_port}"
                      + (f", dns {v.address}:{v.dns_port}" if v.dns_port else "")
                      for v in server.vpcs)
    print(f"cloudmap {os.getpid()}: registry {server.registry_path}; {where}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dataplane.services.cloudmap",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="cloudmap %(asctime)s %(message)s")
    try:
        with open(args.config) as f:
            config = json.load(f)
        server = CloudMapServer(config["registry"], listeners(config))
        asyncio.run(_serve(server))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"cloudmap: {args.config}: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
