"""Emulated GPUs of the sandbox's Docker-backed nodes: the "hardware" a GPU flavor describes.

A node whose flavor's extra specs say ``gpu:count`` = N > 0 (with ``gpu:vendor`` ``nvidia`` or unset, and
``gpu:model``, as the seeded ``bm.gpu.a100`` and ``bm.gpu.v100`` do; the toolkit's inventories read the same
keys to put such nodes in the ``gpu`` group) gets N emulated GPUs. The compute driver writes them into the node
before its first start as ``/etc/sandbox/gpus.tsv``, one line per GPU::

    # index<TAB>uuid<TAB>name<TAB>memory.total MiB<TAB>pci.bus_id
    0	GPU-1b7c...	NVIDIA A100-SXM4-80GB	81920	00000000:17:00.0

UUIDs are stable per node: derived from the server's UUID and the GPU's index, so a node that is built again
(the driver's reconciliation) has the same GPUs. This file is what the emulated driver's ``nvidia-smi`` (from the
sandbox's package repository, ``container_infra.sandbox.packages``) reads, as the real one asks the kernel module.

Imports nothing of Nova: the pure part of the driver, tested with plain pytest.
"""

from __future__ import annotations

import uuid

PATH = "/etc/sandbox/gpus.tsv"
NAMESPACE = uuid.UUID("6c1d3b0e-5a0f-4c55-9d8e-2f3a4b5c6d7e")
# What the real driver names each model, and its memory (MiB); other models get "NVIDIA <model>", 16 GiB.
MODELS = {
    "A100": ("NVIDIA A100-SXM4-80GB", 81920),
    "H100": ("NVIDIA H100 80GB HBM3", 81559),
    "V100": ("Tesla V100-SXM2-32GB", 32768),
    "T4": ("Tesla T4", 15360),
    "L40S": ("NVIDIA L40S", 46068),
}
MAX_GPUS = 16


class GpuSpecError(ValueError):
    """The flavor's GPU extra specs cannot describe emulated GPUs; the message says how to fix them."""


def gpu_count(extra_specs: dict | None) -> int:
    """How many NVIDIA GPUs the flavor's extra specs give a node (0: none, or another vendor's)."""
    specs = extra_specs or {}
    raw = specs.get("gpu:count")
    if raw in (None, ""):
        return 0
    vendor = str(specs.get("gpu:vendor", "nvidia")).strip().lower()
    try:
        count = int(str(raw).strip())
    except ValueError:
        raise GpuSpecError(f"the flavor's extra spec gpu:count={raw!r} is not a whole number; set it to the "
                           "number of GPUs (openstack flavor set --property gpu:count=2 FLAVOR)") from None
    if not 0 <= count <= MAX_GPUS:
        raise GpuSpecError(f"the flavor's extra spec gpu:count={count} is outside 0..{MAX_GPUS}; the sandbox "
                           "emulates at most that many GPUs per node")
    return count if vendor == "nvidia" else 0


def node_gpus(instance_uuid: str, extra_specs: dict | None) -> list[dict]:
    """The node's GPUs: index, uuid, name, memory_mib, pci_bus_id (empty for a flavor without GPUs)."""
    count = gpu_count(extra_specs)
    model = str((extra_specs or {}).get("gpu:model", "") or "A100").strip()
    name, memory = MODELS.get(model.upper(), (f"NVIDIA {model}", 16384))
    return [{"index": index,
             "uuid": f"GPU-{uuid.uuid5(NAMESPACE, f'{instance_uuid}/{index}')}",
             "name": name,
             "memory_mib": memory,
             "pci_bus_id": f"00000000:{0x17 + 0x10 * index:02X}:00.0"}
            for index in range(count)]


def render(gpus: list[dict]) -> str:
    """``/etc/sandbox/gpus.tsv`` for these GPUs."""
    lines = ["# Emulated GPUs of this sandbox node (written by the compute driver); nvidia-smi reads this file.",
             "# index\tuuid\tname\tmemory.total MiB\tpci.bus_id"]
    lines += [f"{g['index']}\t{g['uuid']}\t{g['name']}\t{g['memory_mib']}\t{g['pci_bus_id']}" for g in gpus]
    return "\n".join(lines) + "\n"


def parse(text: str) -> list[dict]:
    """The GPUs of a ``gpus.tsv`` text (the inverse of ``render``)."""
    out = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        index, gpu_uuid, name, memory, bus = line.split("\t")
        out.append({"index": int(index), "uuid": gpu_uuid, "name": name, "memory_mib": int(memory),
                    "pci_bus_id": bus})
    return out


def node_files(instance_uuid: str, extra_specs: dict | None) -> dict[str, str]:
    """{path in the node: text} the config drive carries for the node's GPUs (empty without GPUs)."""
    gpus = node_gpus(instance_uuid, extra_specs)
    return {PATH: render(gpus)} if gpus else {}
