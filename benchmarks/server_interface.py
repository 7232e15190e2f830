"""os_server_interface on 100 servers x 2 networks (hte, lln) against the sandbox, side by side.

    .venv/bin/python benchmarks/server_interface.py [--servers 100] [--sample 10] [--latency-ms 100]
                                                    [--concurrency 20] [--latency-via client|proxy]
                                                    [--boot-timeout 1800]

1. boots --servers + --sample servers in ONE request on the fake host (zone "scale": cheap servers that
   take ports like any other) and waits for them;
2. with --latency-ms added to every request the module makes, first runs (every port to create):
   a. the module's way (a bounded pool of --concurrency) on all --servers servers: the first run;
   b. one server after another (the same module with concurrency 1) on the --sample other servers,
      timed and scaled to --servers (the cost is linear in the servers; attaching 100 servers one by one
      at 100 ms a request takes minutes and shows nothing more);
3. no latency, a no-change re-run over the --servers servers: its API calls, counted twice: by the
   module's own session (Cloud.api_calls) and by the fault proxy for this run's User-Agent only;
4. deletes the servers and every port it made.

For both timed runs it also prints the CPU time the sandbox's own processes (Nova, Neutron, MariaDB ...)
used, per program, read from /proc before and after: on a machine of N cores the cloud's side of the
concurrent run cannot take less than that CPU time / N, whatever the client does, which bounds the
speed-up this machine can show.

The added latency: ``client`` (default) delays each of this client's own requests in its HTTP transport,
so only the module's requests are slowed; ``proxy`` sets the sandbox fault proxy's latency on the
compute and network services, which slows every client of the shared sandbox (its latency is per
service, not per User-Agent).

Not a timed test: it prints the figures (the README quotes them) and exits 1 when a target is missed:
a no-change re-run of at most 5 API calls, a first run at least 5 times faster than one after another.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import openstack
import requests.adapters

from container_infra.cloud import Cloud
from container_infra.cloud.rest import Rest
from container_infra.sandbox.faults import FaultClient
from container_infra.sandbox.layout import Layout
from container_infra.sandbox.nodes import FAKE_ZONE
from container_infra.sandbox.supervisor import Supervisor, sandbox_pids
from container_infra.server_ports import ensure

# The servers to attach ports to are the tests' fixture code (tests/cloud_servers.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from cloud_servers import boot_servers, delete_servers

NETWORKS = ("hte", "lln")
MAX_NO_CHANGE_CALLS = 5
MIN_SPEED_UP = 5.0


def params(servers: list[str], concurrency: int) -> dict:
    return {"servers": servers, "interfaces": [{"network": n} for n in NETWORKS], "state": "present",
            "concurrency": concurrency, "wait": True, "timeout": 1800, "poll_interval": 2.0}


class DelayedAdapter(requests.adapters.HTTPAdapter):
    """Every request waits ``delay`` seconds before it is sent: a slower network, for this client only."""

    def __init__(self, delay: float, pool_size: int) -> None:
        super().__init__(pool_connections=pool_size, pool_maxsize=pool_size)
        self.delay = delay

    def send(self, request, **kwargs):
        time.sleep(self.delay)
        return super().send(request, **kwargs)


class CloudCPU:
    """CPU seconds (user + system) of the sandbox's processes, per supervisord program (a process counts
    for the program whose process it descends from: gunicorn and oslo workers, MariaDB's threads)."""

    TICKS = os.sysconf("SC_CLK_TCK")

    def __init__(self) -> None:
        self.layout = Layout.default()

    def snapshot(self) -> Counter:
        programs = {}
        for name, (_, description) in Supervisor(self.layout).statuses().items():
            found = re.search(r"pid (\d+)", description)
            if found:
                programs[int(found.group(1))] = name
        parents, cpu = {}, {}
        for pid in sandbox_pids(self.layout):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited meanwhile
            # After "(comm)": state ppid ... utime (14th field of stat) stime (15th).
            parents[pid] = int(fields[1])
            cpu[pid] = (int(fields[11]) + int(fields[12])) / self.TICKS
        out: Counter = Counter()
        for pid, seconds in cpu.items():
            owner = pid
            while owner not in programs and owner in parents:
                owner = parents[owner]
            out[programs.get(owner, "other")] += seconds
        return out

    @staticmethod
    def report(before: Counter, after: Counter, wall: float) -> float:
        used = after.copy()
        used.subtract(before)
        total = sum(v for v in used.values() if v > 0)
        cores = os.cpu_count() or 1
        top = ", ".join(f"{name} {seconds:.1f}" for name, seconds in used.most_common(5) if seconds > 0)
        print(f"  the cloud's processes used {total:.1f} CPU-s in those {wall:.1f} s ({top}); on {cores} cores "
              f"the cloud alone needs at least {total / cores:.1f} s")
        return total / cores


def connect(agent: str) -> Cloud:
    """The module's Cloud, its User-Agent tagged with ``agent`` so the proxy counts this run alone."""
    cloud = Cloud.from_params({"cloud": "sandbox"})
    cloud.session.additional_user_agent.append((agent, "1"))
    return cloud


def timed(cloud: Cloud, servers: list[str], concurrency: int) -> float:
    started = time.monotonic()
    result = ensure(Rest(cloud), params(servers, concurrency))
    assert result["changed"], "the first run changed nothing"
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=100)
    parser.add_argument("--sample", type=int, default=10,
                        help="more servers, attached one after another, timed and scaled to --servers")
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--latency-via", choices=["client", "proxy"], default="client")
    parser.add_argument("--boot-timeout", type=int, default=1800, help="seconds the servers may take to boot")
    args = parser.parse_args()
    prefix = f"modb-bench-{uuid.uuid4().hex[:6]}"
    agent = f"{prefix}-agent"
    conn = openstack.connect(cloud="sandbox")
    faults = FaultClient()
    cpu = CloudCPU()
    failures = []
    try:
        started = time.monotonic()
        names = [s.name for s in boot_servers(conn, prefix, args.servers + args.sample, zone=FAKE_ZONE,
                                                  timeout=args.boot_timeout)]
        print(f"booted {len(names)} servers (zone {FAKE_ZONE}) in one request: {time.monotonic() - started:.1f} s")
        first, sample = names[:args.servers], names[args.servers:]

        cloud = connect(agent)
        Rest(cloud).list_networks(names=list(NETWORKS))  # token and catalog fetched before timing
        if args.latency_via == "client":
            adapter = DelayedAdapter(args.latency_ms / 1000, pool_size=args.concurrency + 2)
            cloud.session.session.mount("http://", adapter)
            cloud.session.session.mount("https://", adapter)
        else:
            for service in ("compute", "network"):
                faults.set_latency(args.latency_ms, service=service)
        how = f"{args.latency_ms} ms added per request ({args.latency_via})"

        cloud.api_calls.reset()
        before = cpu.snapshot()
        concurrent = timed(cloud, first, args.concurrency)
        concurrent_calls = cloud.api_calls.reset()
        print(f"first run, pool of {args.concurrency}, {how}: {len(first)} servers x {len(NETWORKS)} networks in "
              f"{concurrent:.1f} s ({concurrent_calls} API calls)")
        floor = cpu.report(before, cpu.snapshot(), concurrent)
        if sample:
            before = cpu.snapshot()
            sequential = timed(cloud, sample, 1)
            sequential_calls = cloud.api_calls.reset()
            per_server = sequential / len(sample)
            baseline = per_server * args.servers
            print(f"one after another (concurrency 1), {how}: {len(sample)} servers in {sequential:.1f} s "
                  f"({sequential_calls} API calls) = {per_server:.2f} s/server -> {baseline:.1f} s for "
                  f"{args.servers} servers")
            cpu.report(before, cpu.snapshot(), sequential)
            speed_up = baseline / concurrent
            print(f"speed-up of the first run over one after another: {speed_up:.1f}x (target >= {MIN_SPEED_UP:g}x); "
                  f"the most this machine's CPUs allow: {baseline / max(floor, 1e-6):.1f}x")
            if speed_up < MIN_SPEED_UP:
                failures.append(f"speed-up {speed_up:.1f}x < {MIN_SPEED_UP:g}x")
        if args.latency_via == "proxy":
            for service in ("compute", "network"):
                faults.set_latency(0, service=service)

        # The no-change re-run, on a fresh connection as a playbook's task has (authentication included).
        faults.reset_counts(agent=f"*{agent}*")
        fresh = connect(agent)
        authenticated = fresh.api_calls.total
        again = ensure(Rest(fresh), params(first, args.concurrency))
        module_calls = fresh.api_calls.total - authenticated
        proxy_calls = sum(v.get("total", 0) for v in faults.counts(agent=f"*{agent}*").values())
        print(f"no-change re-run on {args.servers} servers x {len(NETWORKS)} networks: changed={again['changed']}, "
              f"{module_calls} API calls after authentication ({fresh.api_calls.total} with it, Cloud.api_calls); "
              f"{proxy_calls} through the fault proxy with this run's User-Agent (target <= {MAX_NO_CHANGE_CALLS})")
        if again["changed"]:
            failures.append("the re-run changed something")
        if module_calls > MAX_NO_CHANGE_CALLS:
            failures.append(f"the no-change re-run made {module_calls} API calls > {MAX_NO_CHANGE_CALLS}")
    finally:
        if args.latency_via == "proxy":
            for service in ("compute", "network"):
                faults.set_latency(0, service=service)
        print(f"deleted {delete_servers(conn, prefix)} servers and their ports")
    for failure in failures:
        print(f"MISSED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
