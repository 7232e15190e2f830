"""The sandbox's L3 agent for floating IPs: TCP forwarders on the loopback range.

The external network ``public`` is 127.42.0.0/24, addresses of this machine (all of 127.0.0.0/8 is
local on Linux). Every second this process reads Neutron's database: for each floating IP that is
associated with a port, it listens on ``<floating IP>:22`` and ``:2376`` (sshd and a Swarm
manager's TLS API) and forwards each connection to the same port of the port's fixed IP *inside
the node's network namespace* (the node is the Docker container ``sandbox-node-<device id>``). No
route, NAT rule or bridge address is involved, so nothing can leave the machine; a floating IP of a
server on the fake compute host simply refuses connections. When the floating IP is disassociated
or deleted, its listeners and open connections close.

    python -m container_infra_sandbox.fipforward --config <sandbox dir>/etc/fipforward.json

The config holds ``database`` (host, port, user, password, name of Neutron's database), ``ports``
and ``poll_interval``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ipaddress
import json
import logging
import os
import socket

LOG = logging.getLogger("fipforward")
CLONE_NEWNET = 0x40000000
CONTAINER_PREFIX = "sandbox-node-"
#: The only addresses this forwarder listens on: this machine's loopback range, never a real interface.
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")

QUERY = (
    "SELECT f.floating_ip_address, f.fixed_ip_address, p.device_id FROM floatingips f "
    "JOIN ports p ON p.id = f.fixed_port_id WHERE f.fixed_port_id IS NOT NULL"
)

_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def connect_in_netns(pid: int, address: str, port: int, timeout: float = 5.0) -> socket.socket:
    """A TCP connection made from inside the network namespace of process ``pid`` (run in a thread)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        _setns(target)
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)
    try:
        sock.settimeout(timeout)
        sock.connect((address, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def on_loopback(address) -> bool:
    """Whether ``address`` is in 127.0.0.0/8 (anything else, a name included, is not)."""
    try:
        return ipaddress.ip_address(str(address)) in LOOPBACK
    except ValueError:
        return False


def desired_forwards(rows, ports) -> dict[tuple[str, int], tuple[str, str]]:
    """(floating IP, port) -> (device id, fixed IP) for every associated floating IP on loopback; one
    outside 127.0.0.0/8 (a public network given another range) is refused with a warning."""
    wanted = {}
    for floating_ip, fixed_ip, device_id in rows:
        if not floating_ip or not fixed_ip or not device_id:
            continue
        if not on_loopback(floating_ip):
            LOG.warning("not forwarding floating IP %s: it is outside 127.0.0.0/8, and the sandbox listens on "
                        "loopback only; give the public network a subnet in 127.0.0.0/8", floating_ip)
            continue
        for port in ports:
            wanted[(floating_ip, port)] = (device_id, fixed_ip)
    return wanted


class Forwarder:
    def __init__(self, config: dict):
        self.config = config
        self.ports = [int(p) for p in config.get("ports", [22, 2376])]
        self.servers: dict[tuple[str, int], tuple[tuple[str, str], asyncio.AbstractServer]] = {}
        self.connections: dict[tuple[str, int], set[asyncio.StreamWriter]] = {}
        self._docker = None

    def _rows(self):
        import pymysql

        db = self.config["database"]
        connection = pymysql.connect(host=db["host"], port=int(db["port"]), user=db["user"],
                                     password=db["password"], database=db["name"], connect_timeout=5)
        try:
            with connection.cursor() as cursor:
                cursor.execute(QUERY)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def _node_pid(self, device_id: str) -> int | None:
        import docker
        from docker import errors

        if self._docker is None:
            self._docker = docker.from_env(timeout=30)
        try:
            container = self._docker.containers.get(f"{CONTAINER_PREFIX}{device_id}")
        except errors.NotFound:
            return None
        return container.attrs["State"].get("Pid") or None

    async def _pipe(self, reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):  # closing twice, or a dead socket
                writer.close()

    def _handler(self, key):
        async def handle(reader, writer):
            target = self.servers.get(key)
            if target is None:
                writer.close()
                return
            (device_id, fixed_ip), _ = target
            loop = asyncio.get_running_loop()
            try:
                pid = await loop.run_in_executor(None, self._node_pid, device_id)
                if pid is None:
                    raise OSError(f"no running node for server {device_id}")
                sock = await loop.run_in_executor(None, connect_in_netns, pid, fixed_ip, key[1])
                node_reader, node_writer = await asyncio.open_connection(sock=sock)
            except Exception as error:  # one failed connection must not stop the rest
                LOG.info("%s:%s -> %s %s:%s refused: %s", *key, device_id, fixed_ip, key[1], error)
                writer.close()
                return
            live = self.connections.setdefault(key, set())
            live.update((writer, node_writer))
            await asyncio.gather(self._pipe(reader, node_writer), self._pipe(node_reader, writer))
            live.discard(writer)
            live.discard(node_writer)

        return handle

    async def sync(self) -> None:
        rows = await asyncio.get_running_loop().run_in_executor(None, self._rows)
        wanted = desired_forwards(rows, self.ports)
        for key in list(self.servers):
            if wanted.get(key) != self.servers[key][0]:
                target, server = self.servers.pop(key)
                server.close()
                for writer in self.connections.pop(key, set()):
                    writer.close()
                LOG.info("stopped forwarding %s:%s", *key)
        for key, target in wanted.items():
            if key in self.servers:
                continue
            if not on_loopback(key[0]):  # desired_forwards refuses them; never listen even if one slips by
                continue
            try:
                server = await asyncio.start_server(self._handler(key), key[0], key[1], reuse_address=True)
            except OSError as error:
                LOG.warning("cannot listen on %s:%s: %s", *key, error)
                continue
            self.servers[key] = (target, server)
            LOG.info("forwarding %s:%s to server %s (%s)", *key, *target)

    async def run(self) -> None:
        interval = float(self.config.get("poll_interval", 1.0))
        while True:
            try:
                await self.sync()
            except Exception:  # the database may be restarting: try again
                LOG.exception("sync failed")
            await asyncio.sleep(interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with open(args.config) as handle:
        config = json.load(handle)
    asyncio.run(Forwarder(config).run())


if __name__ == "__main__":
    main()
