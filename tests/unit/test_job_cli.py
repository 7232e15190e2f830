"""`container-infra job` without a cluster: the options become the spec, bad input is refused before any backend
is asked, and a waited job prints each task's exit code, where its log is and a failed task's tail."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from container_infra import job_cli, jobs
from container_infra.cli import main


class FakeBackend:
    def __init__(self, states):
        self.states, self.submitted, self.checked = list(states), [], []

    def submit(self, job, **check):
        self.checked.append(check)
        self.submitted.append(job)
        return {"name": job.name}

    def wait(self, name, progress=None, **_):
        summary = None
        for views in self.states:
            summary = jobs.summarize(name, 2, views)
            summary["logs"] = {t["index"]: jobs.log_hint(name, t) for t in summary["task_states"]}
            progress(summary)
        return summary

    def logs(self, name, index, tail="all", **_):
        yield index, "about to fail"
        yield index, "boom"


def view(index, state, code=None):
    return {"index": index, "id": f"t{index}", "state": state, "desired": "", "exit_code": code, "node": "w1",
            "container": "c" * 12, "error": "", "updated": state}


@pytest.fixture
def backend(monkeypatch):
    fake = FakeBackend([[view(0, "running")], [view(0, "complete", 0), view(1, "failed", 7)]])
    monkeypatch.setattr(job_cli, "_backend", lambda ctx: fake)
    return fake


def test_a_waited_job_prints_each_tasks_exit_code_log_and_failed_tail(backend, tmp_path):
    storage = tmp_path / "clusters.yml"
    storage.write_text("container_infra_clusters:\n  - name: c1\n    storage: [{name: s, kind: cephfs, path: /mnt/s,"
                       " cephfs: {share: x}}]\n")
    result = CliRunner().invoke(main, ["job", "--cluster", "c1", "submit", "--name", "sim", "--image", "r/i:1",
                                       "--tasks", "2", "--env", "A=1", "--island", "a", "--storage", str(storage),
                                       "--", "sh", "-c", "exit 7"])
    assert result.exit_code == 1, result.output
    (job,) = backend.submitted
    assert job.command == ("sh", "-c", "exit 7") and job.env == (("A", "1"),) and job.island == "a"
    assert backend.checked[0]["storage_spec"][0]["path"] == "/mnt/s"
    out = result.stdout
    assert "job sim: failed, pending 0, running 0, done 1, failed 1 of 2" in out
    assert "task 1: failed, exit code 7; log: container-infra job logs sim --task 1 (node w1" in out
    assert "    boom" in out
    assert "job sim: running" in result.stderr  # the progress while it waited


def test_without_storage_the_clusters_written_inventory_says_what_the_nodes_mounted(backend, tmp_path):
    """--cluster with no --storage: the storage spec the cluster role wrote into clusters/<cluster>/hosts.yml."""
    written = tmp_path / "clusters" / "c1"
    written.mkdir(parents=True)
    spec = [{"name": "s", "kind": "cephfs", "path": "/mnt/s", "cephfs": {"share": "x"}}]
    (written / "hosts.yml").write_text(json.dumps({"all": {"children": {"cluster_c1": {"hosts": {
        "c1-manager-0": {"container_infra_storage": spec}, "c1-worker-0": {"container_infra_storage": spec}}}}}}))
    result = CliRunner().invoke(main, ["job", "--cluster", "c1", "--clusters-dir", str(tmp_path / "clusters"),
                                       "submit", "--name", "sim", "--image", "r/i:1", "--mount", "/mnt/s", "--",
                                       "true"])
    assert backend.checked[0]["storage_spec"] == spec, result.output
    # No written inventory: no spec (the backend's check then asks for --storage where there are mounts).
    CliRunner().invoke(main, ["job", "--cluster", "c2", "--clusters-dir", str(tmp_path / "clusters"), "submit",
                              "--name", "sim", "--image", "r/i:1", "--", "true"])
    assert backend.checked[1]["storage_spec"] is None


def test_json_output_carries_the_counts_and_the_failed_tail(backend):
    result = CliRunner().invoke(main, ["job", "--cluster", "c1", "submit", "--name", "sim", "--image", "r/i:1",
                                       "--tasks", "2", "--json", "--", "false"])
    summary = json.loads(result.stdout)
    assert summary["state"] == "failed" and summary["failed_logs"] == {"1": ["about to fail", "boom"]}


def test_bad_input_is_refused_before_the_cluster_is_asked(monkeypatch):
    monkeypatch.setattr(job_cli, "_backend", lambda ctx: pytest.fail("the cluster was asked"))
    result = CliRunner().invoke(main, ["job", "--cluster", "c1", "submit", "--name", "sim", "--image", "r/i:1",
                                       "--mount", "relative", "--", "true"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: nothing submitted: The mount's source 'relative' is not an absolute path")


def test_a_job_file_and_options_make_one_spec(backend, tmp_path):
    spec = tmp_path / "job.yml"
    spec.write_text("name: sim\nimage: r/i:1\ncommand: hostname\ntasks: 2\nplacement: {nodegroup: gpu}\n")
    CliRunner().invoke(main, ["job", "--cluster", "c1", "submit", "--file", str(spec), "--tasks", "3", "--island",
                              "b", "--no-wait"])
    (job,) = backend.submitted
    assert (job.tasks, job.nodegroup, job.island, job.command) == (3, "gpu", "b", ("sh", "-c", "hostname"))
