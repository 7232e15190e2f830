"""Jobs on a Docker Swarm through the cluster's TLS Docker API, with the Docker SDK for Python.

The credentials are those the toolkit wrote for the cluster (``os_container_infra_config``:
``clusters/<cluster>/credentials/`` with ``ca.pem``, ``cert.pem``, ``key.pem`` and ``env.sh`` naming
DOCKER_HOST, a manager's API on 2376). A job is a ``replicated-job`` service labelled ``container_infra.job``;
its status comes from its tasks, its logs from each task's log, and a cancel removes the service (the engine
stops its running tasks). The Swarm enforces no deadline: the waiting side (``wait``, ``status``, ``list``)
cancels a job past its deadline and reports it so.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import requests
from docker import errors as docker_errors

from container_infra import jobs
from container_infra.credentials import current_state
from container_infra.jobs_backend import JobsBackend

API_VERSION = "1.41"
#: The node label no node carries: a cancelled job's last iteration waits on it, running nowhere.
CANCELLED_LABEL = "container_infra.job.cancelled"


class SwarmError(RuntimeError):
    """The Swarm could not be reached or refused a request; the message says which and what to do."""


def connect(credentials: Path, timeout: float = 30) -> docker.DockerClient:
    """A client for the cluster whose credentials directory this is (DOCKER_HOST from its env.sh)."""
    credentials = Path(credentials)
    state = current_state(credentials, swarm=True)
    if not state["server"] or not state["complete"]:
        raise SwarmError(f"{credentials} holds no Swarm credentials (ca.pem, cert.pem, key.pem and env.sh with "
                         "DOCKER_HOST); write them with playbooks/cluster_create.yml or os_container_infra_config.")
    tls = docker.tls.TLSConfig(client_cert=(str(credentials / "cert.pem"), str(credentials / "key.pem")),
                               ca_cert=str(credentials / "ca.pem"), verify=True)
    try:
        # A fixed API version (no request before the next line): replicated jobs need 1.41 (Docker 20.10), which
        # later engines still serve.
        client = docker.DockerClient(base_url=state["server"], tls=tls, timeout=timeout, version=API_VERSION)
        # The client is a requests session: with the environment trusted, $REQUESTS_CA_BUNDLE would replace the
        # cluster's CA for every request (requests' merge of settings), and the manager's certificate would fail.
        client.api.trust_env = False
        client.ping()
        return client
    except (docker_errors.DockerException, requests.RequestException) as error:
        raise SwarmError(f"The Swarm's Docker API at {state['server']} could not be reached ({error}); check that "
                         "the cluster is up and that its first manager has its floating IP.") from error


class SwarmJobs(JobsBackend):
    """A Swarm's jobs: submit, status, wait, logs, cancel, list."""

    def __init__(self, client: docker.DockerClient, gpu_kind: str = jobs.GPU_KIND):
        self.client, self.api, self.gpu_kind = client, client.api, gpu_kind

    # ------------------------------------------------------------------------------------------------ nodes
    def nodes(self) -> list[jobs.Node]:
        out = []
        for node in self.api.nodes():
            spec, description = node.get("Spec") or {}, node.get("Description") or {}
            resources = (description.get("Resources") or {}).get("GenericResources") or []
            gpus = 0
            for resource in resources:
                named, discrete = resource.get("NamedResourceSpec"), resource.get("DiscreteResourceSpec")
                if named and named.get("Kind") == self.gpu_kind:
                    gpus += 1
                elif discrete and discrete.get("Kind") == self.gpu_kind:
                    gpus += int(discrete.get("Value") or 0)
            out.append(jobs.Node(
                hostname=description.get("Hostname") or node["ID"],
                role="master" if spec.get("Role") == "manager" else "worker",
                labels=dict(spec.get("Labels") or {}), gpus=gpus,
                ready=(node.get("Status") or {}).get("State") == "ready" and spec.get("Availability") == "active"))
        return out

    def _hostnames(self) -> dict[str, str]:
        return {n["ID"]: (n.get("Description") or {}).get("Hostname", n["ID"]) for n in self.api.nodes()}

    # ------------------------------------------------------------------------------------------------- jobs
    def _services(self, name: str | None = None) -> list[dict]:
        filters = {"label": f"{jobs.LABEL}={name}" if name else jobs.LABEL}
        return self.api.services(filters=filters)

    def _service(self, name: str) -> dict | None:
        found = [s for s in self._services(name) if s["Spec"]["Name"] == name]
        return found[0] if found else None

    def _summary(self, service: dict, hostnames: dict[str, str] | None = None, enforce_deadline: bool = True) -> dict:
        """The job's state from its tasks; a job past its deadline is cancelled here (the Swarm has no
        deadline of its own), whoever asks first."""
        labels = service["Spec"].get("Labels") or {}
        hostnames = self._hostnames() if hostnames is None else hostnames
        views = [jobs.task_view(t, hostnames) for t in self.api.tasks(filters={"service": service["ID"]})]
        deadline = float(labels[jobs.LABEL_DEADLINE]) if labels.get(jobs.LABEL_DEADLINE) else None
        summary = jobs.summarize(service["Spec"]["Name"], int(labels.get(jobs.LABEL_TASKS) or 0), views,
                                 deadline=deadline)
        summary["image"] = service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        summary["logs"] = {t["index"]: jobs.log_hint(summary["name"], t) for t in summary["task_states"]}
        if enforce_deadline and summary["state"] == "deadline-exceeded":
            self._stop_tasks(service)
            self.api.remove_service(service["ID"])
            summary["cancelled"] = True
        return summary

    def submit(self, job: jobs.Job, **check) -> dict:
        """Check the job, then create its service; JobError (nothing submitted) on any problem. A finished job
        of the same name is replaced."""
        errors = self.check(job, **check)
        if errors:
            raise jobs.JobError(errors)
        old = self._service(job.name)
        if old is not None:
            self.api.remove_service(old["ID"])
        spec = jobs.swarm_service(job, gpu_kind=self.gpu_kind)
        task = spec["TaskTemplate"]
        if task.get("Networks"):
            # The engine takes a network by ID in a task template; the host network's is per node but the
            # manager's stands for it.
            task["Networks"] = [{"Target": self.api.inspect_network("host")["Id"]}]
        try:
            created = self.api.create_service(task_template=task, name=spec["Name"], labels=spec["Labels"],
                                              mode=spec["Mode"])
        except docker_errors.APIError as error:
            reason = str(error.explanation or error).rstrip(".")
            raise SwarmError(f"The Swarm refused the job {job.name}: {reason}.") from error
        return {"name": job.name, "id": created["ID"], "tasks": job.tasks, "max_concurrent": job.max_concurrent}

    def status(self, name: str, enforce_deadline: bool = True) -> dict:
        service = self._service(name)
        if service is None:
            raise SwarmError(f"No job named {name} on this cluster; `container-infra job list` shows its jobs.")
        return self._summary(service, enforce_deadline=enforce_deadline)

    def cancel(self, name: str) -> dict:
        """Remove the job's service: its running tasks stop. The status as it was is returned."""
        service = self._service(name)
        if service is None:
            raise SwarmError(f"No job named {name} on this cluster; `container-infra job list` shows its jobs.")
        summary = self._summary(service, enforce_deadline=False)
        if not summary["finished"]:
            self._stop_tasks(service)
        self.api.remove_service(service["ID"])
        summary.update(cancelled=True, state=summary["state"] if summary["finished"] else "cancelled", finished=True)
        return summary

    def _stop_tasks(self, service: dict, timeout: float = 60) -> None:
        """Stop a job's running tasks before its service goes: removing a replicated-job service leaves its running
        containers running on engines before 24 (moby/moby#44312). A new iteration of the job that no node can
        take (an update bumps a job's iteration) makes the orchestrator shut down the old iteration's tasks."""
        spec = service["Spec"]
        task = copy.deepcopy(spec["TaskTemplate"])
        placement = task.setdefault("Placement", {})
        nowhere = f"node.labels.{CANCELLED_LABEL}=={service['ID']}"
        placement["Constraints"] = [*(placement.get("Constraints") or []), nowhere]
        task["ForceUpdate"] = int(task.get("ForceUpdate") or 0) + 1
        self.api.update_service(service["ID"], service["Version"]["Index"], task_template=task, name=spec["Name"],
                                labels=spec.get("Labels"), mode=spec["Mode"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tasks = self.api.tasks(filters={"service": service["ID"]})
            if not any((t.get("Status") or {}).get("State") in jobs.RUNNING_STATES | {"starting", "preparing"}
                       for t in tasks):
                return
            time.sleep(1)

    def list(self) -> list[dict]:
        hostnames = self._hostnames()
        return [self._summary(service, hostnames) for service in self._services()]

    def logs(self, name: str, index: int | None = None, follow: bool = False,
             tail: int | str = "all") -> Iterator[tuple[int, str]]:
        """(task index, line) for the job's tasks (or one), each task's log in turn; ``follow`` keeps the
        last (or only) one open."""
        summary = self.status(name, enforce_deadline=False)
        tasks = [t for t in summary["task_states"] if index is None or t["index"] == index]
        if index is not None and not tasks:
            raise SwarmError(f"The job {name} has no task {index} yet; its tasks are "
                             f"{[t['index'] for t in summary['task_states']]}.")
        for position, task in enumerate(tasks):
            for line in self._task_log(task["id"], follow=follow and position == len(tasks) - 1, tail=tail):
                yield task["index"], line

    def _task_log(self, task_id: str, follow: bool, tail: int | str) -> Iterator[str]:
        # The SDK has service logs but no task logs; the Engine API's /tasks/{id}/logs is the same stream.
        response = self.api._get(self.api._url("/tasks/{0}/logs", task_id),
                                 params={"stdout": 1, "stderr": 1, "follow": int(follow), "tail": tail},
                                 stream=True)
        pending = ""
        for chunk in self.api._get_result_tty(True, response, False):
            pending += chunk.decode(errors="replace")
            *lines, pending = pending.split("\n")
            yield from lines
        if pending:
            yield pending
