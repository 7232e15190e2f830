"""Users' jobs without a cluster: the spec, the checks against what the nodes have, the Swarm service and the
Kubernetes Indexed Job a job becomes, and its state from its tasks."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest

from container_infra import image_reference, jobs, registry_check
from container_infra.jobs_backend import JobsBackend
from container_infra.jobs_kubernetes import INDEX_ANNOTATION, pod_view
from container_infra.registry_check import split_reference

IMAGE = "10.80.0.2:5000/container-infra/base:latest"
STORAGE = [{"name": "scratch", "kind": "cephfs", "path": "/mnt/scratch", "cephfs": {"share": "s"}},
           {"name": "gpu-data", "kind": "cephfs", "path": "/mnt/data", "nodegroups": ["gpu"],
            "cephfs": {"share": "d"}}]


def job(**more) -> jobs.Job:
    return jobs.parse({"name": "sim", "image": IMAGE, "command": "echo $CONTAINER_INFRA_TASK_INDEX", "tasks": 8,
                       "max_concurrent": 4, **more})


def cluster() -> list[jobs.Node]:
    nodes = [jobs.Node("m1", "master", {"nodegroup": "default-master", "island": "a"}),
             jobs.Node("w1", "worker", {"nodegroup": "default-worker", "island": "a"}),
             jobs.Node("w2", "worker", {"nodegroup": "default-worker", "island": "b"}),
             jobs.Node("g1", "worker", {"nodegroup": "gpu", "island": "b", "gpu": "true"}, gpus=2)]
    jobs.node_mounts(nodes, STORAGE, "c1")
    return nodes


def test_a_spec_becomes_a_job_with_its_defaults():
    parsed = jobs.parse({"name": "one", "image": IMAGE})
    assert (parsed.tasks, parsed.max_concurrent, parsed.gpus_per_task, parsed.host_network) == (1, 1, 0, False)
    parsed = job(mounts=["/mnt/scratch/run1:/work:ro", {"source": "/mnt/data", "target": "/data"}], deadline="10m",
                 env={"A": "1"}, placement={"island": "a", "labels": {"rack": "r1"}}, host_network="true")
    assert parsed.command == ("sh", "-c", "echo $CONTAINER_INFRA_TASK_INDEX")
    assert parsed.mounts == (jobs.Mount("/mnt/scratch/run1", "/work", True), jobs.Mount("/mnt/data", "/data"))
    assert parsed.deadline == 600 and parsed.host_network
    assert parsed.constraints() == {"island": "a", "rack": "r1"}
    assert job(max_concurrent=20).max_concurrent == 8


@pytest.mark.parametrize(("spec", "words"), [
    ({"name": "Bad_Name"}, "job name 'Bad_Name' is not a DNS label"),
    ({"tasks": 0}, "tasks 0 is not a whole number of at least 1"),
    ({"gpus_per_task": -1}, "gpus_per_task -1"),
    ({"mounts": ["relative:/x"]}, "source 'relative' is not an absolute path"),
    ({"mounts": ["/a:/x", "/b:/x"]}, "at the same target"),
    ({"deadline": "soon"}, "deadline 'soon' is not a duration"),
    ({"env": {"1X": "a"}}, "env variable '1X'"),
    ({"env": {jobs.INDEX_VARIABLE: "a"}}, "is set by the toolkit"),
    ({"colour": "red"}, "keys ['colour'] a job does not take"),
    ({"placement": {"rack": "r1"}}, "placement {'rack': 'r1'} is not a mapping of"),
    ({"host_network": "maybe"}, "host_network 'maybe' is not true or false"),
])
def test_a_bad_spec_is_one_sentence_per_problem(spec, words):
    with pytest.raises(jobs.JobError) as caught:
        job(**spec)
    assert len(caught.value.errors) == 1 and words in caught.value.errors[0], caught.value.errors
    assert caught.value.errors[0].endswith(".")


def test_every_problem_is_reported_at_once():
    with pytest.raises(jobs.JobError) as caught:
        jobs.parse({"name": "", "image": "", "tasks": "x"})
    assert len(caught.value.errors) == 3


def test_a_job_the_cluster_can_run_has_no_error_and_mounts_follow_the_storage_spec():
    nodes = cluster()
    assert nodes[3].mounts == {"/mnt/scratch", "/mnt/data"} and nodes[0].mounts == {"/mnt/scratch"}
    assert jobs.placement_errors(job(mounts=["/mnt/scratch/out:/out"]), nodes) == []
    assert jobs.placement_errors(job(gpus_per_task=2, placement={"gpu": True}, mounts=["/mnt/data"]), nodes) == []


def test_more_gpus_per_task_than_any_node_has_is_refused():
    (error,) = jobs.placement_errors(job(gpus_per_task=3), cluster())
    assert error.startswith("The job asks 3 GPU(s) per task but the most any node it may run on has is 2;")


def test_a_constraint_no_node_matches_is_refused_naming_what_the_nodes_offer():
    (error,) = jobs.placement_errors(job(placement={"island": "c"}), cluster())
    assert error.startswith("No ready node matches the job's placement {'island': 'c'};")
    assert "island=a" in error and "island=b" in error
    nodes = cluster()
    for node in nodes:
        node.ready = node.hostname != "g1"  # the only GPU node is down
    assert jobs.placement_errors(job(placement={"gpu": True}), nodes)[0].startswith("No ready node")


def test_a_mount_not_mounted_on_the_chosen_nodes_is_refused_and_placement_can_fix_it():
    (error,) = jobs.placement_errors(job(mounts=["/mnt/data:/data"]), cluster())
    assert error.startswith("The mount source /mnt/data is not on a file system the storage role mounted on m1, w1, "
                            "w2;")
    assert jobs.placement_errors(job(mounts=["/mnt/data:/data"], placement={"nodegroup": "gpu"}), cluster()) == []
    assert jobs.placement_errors(job(mounts=["/mnt/scratchy"]), cluster())  # a prefix of the name is no mount
    (unknown,) = jobs.placement_errors(job(mounts=["/mnt/scratch"]), cluster(), mounts_known=False)
    assert "no storage spec" in unknown


def test_a_name_already_running_is_refused():
    (error,) = jobs.placement_errors(job(), cluster(), running={"sim"})
    assert error.startswith("A job named sim is already running; cancel it")


def test_the_swarm_service_is_a_replicated_job_with_everything_the_job_asks():
    spec = jobs.swarm_service(job(gpus_per_task=1, mounts=["/mnt/scratch:/s:ro"], host_network=True, deadline=60,
                                  env={"A": "1"}, placement={"nodegroup": "gpu", "gpu": True}), submitted=1000)
    assert spec["Mode"] == {"ReplicatedJob": {"MaxConcurrent": 4, "TotalCompletions": 8}}
    assert spec["Labels"] == {jobs.LABEL: "sim", jobs.LABEL_TASKS: "8", jobs.LABEL_SUBMITTED: "1000",
                              jobs.LABEL_DEADLINE: "1060"}
    task = spec["TaskTemplate"]
    assert task["RestartPolicy"] == {"Condition": "none"}
    assert task["Resources"]["Reservations"]["GenericResources"] == [
        {"DiscreteResourceSpec": {"Kind": "gpu", "Value": 1}}]
    assert task["Networks"] == [{"Target": "host"}]
    assert sorted(task["Placement"]["Constraints"]) == ["node.labels.gpu==true", "node.labels.nodegroup==gpu"]
    container = task["ContainerSpec"]
    assert container["Mounts"] == [{"Type": "bind", "Source": "/mnt/scratch", "Target": "/s", "ReadOnly": True}]
    assert container["Env"] == ["A=1", "CONTAINER_INFRA_TASK_INDEX={{if eq .Task.Slot .Node.ID}}0{{else}}"
                                "{{.Task.Slot}}{{end}}"]
    assert container["Command"] == ["sh", "-c", "echo $CONTAINER_INFRA_TASK_INDEX"]
    plain = jobs.swarm_service(job())["TaskTemplate"]
    assert "Networks" not in plain and "Resources" not in plain


def task(index, state, exit_code=None, updated="1", node="n1"):
    status = {"State": state, "ContainerStatus": {"ContainerID": "c" * 64}}
    if exit_code is not None:
        status["ContainerStatus"]["ExitCode"] = exit_code
    return jobs.task_view({"ID": f"t{index}{updated}", "Slot": index, "Status": status, "NodeID": node,
                           "UpdatedAt": updated}, {"n1": "w1"})


def test_counts_and_state_from_the_tasks():
    running = jobs.summarize("sim", 8, [task(0, "complete", 0), task(1, "running"), task(2, "starting")])
    assert (running["state"], running["pending"], running["running"], running["done"]) == ("running", 6, 1, 1)
    assert running["task_states"][0]["node"] == "w1" and running["task_states"][0]["exit_code"] == 0
    done = jobs.summarize("sim", 2, [task(0, "complete"), task(1, "complete")])
    assert done["state"] == "complete" and [t["exit_code"] for t in done["task_states"]] == [0, 0]
    failed = jobs.summarize("sim", 2, [task(0, "complete", 0), task(1, "failed", 3)])
    assert failed["state"] == "failed" and failed["task_states"][1]["exit_code"] == 3 and failed["finished"]
    # A failed task while others still run: the job is still running.
    assert jobs.summarize("sim", 3, [task(0, "failed", 3), task(1, "running")])["state"] == "running"
    # The newest task of an index counts.
    again = jobs.summarize("sim", 1, [task(0, "failed", 1, updated="1"), task(0, "complete", 0, updated="2")])
    assert again["state"] == "complete"


def test_a_job_past_its_deadline_is_reported_so():
    late = jobs.summarize("sim", 2, [task(0, "running")], now=200, deadline=100)
    assert late["state"] == "deadline-exceeded" and late["finished"]
    assert jobs.summarize("sim", 2, [task(0, "running")], now=50, deadline=100)["state"] == "running"


def test_progress_line_and_log_hint():
    summary = jobs.summarize("sim", 8, [task(0, "complete", 0), task(1, "running")])
    assert jobs.progress_line(summary) == "job sim: running, pending 6, running 1, done 1, failed 0 of 8"
    assert jobs.log_hint("sim", summary["task_states"][0]) == \
        "container-infra job logs sim --task 0 (node w1, container cccccccccccc)"


@pytest.mark.parametrize("version", ("1.28", kubernetes_validate.latest_version()))
def test_the_kubernetes_indexed_job_is_a_valid_object(version):
    manifest = jobs.kubernetes_job(job(gpus_per_task=2, mounts=["/mnt/scratch:/s"], host_network=True, deadline=90,
                                       env={"A": "1"}, placement={"nodegroup": "gpu", "island": "b"}), "batch")
    kubernetes_validate.validate(manifest, version, strict=True)
    spec = manifest["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 8, 4)
    assert spec["activeDeadlineSeconds"] == 90
    pod = spec["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] == {"magnum.openstack.org/nodegroup": "gpu", "container-infra/island": "b"}
    (container,) = pod["containers"]
    assert container["resources"] == {"limits": {"nvidia.com/gpu": 2}}
    assert pod["volumes"] == [{"name": "mount-0", "hostPath": {"path": "/mnt/scratch", "type": "Directory"}}]
    assert container["env"][-1]["name"] == jobs.INDEX_VARIABLE


def test_a_broken_manifest_fails_the_offline_validation():
    manifest = jobs.kubernetes_job(job())
    manifest["spec"]["completions"] = "eight"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize(("image", "parts"), [
    (IMAGE, ("10.80.0.2:5000", "container-infra/base", "latest")),
    ("localhost/app@sha256:ab", ("localhost", "app", "sha256:ab")),
    ("reg.example:5000/a/b", ("reg.example:5000", "a/b", "latest")),
    ("registry.example.org:5000/mirror/library/debian:12",
     ("registry.example.org:5000", "mirror/library/debian", "12")),
    ("registry.example.org/app:1@sha256:ab", ("registry.example.org", "app", "sha256:ab")),
    ("[fd00::2]:5000/app:1", ("[fd00::2]:5000", "app", "1")),
    # An upper-case first component is a host to Docker (repositories are lower-case).
    ("Registry/app", ("Registry", "app", "latest")),
])
def test_image_references_split_as_docker_splits_them(image, parts):
    assert split_reference(image) == parts
    assert image_reference.split(image) == parts


@pytest.mark.parametrize("image", ["debian", "debian:12", "user/app:1", "library/ubuntu@sha256:ab", "team/sub/app",
                                   "registry.example.org:5000"])
def test_a_name_without_a_registry_is_refused_not_sent_to_a_public_registry(image, monkeypatch):
    sentence = (f"The image {image} names no registry; give it as <registry host>/<repository>:<tag>, from the "
                "registry the nodes pull from.")
    with pytest.raises(ValueError, match=re.escape(sentence)):
        split_reference(image)
    assert not image_reference.names_registry(image)

    def asked(*_args, **_kwargs):
        raise AssertionError("a registry was asked for an image that names none")

    monkeypatch.setattr(registry_check.requests, "head", asked)
    monkeypatch.setattr(registry_check.requests, "get", asked)
    assert registry_check.image_error(image) == sentence


class Backend(JobsBackend):
    def nodes(self):
        return cluster()

    def list(self):
        return []


def test_a_job_whose_image_names_no_registry_is_one_sentence_before_any_submit():
    errors = Backend().check(job(image="debian:12"))
    assert errors == ["The image debian:12 names no registry; give it as <registry host>/<repository>:<tag>, from "
                      "the registry the nodes pull from."]


@pytest.mark.parametrize(("registry", "ok"), [
    ("registry.example.org:5000/mirror", True), ("registry.example.org", True), ("10.80.0.2:5000/", True),
    ("localhost:5000", True), ("[fd00::2]:5000", True),
    ("mirror", False), ("https://registry.example.org", False), ("registry.example.org/Mirror", False),
    ("registry.example.org:5000/mirror with space", False), ("", False),
])
def test_the_site_registry_must_be_one_docker_reads_as_a_host(registry, ok):
    said = image_reference.registry_error(registry)
    assert (said is None) == ok, said
    if not ok:
        assert said.startswith(f"container_infra_image_registry {registry!r} is not a registry or mirror as "
                               "host[:port][/path]")
        assert said.count(". ") == 0 and said.endswith(".")
    assert image_reference.under(registry, "library/ubuntu:24.04") == (
        f"{registry.rstrip('/')}/library/ubuntu:24.04" if registry else "")


def pod(index, phase, exit_code=None, node="k1"):
    status = {"phase": phase, "containerStatuses": [{"containerID": "containerd://abc", "state": (
        {"terminated": {"exitCode": exit_code}} if exit_code is not None else {"running": {}})}]}
    return {"metadata": {"name": f"sim-{index}-x", "annotations": {INDEX_ANNOTATION: str(index)},
                         "creationTimestamp": "2026-11-30T00:00:00Z"}, "spec": {"nodeName": node}, "status": status}


def test_an_indexed_jobs_pods_are_task_views_with_index_state_and_exit_code():
    views = [pod_view(pod(0, "Succeeded", 0)), pod_view(pod(1, "Failed", 7)), pod_view(pod(2, "Running"))]
    assert [(v["index"], v["state"], v["exit_code"]) for v in views] == [(0, "complete", 0), (1, "failed", 7),
                                                                         (2, "running", None)]
    assert views[0]["node"] == "k1" and views[0]["container"] == "abc"
    summary = jobs.summarize("sim", 4, views)
    assert (summary["state"], summary["pending"], summary["done"], summary["failed"]) == ("running", 1, 1, 1)
