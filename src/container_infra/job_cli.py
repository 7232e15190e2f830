"""``container-infra job``: submit, status, logs, cancel and list users' jobs on a cluster.

The cluster is named by ``--cluster`` (its credentials in ``<clusters dir>/<cluster>/credentials``, as the
cluster role writes them) or by ``--credentials DIR``. Swarm clusters are reached through their TLS Docker
API; a Kubernetes cluster's Indexed Job is printed by ``job manifest`` (validated offline) and submitted where
it has an API (``jobs_kubernetes``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
import requests
import urllib3
import yaml
from docker.errors import DockerException
from kubernetes.client.exceptions import ApiException

from container_infra import inventory, jobs
from container_infra.jobs_backend import JobsBackend
from container_infra.jobs_kubernetes import KubernetesJobs, api_client
from container_infra.jobs_swarm import SwarmError, SwarmJobs, connect

#: What a backend raises when the cluster cannot be reached or refuses: a message for the user, no traceback.
BACKEND_ERRORS = (SwarmError, ApiException, DockerException, requests.RequestException, urllib3.exceptions.HTTPError)

FINAL_EXIT = {"complete": 0}


def _explained(error: Exception) -> str:
    if isinstance(error, SwarmError):
        return str(error)
    return (f"The cluster's API did not answer as asked ({type(error).__name__}: {str(error)[:300]}); check that the "
            "cluster is up and that its credentials are current.")


def _credentials(cluster: str | None, credentials: str | None, clusters_dir: str) -> Path:
    if credentials:
        return Path(credentials)
    if not cluster:
        raise click.UsageError("name the cluster (--cluster NAME) or its credentials directory (--credentials DIR)")
    return Path(clusters_dir) / cluster / "credentials"


def _backend(ctx: click.Context) -> JobsBackend:
    """The Swarm's jobs (env.sh in the credentials), else a Kubernetes cluster's (a kubeconfig named config)."""
    options = ctx.obj
    credentials = _credentials(options["cluster"], options["credentials"], options["clusters_dir"])
    try:
        if (credentials / "config").exists() and not (credentials / "env.sh").exists():
            return KubernetesJobs(api_client(credentials / "config"), options["namespace"])
        return SwarmJobs(connect(credentials), gpu_kind=options["gpu_kind"])
    except BACKEND_ERRORS as error:
        raise click.ClickException(_explained(error)) from error


def _written_storage(cluster: str | None, clusters_dir: str) -> list[dict] | None:
    """The storage spec the cluster role wrote into the cluster's inventory (``container_infra_storage``, the same on
    every host), which is what the storage role mounted; None without such an inventory."""
    if not cluster:
        return None
    path = Path(clusters_dir) / cluster / "hosts.yml"
    if not path.is_file():
        return None
    specs = [variables["container_infra_storage"]
             for variables in inventory.hostvars_of(yaml.safe_load(path.read_text()) or {}).values()
             if isinstance(variables.get("container_infra_storage"), list)]
    return specs[0] if specs else None


def _load_storage(path: str | None, cluster: str | None, clusters_dir: str = "clusters") -> list[dict] | None:
    """The storage spec: a list, a ``container_infra_storage`` mapping, or a clusters spec
    (``container_infra_clusters``) from which the cluster's ``storage`` is taken; without a file, the one in the
    cluster's written inventory."""
    if not path:
        return _written_storage(cluster, clusters_dir)
    data = yaml.safe_load(Path(path).read_text())
    if isinstance(data, dict) and "container_infra_clusters" in data:
        found = [c for c in data["container_infra_clusters"] if c.get("name") == cluster]
        if not found:
            raise click.ClickException(f"{path} has no cluster named {cluster} in container_infra_clusters; name the "
                                       "cluster with --cluster or give the storage list itself.")
        return found[0].get("storage") or []
    if isinstance(data, dict):
        data = data.get("container_infra_storage")
    if not isinstance(data, list):
        raise click.ClickException(f"{path} holds no storage spec (a list, container_infra_storage or "
                                   "container_infra_clusters); give the file the storage role read.")
    return data


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint=what)
        out[key] = rest
    return out


def _emit(summary: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
        return
    click.echo(jobs.progress_line(summary))
    for task in summary["task_states"]:
        code = "-" if task["exit_code"] is None else task["exit_code"]
        click.echo(f"  task {task['index']}: {task['state']}, exit code {code}; log: {summary['logs'][task['index']]}"
                   + (f"; {task['error']}" if task["error"] and task["state"] != "complete" else ""))
    if summary.get("failed_logs"):
        for index, tail in summary["failed_logs"].items():
            click.echo(f"  task {index} log tail:")
            for line in tail:
                click.echo(f"    {line}")


def _failed_tails(backend: JobsBackend, summary: dict, lines: int = 10) -> dict[int, list[str]]:
    tails = {}
    for task in summary["task_states"]:
        if task["state"] in jobs.FAILED_STATES:
            tails[task["index"]] = [line for _, line in backend.logs(summary["name"], task["index"], tail=lines)]
    return tails


class _Progress:
    """Counts while a job runs: a bar with the counts on a terminal, a line per change elsewhere (Rundeck's
    log, a pipe)."""

    def __init__(self, total: int):
        self.last = None
        self.bar = click.progressbar(length=total, label="tasks done", file=sys.stderr,
                                     item_show_func=lambda s: s) if sys.stderr.isatty() else None
        self.shown = 0
        if self.bar:
            self.bar.__enter__()

    def __call__(self, summary: dict) -> None:
        counts = (summary["pending"], summary["running"], summary["done"], summary["failed"])
        if self.bar:
            self.bar.update(summary["done"] + summary["failed"] - self.shown,
                            f"pending {counts[0]}, running {counts[1]}, done {counts[2]}, failed {counts[3]}")
            self.shown = summary["done"] + summary["failed"]
        elif counts != self.last:
            click.echo(jobs.progress_line(summary), err=True)
        self.last = counts

    def close(self) -> None:
        if self.bar:
            self.bar.__exit__(None, None, None)


@click.group()
@click.option("--cluster", help="The cluster (its credentials in <clusters dir>/<cluster>/credentials).")
@click.option("--credentials", type=click.Path(file_okay=False), help="The cluster's credentials directory.")
@click.option("--clusters-dir", default=lambda: os.environ.get("CONTAINER_INFRA_CLUSTERS", "clusters"),
              show_default="clusters", help="Where the toolkit writes each cluster's inventory and credentials.")
@click.option("--gpu-kind", default=jobs.GPU_KIND, show_default=True,
              help="The Swarm generic resource kind the nodes advertise their GPUs as.")
@click.option("--namespace", default="default", show_default=True, help="A Kubernetes cluster's namespace.")
@click.pass_context
def job(ctx: click.Context, cluster: str | None, credentials: str | None, clusters_dir: str, gpu_kind: str,
        namespace: str) -> None:
    """Users' jobs: N tasks of an image across a cluster's nodes (a Swarm's replicated-job services, a
    Kubernetes cluster's Indexed Jobs)."""
    ctx.obj = {"cluster": cluster, "credentials": credentials, "clusters_dir": clusters_dir, "gpu_kind": gpu_kind,
               "namespace": namespace}


def _spec(file: str | None, options: dict) -> dict:
    spec = yaml.safe_load(Path(file).read_text()) if file else {}
    if not isinstance(spec, dict):
        raise click.ClickException(f"{file} is not a job spec (a mapping with name, image, command, tasks).")
    return {**spec, **{k: v for k, v in options.items() if v not in (None, (), {}, [])}}


@job.command()
@click.option("--file", "spec_file", type=click.Path(exists=True, dir_okay=False),
              help="A job spec (YAML or JSON); options given here override its keys.")
@click.option("--name")
@click.option("--image")
@click.option("--tasks", type=int)
@click.option("--max-concurrent", type=int, help="How many tasks run at once (default: all).")
@click.option("--gpus-per-task", type=int)
@click.option("--mount", "mounts", multiple=True, help="SOURCE[:TARGET[:ro]], a path the storage role mounted.")
@click.option("--host-network/--no-host-network", default=None, help="Tasks on the node's network (HTE, LLN).")
@click.option("--nodegroup")
@click.option("--island", help="The compute/data island (node label island, from container_infra_island).")
@click.option("--gpu/--no-gpu", "gpu", default=None, help="Only on GPU nodes (or only on others).")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE a node must carry.")
@click.option("--env", "env", multiple=True, help="KEY=VALUE for every task.")
@click.option("--deadline", help="Seconds or a duration (90s, 30m, 2h); past it the job is cancelled.")
@click.option("--storage", "storage_file", type=click.Path(exists=True, dir_okay=False),
              help="The cluster's storage spec, to check the mounts (a list, container_infra_storage or the clusters "
                   "spec); default: the one in the cluster's written inventory (<clusters dir>/<cluster>/hosts.yml).")
@click.option("--registry-ca", type=click.Path(exists=True, dir_okay=False), help="The image registry's CA.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the job, showing its progress.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.argument("command", nargs=-1)
@click.pass_context
def submit(ctx, spec_file, name, image, tasks, max_concurrent, gpus_per_task, mounts, host_network, nodegroup, island,
           gpu, labels, env, deadline, storage_file, registry_ca, wait, as_json, command) -> None:
    """Submit a job (COMMAND after --, or the spec's); with --wait, exit 0 only when every task exited 0."""
    placement = {k: v for k, v in {"nodegroup": nodegroup, "island": island, "gpu": gpu,
                                   "labels": _pairs(labels, "--label")}.items() if v not in (None, {})}
    spec = _spec(spec_file, {"name": name, "image": image, "tasks": tasks, "max_concurrent": max_concurrent,
                             "gpus_per_task": gpus_per_task, "mounts": list(mounts), "host_network": host_network,
                             "env": _pairs(env, "--env"), "deadline": deadline,
                             "command": list(command) if command else None})
    if placement:
        spec["placement"] = {**(spec.get("placement") or {}), **placement}
    try:
        parsed = jobs.parse(spec)
        backend = _backend(ctx)
        submitted = backend.submit(parsed, storage_spec=_load_storage(storage_file, ctx.obj["cluster"],
                                                                        ctx.obj["clusters_dir"]),
                                   cluster=ctx.obj["cluster"] or "", registry_ca=registry_ca)
    except jobs.JobError as error:
        raise click.ClickException("nothing submitted: " + str(error)) from error
    except BACKEND_ERRORS as error:
        raise click.ClickException(_explained(error)) from error
    click.echo(f"job {parsed.name}: submitted, {parsed.tasks} task(s), {parsed.max_concurrent} at a time", err=True)
    if not wait:
        if as_json:
            click.echo(json.dumps(submitted))
        return
    progress = _Progress(parsed.tasks)
    try:
        summary = backend.wait(parsed.name, progress=progress)
    finally:
        progress.close()
    summary["failed_logs"] = _failed_tails(backend, summary) if summary["state"] == "failed" else {}
    _emit(summary, as_json)
    sys.exit(FINAL_EXIT.get(summary["state"], 1))


@job.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def status(ctx, name: str, as_json: bool) -> None:
    """A job's counts and each task's state, exit code and log (a job past its deadline is cancelled)."""
    backend = _backend(ctx)
    try:
        summary = backend.status(name)
    except BACKEND_ERRORS as error:
        raise click.ClickException(_explained(error)) from error
    summary["failed_logs"] = _failed_tails(backend, summary) if summary["state"] == "failed" else {}
    _emit(summary, as_json)


@job.command()
@click.argument("name")
@click.option("--task", "index", type=int, help="Only this task's log.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing as the (last) task writes.")
@click.option("-n", "--tail", default="all", show_default=True, help="Lines from the end of each task's log.")
@click.pass_context
def logs(ctx, name: str, index: int | None, follow: bool, tail: str) -> None:
    """Stream a job's task logs, each line prefixed with its task's index."""
    try:
        for task_index, line in _backend(ctx).logs(name, index, follow=follow, tail=tail):
            click.echo(f"[task {task_index}] {line}")
    except BACKEND_ERRORS as error:
        raise click.ClickException(_explained(error)) from error


@job.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def cancel(ctx, name: str, as_json: bool) -> None:
    """Cancel a job: its running tasks stop and its service is removed."""
    try:
        summary = _backend(ctx).cancel(name)
    except BACKEND_ERRORS as error:
        raise click.ClickException(_explained(error)) from error
    _emit(summary, as_json)


@job.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_jobs(ctx, as_json: bool) -> None:
    """The cluster's container-infra jobs and their counts."""
    try:
        summaries = _backend(ctx).list()
    except BACKEND_ERRORS as error:
        raise click.ClickException(_explained(error)) from error
    if as_json:
        click.echo(json.dumps(summaries, indent=2, default=str))
        return
    for summary in summaries:
        click.echo(jobs.progress_line(summary))


@job.command()
@click.option("--file", "spec_file", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--namespace", default="default", show_default=True)
def manifest(spec_file: str, namespace: str) -> None:
    """Print the Kubernetes Indexed Job of a job spec (offline; apply it where the cluster has an API)."""
    try:
        click.echo(yaml.safe_dump(jobs.kubernetes_job(jobs.parse(_spec(spec_file, {})), namespace), sort_keys=False))
    except jobs.JobError as error:
        raise click.ClickException(str(error)) from error
