"""Wait until Manila's scheduler knows the share service's pools; run with the services' interpreter.

Manila's API lists pools from the scheduler's cache (``get_pools(cached=True)``), and the first listing
fills that cache: asked before the share service has sent its capabilities, the scheduler caches the
backend without pools and keeps answering that, however often it is asked. So the sandbox does not
poll the API: it asks the scheduler itself over Manila's RPC API with ``cached=False``, which reads the
capabilities received so far every time and, once they are there, leaves the cache right for the API.

Exit status 0 once a pool is listed (its names on stdout), 1 on timeout (a sentence on stderr).
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True, help="manila.conf")
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for a pool")
    args = parser.parse_args(argv)

    from manila import context, rpc
    from manila.common import config  # noqa: F401 - registers the options rpcapi reads (scheduler_topic)
    from manila.scheduler import rpcapi
    from oslo_config import cfg

    cfg.CONF(["--config-file", args.config_file], project="manila")
    rpc.init(cfg.CONF)
    scheduler = rpcapi.SchedulerAPI()
    # A call to a scheduler that is not consuming yet fails after 10 s, and is made again.
    scheduler.client = scheduler.client.prepare(timeout=10)
    admin = context.get_admin_context()
    deadline = time.monotonic() + args.timeout
    delay = 0.5
    while True:
        try:
            pools = scheduler.get_pools(admin, cached=False)
        except Exception as error:  # a scheduler still starting times out or is unreachable
            pools, last_error = [], error
        else:
            last_error = None
        if pools:
            print("\n".join(pool["name"] for pool in pools))
            return 0
        if time.monotonic() > deadline:
            why = f" (last error: {last_error})" if last_error else ""
            print(f"manila-scheduler listed no pool of the share service within {args.timeout:.0f} s{why}",
                  file=sys.stderr)
            return 1
        time.sleep(delay)
        delay = min(delay * 1.5, 3)


if __name__ == "__main__":
    sys.exit(main())
