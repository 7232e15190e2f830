"""Nova compute driver ``SandboxDockerDriver``: servers that are Docker containers.

Configured as ``compute_driver = container_infra_sandbox.SandboxDockerDriver`` on the sandbox's
second compute host (``sandbox-docker-1``, its own nova-compute process); the shim in ``nova/virt``
re-exports it next to ``SandboxFakeDriver``. Each server is one container of the node image
(``container-infra sandbox image build``): a Debian machine with sshd, python3, sudo and a Docker
engine, which Ansible reaches over SSH as it reaches bare metal.

* **spawn** creates the container ``sandbox-node-<instance uuid>`` (hostname = the server's
  hostname, labels ``org.container-infra.sandbox.*`` naming the instance and the compute host), no
  Docker network (``network_mode=none``), the capabilities Docker-in-Docker and network
  configuration need on this machine (all but SYS_RESOURCE, no seccomp or AppArmor profile;
  ``--privileged`` fails here). Before the first start it writes ``/etc/sandbox/node.sh``, the
  "config drive": the keypair's public key for the image's login user (Glance property
  ``os_admin_user``, else ``core``), and the sandbox registry's CA as
  ``/etc/docker/certs.d/<registry>/ca.crt`` (options ``registry`` and ``registry_ca_file``), so that
  the node's Docker engine pulls from the registry over TLS with no daemon option. Nodes get
  ``/dev/fuse`` (FUSE mounts: ceph-fuse, glusterfs). Each port then becomes an interface (see ``nodenet``); the
  primary one, ``eth0``, gets its fixed IPs and default route as cloud-init would configure them.
  The server turns ACTIVE once sshd listens in the node.
* **Flavor limits, scaled.** Bare-metal flavors describe 32-64-core, 128-512 GiB machines; the
  sandbox's reference machine has 2 cores and 24 GiB. A node gets ``vcpus / 32`` CPUs (at least
  0.25, at most the host's cores) and ``memory_mb / 128`` MiB of memory (at least 512 MiB, at most
  4 GiB): bm.standard -> 1 CPU, 1 GiB; bm.large -> 2 CPUs, 2 GiB; bm.gpu.a100 -> 2 CPUs, 4 GiB.
  These are ceilings (cgroup limits), not reservations, so ten nodes fit on the machine.
* **Emulated GPUs.** A node whose flavor's extra specs say ``gpu:count`` = N (``gpu:vendor`` nvidia or unset,
  ``gpu:model``) gets N GPUs with stable per-node UUIDs, written before the first start as
  ``/etc/sandbox/gpus.tsv`` (see ``gpus``) and counted in the label ``org.container-infra.sandbox.gpus``; the
  emulated driver's ``nvidia-smi`` from the sandbox's package repository reads it. Option
  ``[sandbox_docker] emulate_gpus`` (true) turns it off.
* **dockerd in the node** runs when the server's metadata has ``sandbox_dockerd=true`` or the
  option ``[sandbox_docker] dockerd`` is true (swarm-mode clusters ask for it).
* **reboot, power off/on** restart, stop and start the container; a start is a new network
  namespace, so the ports are plugged again. **destroy** removes the container (and its anonymous
  volumes), the host ends of its veths and bridges nobody uses any more.
* **attach/detach_interface** add an unconfigured ``ethN`` with the port's MAC and MTU (a
  hot-plugged NIC) or remove the interface with that MAC.
* **get_info / list_instances** ask Docker, so Nova's power-state sync sees a node that died.
* **Reconciliation.** When nova-compute starts it plugs the VIFs of every server it owns: a
  server whose container is gone is built again from its image and keypair; a stopped container of
  a running server is started again; a running node that lacks a port's interface gets it plugged
  again; a node that cannot be brought back marks its server ERROR (the others still start). While
  nova-compute runs, its power-state sync marks a server whose container died SHUTOFF. Containers
  of servers Nova deleted are reaped by Nova's own ``running_deleted_instance_action = reap``
  (configured by the sandbox), and ``sandbox up`` removes those of servers Nova no longer has.
* **Inventory**: that of ``SandboxFakeDriver`` (bare-metal ``CUSTOM_BAREMETAL_*`` classes).
"""

import io
import os
import re
import shlex
import tarfile
import threading
import time

import docker
from docker import errors as docker_errors
from nova import exception
from nova.compute import power_state
from nova.virt import fake, hardware
from oslo_config import cfg
from oslo_log import log as logging

from container_infra_sandbox import gpus, nodenet
from container_infra_sandbox.nova_fake import SandboxFakeDriver, fail_attach_reason

__all__ = ["SandboxDockerDriver"]

LOG = logging.getLogger(__name__)
CONF = cfg.CONF

OPTS = [
    cfg.StrOpt("image", default="container-infra/sandbox-node:latest",
               help="Docker image of the nodes (built by `container-infra sandbox image build`)."),
    cfg.BoolOpt("dockerd", default=False, help="Run a Docker engine in every node."),
    cfg.IntOpt("boot_timeout", default=60, help="Seconds to wait for sshd in a new node."),
    cfg.FloatOpt("cpu_divisor", default=32.0, help="Flavor vCPUs per CPU of the host given to a node."),
    cfg.FloatOpt("memory_divisor", default=128.0, help="Flavor MiB per MiB of the host given to a node."),
    cfg.StrOpt("registry", default="",
               help="The sandbox's image registry as host:port; nodes trust registry_ca_file for it."),
    cfg.StrOpt("registry_ca_file", default="",
               help="CA certificate of the registry, written into every node's /etc/docker/certs.d/<registry>/."),
    cfg.BoolOpt("emulate_gpus", default=True,
                help="Give nodes of flavors with extra spec gpu:count=N N emulated GPUs (/etc/sandbox/gpus.tsv)."),
    cfg.StrOpt("require_zone", default="",
               help="When set, refuse (so that Nova reschedules elsewhere) builds whose request named no "
                    "availability zone: servers that do not ask for this host's zone stay on the others."),
]
CONF.register_opts(OPTS, group="sandbox_docker")

LABEL = "org.container-infra.sandbox"
LABEL_INSTANCE = f"{LABEL}.instance"
LABEL_NAME = f"{LABEL}.instance-name"
LABEL_HOST = f"{LABEL}.compute-host"
LABEL_SERVER = f"{LABEL}.server-name"
LABEL_GPUS = f"{LABEL}.gpus"
DOCKERD_KEY = "sandbox_dockerd"
_TRUE_WORDS = ("1", "true", "yes", "on")


def container_name(instance_uuid):
    return f"sandbox-node-{instance_uuid}"


def scaled_limits(vcpus, memory_mb, host_cpus, cpu_divisor=32.0, memory_divisor=128.0):
    """(CPUs, MiB) a node of this flavor gets on this machine; see the module's docstring."""
    cpus = min(max(vcpus / cpu_divisor, 0.25), float(host_cpus))
    memory = int(min(max(memory_mb / memory_divisor, 512), 4096))
    return round(cpus, 2), memory


#: A login name as useradd takes it; the image's os_admin_user is image data and this script runs as root.
LOGIN_NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")


def node_script(user, public_key):
    """The "config drive" the node's init runs (as root) before sshd: the login user's authorized key.

    The user comes from the image's ``os_admin_user``: one that is not a login name fails the boot with a
    sentence, and every value goes into the script quoted."""
    if not isinstance(user, str) or not LOGIN_NAME.match(user):
        raise exception.InstanceDeployFailure(
            reason=f"the image's os_admin_user {user!r} is not a login name (a lowercase letter or '_', then up "
                   "to 31 lowercase letters, digits, '_', '.' or '-'); fix the image property "
                   "(openstack image set --property os_admin_user=core IMAGE)")
    lines = [
        "# Written by the sandbox's compute driver before the node's first start.",
        'grep -qw "$(hostname)" /etc/hosts || echo "127.0.1.1 $(hostname)" >> /etc/hosts',
    ]
    if public_key:
        key = shlex.quote(public_key.strip())
        ssh_dir = shlex.quote(f"/home/{user}/.ssh")
        keys = shlex.quote(f"/home/{user}/.ssh/authorized_keys")
        owner = shlex.quote(f"{user}:{user}")
        lines += [
            f"install -d -m 0700 -o {shlex.quote(user)} -g {shlex.quote(user)} {ssh_dir}",
            f"printf '%s\\n' {key} > {keys}",
            f"chown {owner} {keys}",
            f"chmod 0600 {keys}",
        ]
    return "\n".join(lines) + "\n"


def registry_ca_files(registry, ca_file):
    """The node's Docker trust for the sandbox's registry: {path in the node: CA text} (empty when unset)."""
    if not registry or not ca_file:
        return {}
    try:
        with open(ca_file) as handle:
            ca = handle.read()
    except OSError as error:
        raise exception.InstanceDeployFailure(
            reason=f"the registry's CA {ca_file} is missing ({error}); run `container-infra sandbox up`") from error
    return {f"/etc/docker/certs.d/{registry}/ca.crt": ca}


def node_devices(exists=os.path.exists):
    """Host devices a node gets: /dev/fuse for FUSE mounts (ceph-fuse, glusterfs), where the host has it."""
    return ["/dev/fuse:/dev/fuse:rwm"] if exists("/dev/fuse") else []


def gpu_files(instance):
    """The node's emulated GPUs (``gpus.PATH``) as its flavor's extra specs say; none when emulation is off."""
    if not CONF.sandbox_docker.emulate_gpus:
        return {}
    try:
        return gpus.node_files(instance.uuid, dict(instance.flavor.extra_specs or {}))
    except gpus.GpuSpecError as error:
        raise exception.InstanceDeployFailure(reason=str(error)) from error


def _tar_of(files):
    """A tar of {absolute path: text} for put_archive at /, with each file's directories (0755)."""
    buffer = io.BytesIO()
    directories = set()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, text in files.items():
            parts = path.strip("/").split("/")[:-1]
            # Every directory below the top one (etc): Docker would make missing ones, but not say their mode.
            for depth in range(2, len(parts) + 1):
                name = "/".join(parts[:depth])
                if name not in directories:
                    directories.add(name)
                    directory = tarfile.TarInfo(name)
                    directory.type, directory.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(directory)
            data = text.encode()
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class SandboxDockerDriver(SandboxFakeDriver):
    """Servers as Docker containers, ports as veths on a bridge per network."""

    capabilities = dict(SandboxFakeDriver.capabilities, supports_evacuate=False)  # noqa: RUF012
    # Smaller than the fake host's: Nova's RAM, CPU and disk weighers then send servers that name no
    # availability zone to the fake host; the bare-metal classes are what placement schedules on.
    vcpus = 256
    memory_mb = 1024 * 1024
    local_gb = 10 * 1024

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi, read_only=read_only)
        self._docker = None
        self._net_lock = threading.Lock()

    @property
    def docker(self):
        if self._docker is None:
            self._docker = docker.from_env(timeout=120)
        return self._docker

    def init_host(self, host):
        super().init_host(host)
        nodenet.ensure_iptables_rule()

    # --- containers ----------------------------------------------------------------------------

    def _container(self, instance_uuid):
        try:
            return self.docker.containers.get(container_name(instance_uuid))
        except docker_errors.NotFound:
            return None

    def _pid(self, container):
        container.reload()
        return container.attrs["State"]["Pid"] or None

    def _dockerd_wanted(self, instance):
        value = (instance.metadata or {}).get(DOCKERD_KEY, "")
        return CONF.sandbox_docker.dockerd or value.strip().lower() in _TRUE_WORDS

    def _login_user(self, image_meta):
        properties = getattr(image_meta, "properties", None)
        user = None
        if properties is not None and "os_admin_user" in properties:
            user = properties.os_admin_user
        return user or "core"

    def _create(self, instance, image_meta):
        flavor = instance.flavor
        cpus, memory = scaled_limits(flavor.vcpus, flavor.memory_mb, os.cpu_count() or 1,
                                     CONF.sandbox_docker.cpu_divisor, CONF.sandbox_docker.memory_divisor)
        try:
            self.docker.images.get(CONF.sandbox_docker.image)
        except docker_errors.ImageNotFound as error:
            raise exception.InstanceDeployFailure(
                reason=f"node image {CONF.sandbox_docker.image} is missing; run "
                       "`container-infra sandbox image build`") from error
        # The "config drive": the login user's key, and the registry's CA for the node's Docker engine.
        files = {"/etc/sandbox/node.sh": node_script(self._login_user(image_meta), instance.key_data)}
        files.update(registry_ca_files(CONF.sandbox_docker.registry, CONF.sandbox_docker.registry_ca_file))
        files.update(gpu_files(instance))
        created = time.monotonic()
        old = self._container(instance.uuid)
        if old is not None:
            old.remove(force=True, v=True)
        container = self.docker.containers.create(
            CONF.sandbox_docker.image,
            name=container_name(instance.uuid),
            hostname=(instance.hostname or instance.display_name or instance.uuid)[:63],
            labels={
                LABEL_INSTANCE: instance.uuid,
                LABEL_NAME: instance.name,
                LABEL_HOST: CONF.host,
                LABEL_SERVER: instance.display_name or "",
                LABEL_GPUS: str(len(gpus.parse(files.get(gpus.PATH, "")))),
            },
            environment={"SANDBOX_DOCKERD": "1" if self._dockerd_wanted(instance) else "0"},
            network_mode="none",
            cap_add=["ALL"],
            cap_drop=["SYS_RESOURCE"],
            security_opt=["seccomp=unconfined", "apparmor=unconfined"],
            devices=node_devices(),
            nano_cpus=int(cpus * 1e9),
            mem_limit=f"{memory}m",
            # dockerd in the node keeps its images off the overlay file system of the node itself.
            mounts=[docker.types.Mount(target="/var/lib/docker", source=None, type="volume")],
            tmpfs={"/run": "exec", "/tmp": "exec"},
            detach=True,
        )
        container.put_archive("/", _tar_of(files))
        LOG.info("Created node container %s (%s CPUs, %s MiB) in %.1f s", container.name, cpus, memory,
                 time.monotonic() - created, instance=instance)
        return container

    def _start(self, instance, container, network_info):
        started = time.monotonic()
        container.start()
        pid = self._pid(container)
        running = time.monotonic()
        self._plug_all(instance, pid, network_info)
        plugged = time.monotonic()
        self._wait_for_sshd(instance, container)
        # Plugging includes waiting for Neutron: Nova allocates the ports while the node starts.
        LOG.info("Node up: container started in %.1f s, %d NIC(s) plugged in %.1f s, sshd after %.1f s more",
                 running - started, len(network_info or []), plugged - running, time.monotonic() - plugged,
                 instance=instance)

    def _plug_all(self, instance, pid, network_info):
        with self._net_lock:
            for index, vif in enumerate(network_info or []):
                nodenet.plug(pid, vif, f"eth{index}", configure=index == 0)
                self._interfaces[vif["id"]] = vif

    def _wait_for_sshd(self, instance, container):
        deadline = time.monotonic() + CONF.sandbox_docker.boot_timeout
        while time.monotonic() < deadline:
            pid = self._pid(container)
            if pid is None:
                break
            if nodenet.listening_on(pid, 22):
                return
            time.sleep(0.1)
        logs = container.logs(tail=20).decode(errors="replace")
        raise exception.InstanceDeployFailure(reason=f"sshd did not start in the node: {logs}")

    def _track(self, instance, state):
        if instance.uuid not in self.instances:
            flavor = instance.flavor
            self.resources.claim(vcpus=flavor.vcpus, mem=flavor.memory_mb, disk=flavor.root_gb)
        self.instances[instance.uuid] = fake.FakeInstance(instance.name, state, instance.uuid)

    # --- the driver interface ------------------------------------------------------------------

    def spawn(self, context, instance, image_meta, injected_files, admin_password, allocations,
              network_info=None, block_device_info=None, power_on=True, accel_info=None):
        self._check_zone_requested(context, instance)
        container = self._create(instance, image_meta)
        try:
            if power_on:
                self._start(instance, container, network_info)
        except Exception:
            container.remove(force=True, v=True)
            raise
        self._track(instance, power_state.RUNNING if power_on else power_state.SHUTDOWN)

    def _check_zone_requested(self, context, instance):
        zone = CONF.sandbox_docker.require_zone
        if not zone:
            return
        from nova import objects

        try:
            requested = objects.RequestSpec.get_by_instance_uuid(context, instance.uuid).availability_zone
        except exception.RequestSpecNotFound:
            requested = None
        if requested != zone:
            # Any spawn failure makes nova-compute reschedule to an alternate host (the fake one).
            raise exception.ComputeResourcesUnavailable(
                reason=f"sandbox-docker: only servers that ask for availability zone {zone!r} run here")

    def destroy(self, context, instance, network_info, block_device_info=None, destroy_disks=True,
                destroy_secrets=True):
        container = self._container(instance.uuid)
        if container is not None:
            container.remove(force=True, v=True)
        with self._net_lock:
            for vif in network_info or []:
                nodenet.unplug(None, vif)
                self._interfaces.pop(vif["id"], None)
                nodenet.remove_bridge_if_unused(vif["network"]["id"])
        if instance.uuid in self.instances:
            super().destroy(context, instance, network_info, block_device_info, destroy_disks,
                            destroy_secrets)

    def reboot(self, context, instance, network_info, reboot_type, block_device_info=None,
               bad_volumes_callback=None, accel_info=None, share_info=None):
        container = self._container(instance.uuid)
        if container is None:
            if reboot_type.lower() != "hard":
                raise exception.InstanceNotFound(instance_id=instance.uuid)
            container = self._create(instance, instance.image_meta)
        else:
            container.stop(timeout=10)
        self._start(instance, container, network_info)
        self._track(instance, power_state.RUNNING)

    def power_off(self, instance, timeout=0, retry_interval=0):
        container = self._container(instance.uuid)
        if container is None:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        container.stop(timeout=timeout or 10)
        self._track(instance, power_state.SHUTDOWN)

    def power_on(self, context, instance, network_info, block_device_info=None, accel_info=None,
                 share_info=None):
        container = self._container(instance.uuid)
        if container is None:
            # As libvirt's power_on (a hard reboot) defines the guest again: build the node anew.
            container = self._create(instance, instance.image_meta)
        container.reload()
        if container.status != "running":
            self._start(instance, container, network_info)
        self._track(instance, power_state.RUNNING)

    def attach_interface(self, context, instance, image_meta, vif):
        reason = fail_attach_reason(instance)
        if reason:
            LOG.warning("Refusing to attach port %(port)s: %(reason)s", {"port": vif["id"], "reason": reason},
                        instance=instance)
            raise exception.InterfaceAttachFailed(instance_uuid=instance.uuid)
        container = self._container(instance.uuid)
        if container is None:
            raise exception.InterfaceAttachFailed(instance_uuid=instance.uuid)
        pid = self._pid(container)
        with self._net_lock:
            if pid:
                names = set(nodenet.node_links(pid).values())
                index = next(i for i in range(1, 1000) if f"eth{i}" not in names)
                try:
                    nodenet.plug(pid, vif, f"eth{index}", configure=False)
                except Exception as error:
                    LOG.exception("Could not plug port %s", vif["id"], instance=instance)
                    raise exception.InterfaceAttachFailed(instance_uuid=instance.uuid) from error
            self._interfaces[vif["id"]] = vif

    def detach_interface(self, context, instance, vif):
        container = self._container(instance.uuid)
        pid = self._pid(container) if container is not None else None
        with self._net_lock:
            nodenet.unplug(pid, vif)
            self._interfaces.pop(vif["id"], None)

    def get_info(self, instance, use_cache=True):
        container = self._container(instance.uuid)
        if container is None:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        state = power_state.RUNNING if container.status == "running" else power_state.SHUTDOWN
        return hardware.InstanceInfo(state=state)

    def _own_containers(self):
        return self.docker.containers.list(all=True, filters={"label": f"{LABEL_HOST}={CONF.host}"})

    def list_instances(self):
        return [c.labels.get(LABEL_NAME, c.name) for c in self._own_containers()]

    def list_instance_uuids(self):
        return [c.labels[LABEL_INSTANCE] for c in self._own_containers() if LABEL_INSTANCE in c.labels]

    def instance_exists(self, instance):
        return self._container(instance.uuid) is not None

    def plug_vifs(self, instance, network_info):
        # nova-compute's start-up (_init_instance): reconcile the server with its container. Nova
        # does not guard this call, so one node that cannot be rebuilt would stop the whole host
        # from starting: such a server is marked ERROR instead (Nova's answer to a plug failure).
        try:
            self._reconcile(instance, network_info or [])
        except Exception as error:
            LOG.exception("Could not bring the node back", instance=instance)
            raise exception.VirtualInterfacePlugException(
                f"sandbox node of {instance.uuid} could not be brought back: {error}") from error

    def _reconcile(self, instance, network_info):
        container = self._container(instance.uuid)
        wanted_running = instance.power_state == power_state.RUNNING or instance.vm_state == "active"
        if container is None:
            if instance.vm_state not in ("active", "stopped"):
                return
            LOG.warning("Node container is gone; building it again", instance=instance)
            container = self._create(instance, instance.image_meta)
            if instance.vm_state == "active":
                self._start(instance, container, network_info)
        elif container.status != "running":
            if wanted_running:
                LOG.warning("Node container had stopped; starting it again", instance=instance)
                self._start(instance, container, network_info)
        else:
            self._plug_missing(instance, self._pid(container), network_info)
        container.reload()
        running = container.status == "running"
        self._track(instance, power_state.RUNNING if running else power_state.SHUTDOWN)
        for vif in network_info:
            self._interfaces[vif["id"]] = vif

    def _plug_missing(self, instance, pid, network_info):
        """Plug the ports a running node lacks: eth0 configured as at boot, later ones as hot-plugged."""
        with self._net_lock:
            links = nodenet.node_links(pid)
            names = set(links.values())
            for index, vif in enumerate(network_info):
                if vif["address"].lower() in links:
                    continue
                primary = index == 0 and "eth0" not in names
                name = "eth0" if primary else next(f"eth{i}" for i in range(1, 1000) if f"eth{i}" not in names)
                LOG.warning("Node lacks the interface of port %s; plugging it as %s", vif["id"], name,
                            instance=instance)
                nodenet.plug(pid, vif, name, configure=primary)
                names.add(name)

    def unplug_vifs(self, instance, network_info):
        container = self._container(instance.uuid)
        pid = self._pid(container) if container is not None else None
        with self._net_lock:
            for vif in network_info or []:
                nodenet.unplug(pid, vif)
