"""Users' jobs: N tasks of one image and command across a cluster's nodes, how many at once, GPUs per task,
the shared file systems the storage role mounted, the host network (HTE/LLN), placement, environment and a
deadline.

This module is the model, the checks and the views that do not need a cluster: a job from its spec
(``parse``), the checks against what the cluster has (``placement_errors``: GPUs, constraints, mounts, a
name already running), the Swarm service a job becomes (``swarm_service``), the Kubernetes Indexed Job
(``kubernetes_job``), and the job's state from its tasks (``summarize``). The backends
(``jobs_swarm``, ``jobs_kubernetes``) talk to the clusters; the CLI and the playbook call them.

Every bad input is one sentence naming what is wrong and how to fix it; a job with any is not submitted.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass, field
from typing import Any

from container_infra import storage
from container_infra.monitoring import duration_seconds

#: The labels that mark a Swarm service (and its containers) as a container-infra job.
LABEL = "container_infra.job"
LABEL_TASKS = "container_infra.job.tasks"
LABEL_SUBMITTED = "container_infra.job.submitted"
LABEL_DEADLINE = "container_infra.job.deadline"
#: Each task learns its index (0 .. tasks-1) from this variable, on Swarm and on Kubernetes alike.
INDEX_VARIABLE = "CONTAINER_INFRA_TASK_INDEX"
#: A Swarm task's index from its slot (0 .. tasks-1): the template's .Task.Slot says the node's ID for slot 0 (as
#: for a global service's tasks), hence the comparison (text/template's own ``eq``).
SLOT_TEMPLATE = "{{if eq .Task.Slot .Node.ID}}0{{else}}{{.Task.Slot}}{{end}}"
#: The Swarm node labels the container_infra_swarm role sets (and the GPU role's ``gpu``).
NODEGROUP_LABEL = "nodegroup"
ISLAND_LABEL = "island"
GPU_LABEL = "gpu"
#: The generic resource kind GPUs are advertised as (``node-generic-resources``), matched to the NVIDIA
#: runtime's ``swarm-resource`` (DOCKER_RESOURCE_GPU).
GPU_KIND = "gpu"
#: Kubernetes' device plugin resource.
KUBERNETES_GPU = "nvidia.com/gpu"
#: The node labels a placement means on Kubernetes: Magnum's nodegroup label, the toolkit's island and GPU
#: labels; other labels are taken as written.
KUBERNETES_LABELS = {NODEGROUP_LABEL: "magnum.openstack.org/nodegroup", ISLAND_LABEL: "container-infra/island",
                     GPU_LABEL: "container-infra/gpu"}
# A DNS-1123 label short enough for Kubernetes' pod names (<job>-<index>-<random>) and a Swarm service name.
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
KEYS = {"name", "image", "command", "tasks", "max_concurrent", "gpus_per_task", "mounts", "host_network",
        "placement", "env", "deadline"}
PLACEMENT_KEYS = {"nodegroup", "island", "gpu", "labels"}
MOUNT_KEYS = {"source", "target", "read_only"}
#: Swarm task states, as the job's counts group them.
RUNNING_STATES = {"running"}
DONE_STATES = {"complete"}
FAILED_STATES = {"failed", "rejected", "orphaned"}
# A task that was shut down (a cancel, a removal) ends neither done nor failed; "shutdown" and "remove" are
# desired states the engine reaches when a job is cancelled.
STOPPED_STATES = {"shutdown", "remove"}


class JobError(ValueError):
    """A job that cannot be submitted: the message is one sentence per problem."""

    def __init__(self, errors: list[str]):
        super().__init__(" ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class Job:
    name: str
    image: str
    command: tuple[str, ...] = ()
    tasks: int = 1
    max_concurrent: int = 1
    gpus_per_task: int = 0
    mounts: tuple[Mount, ...] = ()
    host_network: bool = False
    nodegroup: str = ""
    island: str = ""
    gpu: bool | None = None
    labels: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    deadline: int | None = None

    def constraints(self) -> dict[str, str]:
        """Node label -> wanted value: the job's placement as node labels."""
        wanted = dict(self.labels)
        if self.nodegroup:
            wanted[NODEGROUP_LABEL] = self.nodegroup
        if self.island:
            wanted[ISLAND_LABEL] = self.island
        if self.gpu is not None:
            wanted[GPU_LABEL] = "true" if self.gpu else "false"
        return wanted


@dataclass
class Node:
    """A node as a job's checks see it: its Swarm (or Kubernetes) labels, GPUs, and mounted paths."""

    hostname: str
    role: str = "worker"  # master or worker, as the inventories say
    labels: dict[str, str] = field(default_factory=dict)
    gpus: int = 0
    ready: bool = True
    mounts: set[str] = field(default_factory=set)


def _positive_int(value: Any, key: str, errors: list[str], minimum: int = 1) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit() \
            or int(value) < minimum:
        errors.append(f"The job's {key} {value!r} is not a whole number of at least {minimum}; give one such as "
                      f"{max(minimum, 1)}.")
        return None
    return int(value)


def _bool(value: Any, key: str, errors: list[str]) -> bool | None:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "yes", "1"):
        return True
    if str(value).lower() in ("false", "no", "0"):
        return False
    errors.append(f"The job's {key} {value!r} is not true or false; give one of them.")
    return None


def parse_mount(value: Any) -> Mount | str:
    """A mount from ``SOURCE[:TARGET[:ro]]`` or a mapping; a sentence when it is not one."""
    if isinstance(value, str):
        parts = value.split(":")
        if len(parts) > 3 or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            return f"The mount {value!r} is not SOURCE[:TARGET[:ro]]; write it as /mnt/scratch:/scratch:ro."
        value = {"source": parts[0], "target": parts[1] if len(parts) > 1 else parts[0],
                 "read_only": len(parts) == 3 and parts[2] == "ro"}
    if not isinstance(value, dict):
        return f"The mount {value!r} is neither SOURCE[:TARGET[:ro]] nor a mapping with source and target."
    unknown = sorted(set(value) - MOUNT_KEYS)
    if unknown:
        return f"The mount {value!r} has keys {unknown} a mount does not take; use {sorted(MOUNT_KEYS)}."
    source, target = str(value.get("source") or ""), str(value.get("target") or value.get("source") or "")
    for what, path in (("source", source), ("target", target)):
        if not path.startswith("/") or "\n" in path or "," in path or ":" in path:
            return (f"The mount's {what} {path!r} is not an absolute path; give the path the storage role mounted "
                    "on the nodes (source) and where the task sees it (target).")
    return Mount(source.rstrip("/") or "/", target.rstrip("/") or "/", bool(value.get("read_only", False)))


def parse(spec: dict) -> Job:
    """A job from its spec (the CLI's options, the playbook's ``container_infra_job``); JobError with every
    problem of the spec itself (the cluster's checks are ``placement_errors``)."""
    if not isinstance(spec, dict):
        raise JobError([f"The job spec {spec!r} is not a mapping; give name, image, command and tasks."])
    errors: list[str] = []
    unknown = sorted(set(spec) - KEYS)
    if unknown:
        errors.append(f"The job spec has keys {unknown} a job does not take; use {sorted(KEYS)}.")
    name = str(spec.get("name") or "")
    if not NAME.match(name):
        errors.append(f"The job name {name!r} is not a DNS label of at most 52 characters; use lower-case letters, "
                      "digits and '-', starting and ending with a letter or digit.")
    image = str(spec.get("image") or "")
    if not image or any(c.isspace() for c in image):
        errors.append(f"The job's image {image!r} is not an image reference; give one such as "
                      "registry:5000/project/image:tag.")
    command = spec.get("command") or ()
    if isinstance(command, str):
        command = ("sh", "-c", command)
    elif not isinstance(command, (list, tuple)) or not all(isinstance(a, (str, int, float)) for a in command):
        errors.append(f"The job's command {command!r} is neither a string (run by sh -c) nor a list of arguments.")
        command = ()
    tasks = _positive_int(spec.get("tasks", 1), "tasks", errors)
    max_concurrent = _positive_int(spec.get("max_concurrent") or tasks or 1, "max_concurrent", errors)
    gpus = _positive_int(spec.get("gpus_per_task", 0), "gpus_per_task", errors, minimum=0)
    mounts = []
    for item in spec.get("mounts") or []:
        mount = parse_mount(item)
        (errors.append(mount) if isinstance(mount, str) else mounts.append(mount))
    targets = [m.target for m in mounts]
    if len(set(targets)) != len(targets):
        errors.append(f"The job mounts two file systems at the same target ({targets}); give each its own target.")
    host_network = _bool(spec.get("host_network", False), "host_network", errors)
    placement = spec.get("placement") or {}
    if not isinstance(placement, dict) or set(placement) - PLACEMENT_KEYS:
        errors.append(f"The job's placement {placement!r} is not a mapping of {sorted(PLACEMENT_KEYS)}.")
        placement = {}
    gpu = None if placement.get("gpu") is None else _bool(placement["gpu"], "placement.gpu", errors)
    labels = placement.get("labels") or {}
    if not isinstance(labels, dict):
        errors.append(f"The job's placement.labels {labels!r} is not a mapping of node label to value.")
        labels = {}
    env = spec.get("env") or {}
    if not isinstance(env, dict):
        errors.append(f"The job's env {env!r} is not a mapping of variable to value.")
        env = {}
    for key in env:
        if not ENV_NAME.match(str(key)) or key == INDEX_VARIABLE:
            errors.append(f"The job's env variable {key!r} is not a name a task can have (letters, digits, '_'; "
                          f"{INDEX_VARIABLE} is set by the toolkit); rename it.")
    deadline = spec.get("deadline")
    seconds = None
    if deadline not in (None, "", 0, "0"):  # 0: no deadline (a form's empty default)
        seconds = int(deadline) if isinstance(deadline, int) and not isinstance(deadline, bool) \
            else duration_seconds(str(deadline))
        if not seconds or seconds <= 0:
            errors.append(f"The job's deadline {deadline!r} is not a duration; give seconds or one such as 90s, "
                          "30m or 2h.")
            seconds = None
    if tasks and max_concurrent and max_concurrent > tasks:
        max_concurrent = tasks  # more at once than there are tasks is all of them
    if errors:
        raise JobError(errors)
    return Job(name=name, image=image, command=tuple(str(a) for a in command), tasks=tasks or 1,
               max_concurrent=max_concurrent or 1, gpus_per_task=gpus or 0, mounts=tuple(mounts),
               host_network=bool(host_network), nodegroup=str(placement.get("nodegroup") or ""),
               island=str(placement.get("island") or ""), gpu=gpu,
               labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
               env=tuple(sorted((str(k), str(v)) for k, v in env.items())), deadline=int(seconds) if seconds else None)


# --------------------------------------------------------------------------------------- the cluster's checks
def node_mounts(nodes: list[Node], storage_spec: list[dict] | None, cluster: str) -> None:
    """Fill each node's ``mounts`` with the paths the storage role mounts on it (its role and nodegroup, as
    the role places the spec's entries)."""
    for node in nodes:
        plan = storage.node_plan(storage_spec or [], cluster, node.role,
                                 node.labels.get(NODEGROUP_LABEL) or f"default-{node.role}")
        node.mounts = {entry["path"].rstrip("/") or "/" for entry in plan if entry.get("state") == "present"}


def _under(path: str, mounted: set[str]) -> bool:
    return any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounted)


def candidates(job: Job, nodes: list[Node]) -> list[Node]:
    """The ready nodes the job's constraints allow."""
    wanted = job.constraints()
    return [n for n in nodes if n.ready and all(n.labels.get(k) == v for k, v in wanted.items())]


def placement_errors(job: Job, nodes: list[Node], running: set[str] | None = None,
                     mounts_known: bool = True) -> list[str]:
    """What the cluster cannot give the job, one sentence each: a name already running, a constraint no
    node matches, more GPUs per task than any (allowed) node has, a mount not mounted on the chosen nodes."""
    errors = []
    if job.name in (running or set()):
        errors.append(f"A job named {job.name} is already running; cancel it (container-infra job cancel "
                      f"{job.name}) or give this one another name.")
    chosen = candidates(job, nodes)
    wanted = job.constraints()
    if not chosen:
        offered = sorted({f"{k}={n.labels[k]}" for n in nodes for k in wanted if k in n.labels})
        errors.append(f"No ready node matches the job's placement {wanted}; the nodes offer "
                      f"{offered or 'none of these labels'}.")
        return errors
    if job.gpus_per_task:
        most = max(n.gpus for n in chosen)
        if job.gpus_per_task > most:
            errors.append(f"The job asks {job.gpus_per_task} GPU(s) per task but the most any node it may run on "
                          f"has is {most}; ask for at most {most} or place it on GPU nodes.")
        chosen = [n for n in chosen if n.gpus >= job.gpus_per_task] or chosen
    if job.mounts and not mounts_known:
        errors.append("The job mounts file systems but no storage spec says what the nodes have mounted; pass the "
                      "cluster's storage spec (--storage) so the mounts can be checked.")
    elif job.mounts:
        for mount in job.mounts:
            lacking = sorted(n.hostname for n in chosen if not _under(mount.source, n.mounts))
            if lacking:
                errors.append(f"The mount source {mount.source} is not on a file system the storage role mounted on "
                              f"{', '.join(lacking)}; mount it there first (playbooks/storage.yml) or restrict the "
                              "job's placement to nodes that have it.")
    return errors


# ------------------------------------------------------------------------------------------- the Swarm service
def swarm_service(job: Job, submitted: float | None = None, gpu_kind: str = GPU_KIND) -> dict:
    """The Swarm service of a job, as plain data in the Docker Engine API's ServiceSpec shape: a
    ``ReplicatedJob`` of ``tasks`` completions, ``max_concurrent`` at once, tasks never restarted (a failed
    task is reported, not retried behind the user's back)."""
    submitted = time.time() if submitted is None else submitted
    labels = {LABEL: job.name, LABEL_TASKS: str(job.tasks), LABEL_SUBMITTED: str(int(submitted))}
    if job.deadline:
        labels[LABEL_DEADLINE] = str(int(submitted) + job.deadline)
    env = [f"{k}={v}" for k, v in job.env] + [f"{INDEX_VARIABLE}={SLOT_TEMPLATE}"]
    container: dict[str, Any] = {
        "Image": job.image,
        "Env": env,
        "Labels": {LABEL: job.name},
        "Mounts": [{"Type": "bind", "Source": m.source, "Target": m.target, "ReadOnly": m.read_only}
                   for m in job.mounts],
    }
    if job.command:
        container["Command"] = list(job.command)
    task: dict[str, Any] = {
        "ContainerSpec": container,
        "RestartPolicy": {"Condition": "none"},
        "Placement": {"Constraints": [f"node.labels.{k}=={v}" for k, v in sorted(job.constraints().items())]},
    }
    if job.gpus_per_task:
        task["Resources"] = {"Reservations": {"GenericResources": [
            {"DiscreteResourceSpec": {"Kind": gpu_kind, "Value": job.gpus_per_task}}]}}
    if job.host_network:
        # The host's stack: the task sees the node's HTE and LLN interfaces, as the memo's stacks did.
        task["Networks"] = [{"Target": "host"}]
    return {
        "Name": job.name,
        "Labels": labels,
        "TaskTemplate": task,
        "Mode": {"ReplicatedJob": {"MaxConcurrent": job.max_concurrent, "TotalCompletions": job.tasks}},
    }


# --------------------------------------------------------------------------------------------- the job's state
def task_view(task: dict, hostnames: dict[str, str] | None = None) -> dict:
    """One Swarm task as the job's status shows it: index, state, exit code, node, container, error."""
    status = task.get("Status") or {}
    container = status.get("ContainerStatus") or {}
    state = status.get("State") or "new"
    exit_code = container.get("ExitCode")
    if state == "complete" and exit_code is None:
        exit_code = 0
    node_id = task.get("NodeID") or ""
    return {"index": task.get("Slot", 0), "id": task.get("ID", ""), "state": state,
            "desired": task.get("DesiredState", ""), "exit_code": exit_code if state in DONE_STATES | FAILED_STATES
            else None, "node": (hostnames or {}).get(node_id, node_id), "container": container.get("ContainerID", ""),
            "error": status.get("Err", ""), "updated": task.get("UpdatedAt", "")}


def latest_per_index(views: list[dict]) -> list[dict]:
    """The newest task of each index (a slot that was retried or rescheduled has several)."""
    by_index: dict[int, dict] = {}
    for view in sorted(views, key=lambda v: v["updated"]):
        by_index[view["index"]] = view
    return [by_index[i] for i in sorted(by_index)]


def summarize(name: str, total: int, views: list[dict], now: float | None = None,
              deadline: float | None = None) -> dict:
    """The job's counts and state from its tasks' views: pending counts the tasks not yet made too (a
    replicated job makes only ``max_concurrent`` at a time)."""
    tasks = latest_per_index(views)
    running = sum(1 for t in tasks if t["state"] in RUNNING_STATES)
    done = sum(1 for t in tasks if t["state"] in DONE_STATES)
    failed = sum(1 for t in tasks if t["state"] in FAILED_STATES)
    stopped = sum(1 for t in tasks if t["state"] in STOPPED_STATES)
    pending = max(total - running - done - failed - stopped, 0)
    if done == total:
        state = "complete"
    elif failed and not running and not any(t["state"] not in DONE_STATES | FAILED_STATES | STOPPED_STATES
                                            for t in tasks):
        # No task is still on its way: the failed ones will not be retried (restart condition none).
        state = "failed"
    else:
        state = "running"
    now = time.time() if now is None else now
    if state == "running" and deadline and now > deadline:
        state = "deadline-exceeded"
    return {"name": name, "state": state, "tasks": total, "pending": pending, "running": running, "done": done,
            "failed": failed, "task_states": tasks, "finished": state != "running"}


def progress_line(summary: dict) -> str:
    return (f"job {summary['name']}: {summary['state']}, pending {summary['pending']}, running {summary['running']}"
            f", done {summary['done']}, failed {summary['failed']} of {summary['tasks']}")


def log_hint(name: str, task: dict) -> str:
    """Where a task's log is: the command that shows it, and the node and container it ran in."""
    where = f"node {task['node']}" + (f", container {task['container'][:12]}" if task.get("container") else "")
    return f"container-infra job logs {shlex.quote(name)} --task {task['index']} ({where})"


# ------------------------------------------------------------------------------------------ the Indexed Job
def kubernetes_job(job: Job, namespace: str = "default") -> dict:
    """The job as a Kubernetes Indexed Job (batch/v1): ``completions`` tasks, ``parallelism`` at once, each
    pod's index in CONTAINER_INFRA_TASK_INDEX (from the completion-index annotation), GPUs as
    ``nvidia.com/gpu`` limits, hostNetwork, hostPath mounts, nodeSelector from the placement, no retries
    (backoffLimitPerIndex 0 would need Kubernetes 1.29; backoffLimit 0 fails the job at the first failed pod),
    activeDeadlineSeconds from the deadline."""
    env = [{"name": k, "value": v} for k, v in job.env]
    env.append({"name": INDEX_VARIABLE, "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}})
    container: dict[str, Any] = {"name": "task", "image": job.image, "env": env}
    if job.command:
        container["command"] = list(job.command)
    if job.gpus_per_task:
        container["resources"] = {"limits": {KUBERNETES_GPU: job.gpus_per_task}}
    volumes = []
    if job.mounts:
        container["volumeMounts"] = [{"name": f"mount-{i}", "mountPath": m.target, "readOnly": m.read_only}
                                     for i, m in enumerate(job.mounts)]
        volumes = [{"name": f"mount-{i}", "hostPath": {"path": m.source, "type": "Directory"}}
                   for i, m in enumerate(job.mounts)]
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if volumes:
        pod["volumes"] = volumes
    if job.host_network:
        pod["hostNetwork"] = True
        pod["dnsPolicy"] = "ClusterFirstWithHostNet"
    selector = {KUBERNETES_LABELS.get(k, k): v for k, v in job.constraints().items()}
    if selector:
        pod["nodeSelector"] = selector
    labels = {"app.kubernetes.io/managed-by": "container-infra", "container-infra/job": job.name}
    spec: dict[str, Any] = {"completionMode": "Indexed", "completions": job.tasks, "parallelism": job.max_concurrent,
                            "backoffLimit": 0,
                            "template": {"metadata": {"labels": dict(labels)}, "spec": pod}}
    if job.deadline:
        spec["activeDeadlineSeconds"] = job.deadline
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": job.name, "namespace": namespace, "labels": labels}, "spec": spec}
