"""Jobs on a Kubernetes cluster: the Indexed Job of ``jobs.kubernetes_job``, through the Kubernetes Python
client, with the kubeconfig the toolkit wrote (``clusters/<cluster>/credentials/config``).

Not run here: the sandbox has no Kubernetes API (its Magnum Kubernetes clusters are servers only). The
manifest is validated offline against the Kubernetes schemas (tests/unit/test_jobs.py), and the pods' views
(index, state, exit code) are unit-tested on the API's own shapes.
"""

from __future__ import annotations

from pathlib import Path

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from container_infra import jobs
from container_infra.jobs_backend import JobsBackend

INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
PHASES = {"Pending": "pending", "Running": "running", "Succeeded": "complete", "Failed": "failed"}


def api_client(kubeconfig: Path) -> k8s.ApiClient:
    return k8s_config.new_client_from_config(config_file=str(kubeconfig))


def pod_view(pod: dict) -> dict:
    """One pod of an Indexed Job (the API's JSON shape) as a task view (``jobs.task_view``'s keys)."""
    metadata, status = pod.get("metadata") or {}, pod.get("status") or {}
    state = PHASES.get(status.get("phase") or "", "pending")
    exit_code, container_id = None, ""
    for container in status.get("containerStatuses") or []:
        container_id = container.get("containerID") or ""
        terminated = (container.get("state") or {}).get("terminated")
        if terminated is not None:
            exit_code = terminated.get("exitCode")
    annotations = metadata.get("annotations") or {}
    return {"index": int(annotations.get(INDEX_ANNOTATION, 0)), "id": metadata.get("name", ""), "state": state,
            "desired": "", "exit_code": exit_code if state in ("complete", "failed") else None,
            "node": (pod.get("spec") or {}).get("nodeName") or "", "container": container_id.split("//")[-1],
            "error": status.get("reason") or "", "updated": metadata.get("creationTimestamp") or ""}


class KubernetesJobs(JobsBackend):
    """A namespace's jobs: submit, status, logs, cancel, list."""

    def __init__(self, api: k8s.ApiClient, namespace: str = "default"):
        self.api, self.namespace = api, namespace
        self.batch, self.core = k8s.BatchV1Api(api), k8s.CoreV1Api(api)

    def nodes(self) -> list[jobs.Node]:
        out = []
        for node in self.core.list_node().items:
            labels = dict(node.metadata.labels or {})
            ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
            # The placement's names for Kubernetes' labels (jobs.KUBERNETES_LABELS), so the same checks apply.
            for short, label in jobs.KUBERNETES_LABELS.items():
                if label in labels:
                    labels[short] = labels[label]
            role = "master" if "node-role.kubernetes.io/control-plane" in labels else "worker"
            gpus = int((node.status.allocatable or {}).get(jobs.KUBERNETES_GPU, 0) or 0)
            out.append(jobs.Node(node.metadata.name, role, labels, gpus, ready and not node.spec.unschedulable))
        return out

    def submit(self, job: jobs.Job, **check) -> dict:
        errors = self.check(job, **check)
        if errors:
            raise jobs.JobError(errors)
        manifest = jobs.kubernetes_job(job, self.namespace)
        self.batch.create_namespaced_job(self.namespace, manifest)
        return {"name": job.name, "tasks": job.tasks, "max_concurrent": job.max_concurrent}

    def _pods(self, name: str) -> list[dict]:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"job-name={name}")
        return [self.api.sanitize_for_serialization(pod) for pod in pods.items]

    def status(self, name: str) -> dict:
        found = self.api.sanitize_for_serialization(self.batch.read_namespaced_job(name, self.namespace))
        summary = jobs.summarize(name, int(found["spec"].get("completions") or 1),
                                 [pod_view(pod) for pod in self._pods(name)])
        conditions = {c["type"]: c for c in (found.get("status") or {}).get("conditions") or []}
        if (conditions.get("Failed") or {}).get("reason") == "DeadlineExceeded":
            summary.update(state="deadline-exceeded", finished=True)
        summary["logs"] = {t["index"]: jobs.log_hint(name, t) for t in summary["task_states"]}
        return summary

    def cancel(self, name: str) -> dict:
        summary = self.status(name)
        # Foreground: the Job goes once its pods are gone (the running tasks stop).
        self.batch.delete_namespaced_job(name, self.namespace, propagation_policy="Foreground")
        summary.update(cancelled=True, state=summary["state"] if summary["finished"] else "cancelled", finished=True)
        return summary

    def list(self) -> list[dict]:
        found = self.batch.list_namespaced_job(self.namespace,
                                               label_selector="app.kubernetes.io/managed-by=container-infra")
        return [self.status(item.metadata.name) for item in found.items]

    def logs(self, name: str, index: int | None = None, follow: bool = False, tail: int | str = "all"):
        for pod in sorted(self._pods(name), key=lambda p: pod_view(p)["index"]):
            view = pod_view(pod)
            if index is not None and view["index"] != index:
                continue
            text = self.core.read_namespaced_pod_log(view["id"], self.namespace, follow=follow,
                                                     tail_lines=None if tail == "all" else int(tail))
            for line in text.splitlines():
                yield view["index"], line
