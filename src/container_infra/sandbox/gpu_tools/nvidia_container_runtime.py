#!/usr/bin/python3
"""nvidia-container-runtime of the container-infra sandbox's emulated NVIDIA container toolkit.

An OCI runtime wrapper, as the real one: every call goes to runc (the first of the config's ``runtimes`` found
on PATH) with the same arguments; on ``create`` it first edits the bundle's config.json so that the container
gets the GPUs it was granted and the driver's tool:

* the GPUs: the value of the first environment variable named by ``swarm-resource`` in
  /etc/nvidia-container-runtime/config.toml that the container has (Swarm's ``DOCKER_RESOURCE_<KIND>``), else
  ``NVIDIA_VISIBLE_DEVICES``: ``all``, ``none``, or indices / UUIDs separated by commas; unset, empty or
  ``void``: the container is left as runc would run it;
* the grant: the node's description of those GPUs (``/etc/sandbox/gpus.tsv``, filtered, numbered from 0) and the node's
  ``nvidia-smi``, bind-mounted read-only at the same paths, so the tool in the container answers for those
  GPUs only (the real runtime mounts device nodes and the driver's libraries and tools).

A GPU the node does not have fails the create with the real runtime's sentence.
"""

import json
import os
import re
import shutil
import sys

CONFIG = os.environ.get("NVIDIA_CONTAINER_RUNTIME_CONFIG", "/etc/nvidia-container-runtime/config.toml")
GPUS = "/etc/sandbox/gpus.tsv"
SMI = "/usr/bin/nvidia-smi"
# runc's global options that take a value (the subcommand is the first word that is no option or value).
VALUE_OPTIONS = {"--root", "--log", "--log-format", "--criu", "--rootless"}


def read_config(path=CONFIG):
    """The config.toml keys this runtime uses: swarm-resource (a list of names) and runtimes."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        text = ""
    config = {"swarm-resource": [], "runtimes": ["docker-runc", "runc", "crun"]}
    match = re.search(r'^\s*swarm-resource\s*=\s*"([^"]*)"', text, re.M)
    if match:
        config["swarm-resource"] = [name.strip() for name in match.group(1).split(",") if name.strip()]
    match = re.search(r"^\s*runtimes\s*=\s*\[([^\]]*)\]", text, re.M)
    if match:
        config["runtimes"] = re.findall(r'"([^"]+)"', match.group(1))
    return config


def subcommand(args):
    """(index of the subcommand, its name) in runc's arguments."""
    skip = False
    for index, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg.startswith("-"):
            skip = arg in VALUE_OPTIONS
            continue
        return index, arg
    return None, None


def bundle_of(args, start):
    for index in range(start, len(args)):
        arg = args[index]
        if arg in ("--bundle", "-b") and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--bundle="):
            return arg.split("=", 1)[1]
    return os.getcwd()


def requested(env, swarm_resource):
    """The container's GPU request: None (no injection), or the raw value (all, none, ids)."""
    variables = dict(item.split("=", 1) for item in env if "=" in item)
    for name in swarm_resource:
        if variables.get(name):
            return variables[name]
    value = variables.get("NVIDIA_VISIBLE_DEVICES", "")
    return None if value in ("", "void") else value


def parse_gpus(text):
    return [line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")]


def select(gpus, value):
    """The lines of ``gpus`` granted by ``value``; ValueError names a device the node lacks."""
    if value == "all":
        return gpus
    if value == "none":
        return []
    chosen = []
    for wanted in (part.strip() for part in value.split(",") if part.strip()):
        match = [gpu for gpu in gpus if wanted in (gpu[0], gpu[1])]
        if not match:
            raise ValueError(f"nvidia-container-cli: device error: {wanted}: unknown device")
        if match[0] not in chosen:
            chosen.append(match[0])
    return chosen


def inject(bundle, config):
    path = os.path.join(bundle, "config.json")
    with open(path, encoding="utf-8") as handle:
        spec = json.load(handle)
    value = requested(spec.get("process", {}).get("env", []), config["swarm-resource"])
    if value is None:
        return
    try:
        with open(GPUS, encoding="utf-8") as handle:
            gpus = parse_gpus(handle.read())
    except FileNotFoundError:
        raise ValueError("nvidia-container-cli: initialization error: nvml error: driver not loaded") from None
    if not os.path.exists(SMI):
        raise ValueError(f"nvidia-container-cli: initialization error: {SMI} is missing (install the driver)")
    chosen = select(gpus, value)
    granted = os.path.join(bundle, "nvidia-gpus.tsv")
    with open(granted, "w", encoding="utf-8") as handle:
        handle.write("# GPUs granted to this container by nvidia-container-runtime\n")
        # Numbered from 0 in the container, as the real driver enumerates only the devices it sees.
        handle.writelines("\t".join([str(index), *gpu[1:]]) + "\n" for index, gpu in enumerate(chosen))
    mounts = [m for m in spec.get("mounts", []) if m.get("destination") not in (GPUS, SMI)]
    mounts += [{"destination": GPUS, "type": "bind", "source": granted, "options": ["rbind", "ro", "nosuid"]},
               {"destination": SMI, "type": "bind", "source": SMI, "options": ["rbind", "ro", "nosuid"]}]
    spec["mounts"] = mounts
    temp = path + ".nvidia"
    with open(temp, "w", encoding="utf-8") as handle:
        json.dump(spec, handle)
    os.replace(temp, path)


def log_error(args, message):
    """The error where the caller reads it: stderr, and runc's ``--log`` file as JSON (dockerd shows that)."""
    print(f"nvidia-container-runtime: {message}", file=sys.stderr)
    for index, arg in enumerate(args):
        path = args[index + 1] if arg == "--log" and index + 1 < len(args) else (
            arg.split("=", 1)[1] if arg.startswith("--log=") else None)
        if path:
            try:
                with open(path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"level": "error", "msg": message}) + "\n")
            except OSError:
                pass
            return


def main(argv):
    args = argv[1:]
    config = read_config()
    runc = next((shutil.which(name) for name in config["runtimes"] if shutil.which(name)), None)
    if runc is None:
        print(f"nvidia-container-runtime: none of the runtimes {config['runtimes']} is on PATH", file=sys.stderr)
        return 1
    index, command = subcommand(args)
    if command == "create":
        try:
            inject(bundle_of(args, index + 1), config)
        except (OSError, ValueError) as error:
            log_error(args, str(error))
            return 1
    os.execv(runc, [runc, *args])  # noqa: S606 (an OCI runtime wrapper hands over to runc)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
