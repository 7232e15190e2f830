"""The sandbox's emulated NVIDIA tools (container_infra/sandbox/gpu_tools): nvidia-smi answering from a node's
GPU description, and the container runtime granting each container its GPUs before handing over to runc."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from importlib import resources
from pathlib import Path

import pytest

TOOLS = Path(str(resources.files("container_infra.sandbox").joinpath("gpu_tools")))
GPUS = ("# index\tuuid\tname\tmemory.total MiB\tpci.bus_id\n"
        "0\tGPU-aaaa\tNVIDIA A100-SXM4-80GB\t81920\t00000000:17:00.0\n"
        "1\tGPU-bbbb\tNVIDIA A100-SXM4-80GB\t81920\t00000000:27:00.0\n")


def smi(tmp_path: Path, *args: str, gpus: str | None = GPUS) -> subprocess.CompletedProcess:
    path = tmp_path / ("gpus.tsv" if gpus is not None else "no-driver.tsv")
    if gpus is not None:
        path.write_text(gpus)
    return subprocess.run(["sh", str(TOOLS / "nvidia-smi"), *args], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "NVIDIA_SMI_GPUS_FILE": str(path)})


def test_nvidia_smi_lists_and_queries_the_nodes_gpus(tmp_path):
    assert smi(tmp_path, "-L").stdout == ("GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-aaaa)\n"
                                          "GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-bbbb)\n")
    out = smi(tmp_path, "--query-gpu=uuid,name,index,memory.total", "--format=csv")
    assert out.stdout.splitlines() == ["uuid, name, index, memory.total [MiB]",
                                       "GPU-aaaa, NVIDIA A100-SXM4-80GB, 0, 81920 MiB",
                                       "GPU-bbbb, NVIDIA A100-SXM4-80GB, 1, 81920 MiB"]
    out = smi(tmp_path, "--query-gpu=uuid,memory.total", "--format=csv,noheader,nounits")
    assert out.stdout == "GPU-aaaa, 81920\nGPU-bbbb, 81920\n"
    assert smi(tmp_path, "-i", "GPU-bbbb", "--query-gpu=index,count", "--format=csv,noheader").stdout == "1, 2\n"
    assert "Driver Version: 550.54.15" in smi(tmp_path).stdout


def test_nvidia_smi_fails_as_the_real_one(tmp_path):
    bad = smi(tmp_path, "--query-gpu=uuid,colour", "--format=csv")
    assert (bad.returncode, bad.stderr) == (2, 'Field "colour" is not a valid field to query.\n')
    assert smi(tmp_path, "--query-gpu=uuid").returncode == 2  # no --format
    none = smi(tmp_path, "-L", gpus="# no GPU granted\n")
    assert (none.returncode, none.stdout) == (6, "No devices were found\n")
    assert smi(tmp_path, "-L", "-i", "7").returncode == 6
    driverless = smi(tmp_path, "-L", gpus=None)
    assert driverless.returncode == 9 and "couldn't communicate with the NVIDIA driver" in driverless.stdout


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("nvidia_container_runtime", TOOLS / "nvidia_container_runtime.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "gpus.tsv").write_text(GPUS)
    (tmp_path / "nvidia-smi").write_text("#!/bin/sh\n")
    monkeypatch.setattr(module, "GPUS", str(tmp_path / "gpus.tsv"))
    monkeypatch.setattr(module, "SMI", str(tmp_path / "nvidia-smi"))
    return module


def bundle(tmp_path: Path, env: list[str]) -> Path:
    path = tmp_path / "bundle"
    path.mkdir(exist_ok=True)
    (path / "config.json").write_text(json.dumps({"process": {"env": env}, "mounts": [{"destination": "/proc"}]}))
    return path


def granted(path: Path) -> list[str]:
    spec = json.loads((path / "config.json").read_text())
    mounts = {m["destination"]: m for m in spec["mounts"]}
    tsv = [m for m in mounts.values() if m["destination"].endswith("gpus.tsv")]
    if not tsv:
        return []
    return [line.split("\t")[1] for line in Path(tsv[0]["source"]).read_text().splitlines()
            if not line.startswith("#")]


@pytest.mark.parametrize(("env", "uuids"), [
    (["NVIDIA_VISIBLE_DEVICES=all"], ["GPU-aaaa", "GPU-bbbb"]),
    (["NVIDIA_VISIBLE_DEVICES=1"], ["GPU-bbbb"]),
    (["NVIDIA_VISIBLE_DEVICES=GPU-bbbb,0"], ["GPU-bbbb", "GPU-aaaa"]),
    (["NVIDIA_VISIBLE_DEVICES=none"], []),
    # Swarm's generic resource wins over the image's NVIDIA_VISIBLE_DEVICES=all (as the CUDA images set it).
    (["NVIDIA_VISIBLE_DEVICES=all", "DOCKER_RESOURCE_GPU=GPU-aaaa"], ["GPU-aaaa"]),
])
def test_the_runtime_grants_the_requested_gpus_and_mounts_the_tool(runtime, tmp_path, env, uuids):
    path = bundle(tmp_path, env)
    runtime.inject(str(path), {"swarm-resource": ["DOCKER_RESOURCE_GPU"], "runtimes": ["runc"]})
    spec = json.loads((path / "config.json").read_text())
    destinations = [m["destination"] for m in spec["mounts"]]
    assert destinations == ["/proc", runtime.GPUS, runtime.SMI]
    assert all("ro" in m["options"] for m in spec["mounts"][1:])
    assert granted(path) == uuids


def test_a_container_that_asks_for_no_gpu_is_left_as_runc_runs_it(runtime, tmp_path):
    for env in ([], ["NVIDIA_VISIBLE_DEVICES=void"], ["DOCKER_RESOURCE_GPU=GPU-aaaa"]):
        path = bundle(tmp_path, env)
        before = (path / "config.json").read_text()
        # Without swarm-resource configured, Swarm's variable means nothing to the runtime (the role sets it).
        runtime.inject(str(path), {"swarm-resource": [], "runtimes": ["runc"]})
        assert (path / "config.json").read_text() == before


def test_an_unknown_gpu_fails_the_create(runtime, tmp_path):
    with pytest.raises(ValueError, match="device error: GPU-zzzz: unknown device"):
        runtime.inject(str(bundle(tmp_path, ["NVIDIA_VISIBLE_DEVICES=GPU-zzzz"])), runtime.read_config("/none"))


def test_the_config_and_runc_arguments_are_read_as_the_real_runtime_reads_them(runtime, tmp_path):
    shipped = runtime.read_config(str(TOOLS / "config.toml"))
    assert shipped == {"swarm-resource": [], "runtimes": ["docker-runc", "runc", "crun"]}
    config = tmp_path / "config.toml"
    config.write_text((TOOLS / "config.toml").read_text().replace(
        '#swarm-resource = "DOCKER_RESOURCE_GPU"', 'swarm-resource = "DOCKER_RESOURCE_GPU"'))
    assert runtime.read_config(str(config))["swarm-resource"] == ["DOCKER_RESOURCE_GPU"]
    args = ["--root", "/run/runc", "--log", "/x.log", "--systemd-cgroup", "create", "--bundle", "/b", "id1"]
    assert runtime.subcommand(args) == (5, "create")
    assert runtime.bundle_of(args, 6) == "/b"


def test_the_runtime_execs_runc_with_the_same_arguments(tmp_path):
    """As dockerd calls it: a create edits the bundle, then runc gets every argument unchanged."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "runc").write_text('#!/bin/sh\necho "runc $*"\ngrep -c gpus.tsv "$5/config.json"\n')
    (fake / "runc").chmod(0o755)
    (tmp_path / "config.toml").write_text('swarm-resource = "DOCKER_RESOURCE_GPU"\nruntimes = ["runc"]\n')
    script = (TOOLS / "nvidia_container_runtime.py").read_text()
    script = script.replace('GPUS = "/etc/sandbox/gpus.tsv"', f'GPUS = "{tmp_path}/gpus.tsv"')
    script = script.replace('SMI = "/usr/bin/nvidia-smi"', f'SMI = "{fake}/runc"')
    (tmp_path / "gpus.tsv").write_text(GPUS)
    (tmp_path / "runtime").write_text(script)
    path = bundle(tmp_path, ["DOCKER_RESOURCE_GPU=GPU-bbbb"])
    env = {"PATH": f"{fake}:{os.environ['PATH']}", "NVIDIA_CONTAINER_RUNTIME_CONFIG": str(tmp_path / "config.toml")}
    done = subprocess.run(["python3", str(tmp_path / "runtime"), "--root", "/r", "create", "--bundle", str(path),
                           "c1"], capture_output=True, text=True, env=env)
    assert done.stdout.splitlines() == [f"runc --root /r create --bundle {path} c1", "1"], done.stderr
    assert granted(path) == ["GPU-bbbb"]
    spec = json.loads((path / "config.json").read_text())
    (tsv,) = [m["source"] for m in spec["mounts"] if m["destination"] == f"{tmp_path}/gpus.tsv"]
    smi_in_container = subprocess.run(["sh", str(TOOLS / "nvidia-smi"), "-L"], capture_output=True, text=True,
                                      env={"PATH": os.environ["PATH"], "NVIDIA_SMI_GPUS_FILE": tsv})
    # Numbered from 0, as the real driver shows a container only its devices.
    assert smi_in_container.stdout == "GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-bbbb)\n"
    refused = subprocess.run(["python3", str(tmp_path / "runtime"), "--log", str(tmp_path / "log.json"), "create",
                              "--bundle",
                              str(bundle(tmp_path, ["NVIDIA_VISIBLE_DEVICES=9"])), "c2"],
                             capture_output=True, text=True, env=env)
    assert refused.returncode == 1 and "9: unknown device" in refused.stderr and refused.stdout == ""
    # dockerd reports what runc's --log file says.
    assert json.loads((tmp_path / "log.json").read_text())["msg"].endswith("device error: 9: unknown device")
