"""os_container_infra, os_container_infra_template and os_container_infra_config through real
`ansible-playbook` / `ansible localhost -m` against the sandbox cloud, with both Magnum driver eras.

The two lifecycle playbooks (one per driver era) are long and mostly wait for the cloud, so they run
in the background from the first test on, while the shorter tests run; the last tests collect them.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import uuid

import pytest
import requests
from ansible_runner import BIN, REPO, ansible_env, ansible_module, assert_one_clear_sentence, host_results

from container_infra.cloud.connection import Cloud
from container_infra.magnum import read

PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "module_container_infra_lifecycle.yml"
PREFIX = f"moda-{uuid.uuid4().hex[:6]}"
ERAS = {"heat": "fedora-coreos-sandbox", "cluster_api": "ubuntu-capi-sandbox"}
# The background lifecycle playbook runs once per era, both at once.
LIFECYCLE_ERAS = dict(ERAS)
# Each era's playbook took 8-10 minutes side by side on the 2-core reference machine.
LIFECYCLE_LIMIT_S = 1200


def run_module(module: str, args: dict, *, check: bool = False, diff: bool = False, timeout: int = 600) -> dict:
    """``ansible localhost -m module -a '<json>'`` with the venv's interpreter; the module's result."""
    return ansible_module(module, args, check=check, diff=diff, timeout=timeout, interpreter=True)


@pytest.fixture(scope="module")
def cloud(sandbox):
    return Cloud.from_params({"cloud": "sandbox"})


@pytest.fixture(scope="module")
def templates(cloud):
    """A keypair and a cluster template per driver era, made through the API (the template module has
    its own test)."""
    magnum = cloud.magnum()
    keypair = f"{PREFIX}-kp"
    cloud.sdk.compute.create_keypair(name=keypair)
    made = {}
    try:
        for era, image in ERAS.items():
            made[era] = magnum.cluster_templates.create(
                name=f"{PREFIX}-{era}", coe="kubernetes", image_id=image, external_network_id="public",
                fixed_network="private", fixed_subnet="private-subnet", flavor_id="bm.standard",
                master_flavor_id="bm.standard", server_type="bm", keypair_id=keypair).name
        yield made
    finally:
        for name in made.values():
            for _ in range(30):
                try:
                    magnum.cluster_templates.delete(name)
                    break
                except Exception as exc:
                    if "could not be found" in str(exc):
                        break
                    time.sleep(2)  # still in use by a cluster being deleted
        cloud.sdk.compute.delete_keypair(keypair, ignore_missing=True)


def clusters_named(cloud, name: str) -> list[dict]:
    return [c._info for c in read(cloud.magnum().clusters.list) if c.name == name]


def delete_clusters(cloud, name: str, timeout: float = 300) -> None:
    magnum = cloud.magnum()
    for found in clusters_named(cloud, name):
        try:
            magnum.clusters.delete(found["uuid"])
        except Exception as exc:
            if "could not be found" not in str(exc):
                raise
    deadline = time.monotonic() + timeout
    while clusters_named(cloud, name):
        assert time.monotonic() < deadline, f"clusters named {name} not deleted within {timeout} s"
        time.sleep(2)


# ---------------------------------------------------------------------------------------- lifecycles
@pytest.fixture(scope="module")
def lifecycles(sandbox, cloud, tmp_path_factory):
    """The lifecycle playbook, started once per driver era, in parallel."""
    runs = {}
    for era, image in LIFECYCLE_ERAS.items():
        creds = tmp_path_factory.mktemp(f"creds-{era}")
        command = [str(BIN / "ansible-playbook"), str(PLAYBOOK),
                   "-e", f"moda_prefix={PREFIX}-{era[:4]}", "-e", f"moda_image={image}",
                   "-e", f"moda_driver_kind={era}", "-e", f"moda_creds={creds}"]
        out = tmp_path_factory.mktemp(f"out-{era}") / "stdout.json"
        handle = out.open("w")
        process = subprocess.Popen(command, cwd=REPO, env=ansible_env(), stdout=handle, stderr=subprocess.PIPE,
                                   text=True)
        runs[era] = {"process": process, "out": out, "handle": handle, "started": time.monotonic()}
    yield runs
    for era, run in runs.items():
        if run["process"].poll() is None:
            run["process"].kill()
            run["process"].wait()
            # A killed playbook did not reach its own clean-up: do it here.
            delete_clusters(cloud, f"{PREFIX}-{era[:4]}-c")
            magnum = cloud.magnum()
            for template in magnum.cluster_templates.list():
                if template.name.startswith(f"{PREFIX}-{era[:4]}-"):
                    magnum.cluster_templates.delete(template.uuid)
            cloud.sdk.compute.delete_keypair(f"{PREFIX}-{era[:4]}-kp", ignore_missing=True)
        run["handle"].close()


def test_lifecycle_playbooks_start(lifecycles):
    """Both eras' lifecycles run in the background while the shorter tests below run."""
    for era, run in lifecycles.items():
        assert run["process"].poll() in (None, 0), f"{era} lifecycle stopped at once"


# ---------------------------------------------------------------------------------------- template module
def test_template_module_lifecycle(sandbox, cloud):
    name = f"{PREFIX}-tmpl"
    args = {"cloud": "sandbox", "name": name, "coe": "kubernetes", "image": "ubuntu-capi-sandbox",
            "external_network": "public", "flavor": "bm.standard", "master_flavor": "bm.standard", "server_type": "bm",
            "labels": {"a": 1}}
    try:
        predicted = run_module("os_container_infra_template", args, check=True)
        assert predicted["changed"] and predicted["template"] == {}
        assert cloud.magnum().cluster_templates.list() is not None
        assert name not in {t.name for t in cloud.magnum().cluster_templates.list()}

        created = run_module("os_container_infra_template", args)
        assert created["changed"] and created["template"]["labels"] == {"a": "1"}
        again = run_module("os_container_infra_template", args)
        assert not again["changed"]

        # The flavor by id is the same flavor.
        flavor_id = cloud.sdk.compute.find_flavor("bm.standard").id
        assert not run_module("os_container_infra_template", {**args, "flavor": flavor_id})["changed"]

        changed_args = {**args, "labels": {"a": "2"}, "dns_nameserver": "127.0.0.53"}
        check = run_module("os_container_infra_template", changed_args, check=True, diff=True)
        assert check["changed"]
        assert check["diff"]["after"] == {"labels": {"a": "2"}, "dns_nameserver": "127.0.0.53"}
        updated = run_module("os_container_infra_template", changed_args)
        assert updated["changed"] and updated["template"]["dns_nameserver"] == "127.0.0.53"
        assert not run_module("os_container_infra_template", changed_args)["changed"]

        bad = run_module("os_container_infra_template", {**args, "name": f"{name}-x", "image": "no-such-image"})
        assert_one_clear_sentence(bad, "image 'no-such-image' names no image")
        assert f"{name}-x" not in {t.name for t in cloud.magnum().cluster_templates.list()}

        deleted = run_module("os_container_infra_template", {"cloud": "sandbox", "name": name, "state": "absent"})
        assert deleted["changed"]
        assert not run_module("os_container_infra_template",
                              {"cloud": "sandbox", "name": name, "state": "absent"})["changed"]
    finally:
        with contextlib.suppress(Exception):  # already gone
            cloud.magnum().cluster_templates.delete(name)


# ---------------------------------------------------------------------------------------- bad input
def _auth(**overrides):
    auth = {"auth_url": "http://127.0.0.1:5000/v3", "username": "demo", "password": "wrong-password",
            "project_name": "demo", "user_domain_name": "Default", "project_domain_name": "Default"}
    auth.update(overrides)
    return auth


@pytest.fixture(scope="module")
def duplicate_clusters(cloud, templates):
    """Two clusters with one name, made through the API (Magnum does not keep names unique)."""
    name = f"{PREFIX}-dup"
    magnum = cloud.magnum()
    for _ in range(2):
        magnum.clusters.create(name=name, cluster_template_id=templates["cluster_api"], node_count=1)
    yield name
    delete_clusters(cloud, name)


@pytest.fixture(scope="module")
def revoked_token(cloud):
    """A real token of the demo user, revoked: what an expired token looks like to the cloud."""
    import openstack

    other = openstack.connect(cloud="sandbox")
    token = other.session.get_token()
    auth_url = other.config.get_auth_args()["auth_url"].rstrip("/")
    response = requests.delete(f"{auth_url}/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token},
                               timeout=30)
    assert response.status_code == 204, response.text
    return {"auth_url": auth_url, "token": token, "project_name": "demo", "project_domain_name": "Default"}


def bad_input_cases(templates, duplicate, token):
    capi = templates["cluster_api"]
    base = {"cloud": "sandbox", "cluster_template": capi}
    return [
        ("unknown template", "os_container_infra", {**base, "name": f"{PREFIX}-bad1", "cluster_template": "nope"},
         ["cluster_template 'nope' names no cluster template"]),
        ("unknown flavor", "os_container_infra", {**base, "name": f"{PREFIX}-bad2", "flavor": "bm.nope"},
         ["flavor 'bm.nope' names no flavor"]),
        ("unknown nodegroup flavor", "os_container_infra",
         {**base, "name": f"{PREFIX}-bad3", "nodegroups": [{"name": "g", "flavor": "bm.nope"}]},
         ["nodegroups[g].flavor 'bm.nope' names no flavor"]),
        ("unknown network", "os_container_infra", {**base, "name": f"{PREFIX}-bad4", "fixed_network": "nonet"},
         ["fixed_network 'nonet' names no network"]),
        ("negative node_count", "os_container_infra", {**base, "name": f"{PREFIX}-bad5", "node_count": -1},
         ["node_count must be 0 or more, not -1"]),
        ("zero masters", "os_container_infra", {**base, "name": f"{PREFIX}-bad6", "master_count": 0},
         ["master_count must be 1 or more"]),
        ("below nodegroup min", "os_container_infra",
         {**base, "name": f"{PREFIX}-bad7", "nodegroups": [{"name": "g", "node_count": 1, "min_node_count": 2}]},
         ["nodegroups[g].node_count 1 is below its min_node_count 2"]),
        ("bad labels", "os_container_infra",
         {**base, "name": f"{PREFIX}-bad8", "labels": {"kube_tag": {"nested": "x"}}},
         ["labels.kube_tag must be a string"]),
        ("bad taint", "os_container_infra",
         {**base, "name": f"{PREFIX}-bad9", "nodegroups": [{"name": "g", "node_taints": [{"key": "k"}]}]},
         ["node_taints entries need a key and an effect"]),
        ("bad name", "os_container_infra", {**base, "name": "9-lives"}, ["'9-lives' is not a valid cluster name"]),
        ("no template to create", "os_container_infra", {"cloud": "sandbox", "name": f"{PREFIX}-bad10"},
         ["give cluster_template"]),
        ("several clusters, one name", "os_container_infra", {**base, "name": duplicate, "node_count": 1},
         ["2 clusters have that name", "delete or rename the duplicates"]),
        ("several clusters, absent", "os_container_infra", {"cloud": "sandbox", "name": duplicate, "state": "absent"},
         ["2 clusters have that name"]),
        ("wrong password", "os_container_infra", {"auth": _auth(), "name": f"{PREFIX}-bad11", "state": "query"},
         ["the cloud rejected the credentials", "may have expired"]),
        ("expired token", "os_container_infra",
         {"auth": token, "auth_type": "v3token", "name": f"{PREFIX}-bad12", "state": "query"},
         ["the cloud rejected the credentials"]),
        ("unreachable cloud", "os_container_infra",
         {"auth": _auth(auth_url="http://127.0.0.1:9/v3"), "name": f"{PREFIX}-bad13", "state": "query"},
         # The URL sits in the no_log auth dict, so Ansible masks it in the message.
         ["cannot connect to", "/auth/tokens", "reachable"]),
        ("unknown cloud", "os_container_infra", {"cloud": "moda-nowhere", "name": f"{PREFIX}-bad14"},
         ["Cloud moda-nowhere was not found"]),
        ("config of a missing cluster", "os_container_infra_config",
         {"cloud": "sandbox", "cluster": f"{PREFIX}-bad15", "dest": "/tmp/moda-never"}, ["there is no such cluster"]),
        ("template without coe", "os_container_infra_template",
         {"cloud": "sandbox", "name": f"{PREFIX}-bad16", "image": "ubuntu-capi-sandbox"},
         ["coe is required to create cluster template"]),
        ("negative nodegroup count", "os_container_infra",
         {**base, "name": f"{PREFIX}-bad17", "nodegroups": [{"name": "g", "node_count": -2}]},
         ["nodegroups[g].node_count must be 0 or more, not -2"]),
        ("nodegroup min above max", "os_container_infra",
         {**base, "name": f"{PREFIX}-bad18",
          "nodegroups": [{"name": "g", "node_count": 2, "min_node_count": 3, "max_node_count": 2}]},
         ["nodegroups[g].min_node_count 3 is above its max_node_count 2"]),
        ("unknown keypair", "os_container_infra", {**base, "name": f"{PREFIX}-bad19", "keypair": "moda-nokp"},
         ["keypair 'moda-nokp' names no keypair"]),
        ("unknown subnet", "os_container_infra", {**base, "name": f"{PREFIX}-bad20", "fixed_subnet": "nosubnet"},
         ["fixed_subnet 'nosubnet' names no subnet"]),
        ("bad label key", "os_container_infra",
         {**base, "name": f"{PREFIX}-bad21", "labels": {"bad key": "x"}}, ["labels has an invalid key 'bad key'"]),
    ]


# The kinds of bad input the modules issue names, each with the case (here or in a sibling test) that covers it.
NAMED_IN_THE_ISSUE = {
    "unknown template": "unknown template", "unknown flavor": "unknown flavor",
    "negative counts": "negative node_count", "node_count below a nodegroup's min": "below nodegroup min",
    "bad labels": "bad labels", "unknown network": "unknown network",
    "a name matching several clusters": "several clusters, one name", "expired credentials": "expired token",
    "an unreachable cloud": "unreachable cloud",
    # fixed_ip outside the subnet: test_module_server_interface.py; an API that times out: below.
}


def test_bad_input_fails_in_one_sentence_and_makes_nothing(cloud, templates, duplicate_clusters, revoked_token,
                                                          tmp_path):
    cases = bad_input_cases(templates, duplicate_clusters, revoked_token)
    tasks = [{"name": case, module: args, "ignore_errors": True} for case, module, args, _ in cases]
    playbook = tmp_path / "bad_input.yml"
    playbook.write_text(json.dumps([{"name": "Bad input", "hosts": "localhost", "gather_facts": False,
                                     "vars": {"ansible_python_interpreter": sys.executable}, "tasks": tasks}]))
    done = subprocess.run([str(BIN / "ansible-playbook"), str(playbook)], cwd=REPO, env=ansible_env(),
                          capture_output=True, text=True, timeout=600)
    results = {r["_task"]: r for r in host_results(done.stdout)}
    assert len({case for case, *_ in cases}) == len(cases) >= 20
    assert set(NAMED_IN_THE_ISSUE.values()) <= {case for case, *_ in cases}
    for case, _module, _args, expected in cases:
        assert case in results, f"{case}: no result ({done.stderr[-1000:]})"
        assert_one_clear_sentence(results[case], *expected)
    # Nothing half-made: no cluster or template from these cases exists.
    magnum = cloud.magnum()
    names = {c.name for c in read(magnum.clusters.list)} | {t.name for t in read(magnum.cluster_templates.list)}
    assert not {n for n in names if n.startswith(f"{PREFIX}-bad")}
    assert len(clusters_named(cloud, duplicate_clusters)) == 2


def test_api_timeout_is_one_sentence(cloud):
    from container_infra.sandbox.faults import FaultClient

    with FaultClient() as faults:
        faults.set_latency(4000, service="container-infra")
        try:
            result = run_module("os_container_infra", {"cloud": "sandbox", "name": f"{PREFIX}-slow",
                                                       "state": "query", "api_timeout": 1})
        finally:
            faults.set_latency(0, service="container-infra")
    assert_one_clear_sentence(result, "in time", "api_timeout")


# ---------------------------------------------------------------------------------------- faults
def test_503_during_creation_then_rerun_converges_without_duplicate(cloud, templates):
    from container_infra.sandbox.faults import FaultClient

    name = f"{PREFIX}-f503"
    args = {"cloud": "sandbox", "name": name, "cluster_template": templates["cluster_api"], "node_count": 1,
            "poll_interval": 2, "timeout": 300}
    try:
        with FaultClient() as faults:
            # Magnum accepts the creation, but the answer the client gets is a 503.
            with faults.injected(service="container-infra", method="POST", path="/v1/clusters", status=503,
                                 count=1, when="after"):
                failed = run_module("os_container_infra", args)
            assert_one_clear_sentence(failed, f"creating cluster {name} failed", "503", "run again")
            # The re-run finds the cluster Magnum made, rides over 503s while it polls, and waits for it.
            with faults.injected(service="container-infra", method="GET", path="/v1/clusters/*", status=503,
                                 count=2):
                rerun = run_module("os_container_infra", args)
        assert not rerun.get("failed"), rerun.get("msg")
        assert rerun["cluster"]["status"] == "CREATE_COMPLETE"
        assert len(clusters_named(cloud, name)) == 1
        assert not run_module("os_container_infra", args)["changed"]
    finally:
        delete_clusters(cloud, name)


def test_create_failed_is_reported_then_recreated(cloud, templates):
    name = f"{PREFIX}-ffail"
    args = {"cloud": "sandbox", "name": name, "cluster_template": templates["heat"], "node_count": 1,
            "poll_interval": 2, "timeout": 300}
    try:
        failed = run_module("os_container_infra", {**args, "labels": {"sandbox_fail_reason": "injected disk failure"},
                                                   "merge_labels": True})
        assert_one_clear_sentence(failed, f"cluster {name} is CREATE_FAILED", "injected disk failure")
        assert failed["cluster"]["faults"]
        assert failed["driver_kind"] == "heat"

        fixed = run_module("os_container_infra", args)
        assert fixed["changed"], fixed.get("msg")
        assert fixed["actions"] == [f"delete cluster {name} (CREATE_FAILED) and create it again"]
        assert fixed["cluster"]["status"] == "CREATE_COMPLETE"
        assert len(clusters_named(cloud, name)) == 1

        gone = run_module("os_container_infra", {"cloud": "sandbox", "name": name, "state": "absent"})
        assert gone["changed"] and not clusters_named(cloud, name)
    finally:
        delete_clusters(cloud, name)


# ---------------------------------------------------------------------------------------- lifecycles, collected
@pytest.mark.parametrize("era", list(LIFECYCLE_ERAS))
def test_cluster_lifecycle(lifecycles, era):
    """Create, re-run, check mode, resize 3->5->2, nodegroup add (re-run, check mode), resize and remove,
    an in-place refusal that leaves the cluster alone, template upgrade, kubeconfig, delete, delete again:
    every step asserted inside the playbook."""
    run = lifecycles[era]
    try:
        _, stderr = run["process"].communicate(
            timeout=max(30, LIFECYCLE_LIMIT_S - (time.monotonic() - run["started"])))
    except subprocess.TimeoutExpired:
        run["process"].kill()
        raise AssertionError(f"the {era} lifecycle did not finish in {LIFECYCLE_LIMIT_S} s") from None
    run["handle"].flush()
    output = run["out"].read_text()
    results = host_results(output)
    expected_to_fail = {"Differences that cannot be applied in place (expected to fail)"}
    failures = [f"{r['_task']}: {r.get('msg')}" for r in results
                if r.get("failed") and r["_task"] not in expected_to_fail and not r["_task"].startswith("Clean up")]
    assert not failures, failures
    assert run["process"].returncode == 0, stderr[-2000:]
    assert [r["_task"] for r in results if r["_task"] == "Deleted once"], "the playbook stopped early"

