"""The cluster role without a cloud: it refuses, before it makes anything, a spec it cannot carry out
(the refusal comes before the role's first cloud call); the Swarm stack's template as it renders; the
nodes it adds to the running play; what a delete removes from the cluster's directory."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_runner import BIN, REPO, report_of, run

from container_infra.inventory import host_groups, hostvars_of


def run_play(tmp_path: Path, play: dict, **env: str) -> subprocess.CompletedProcess:
    """One play on localhost with the project's ansible.cfg; its report in JSON on stdout."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False} | play]))
    return run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                "-e", f"ansible_python_interpreter={BIN / 'python'}", str(playbook)], timeout=300, **env)


def run_role(tmp_path: Path, spec: dict, cloud: str | None = "no-such-cloud", **env: str):
    """The cluster role with ``spec``; ``cloud`` None leaves the role's default."""
    variables = {"container_infra_cluster_spec": spec,
                 "container_infra_cluster_inventory_dir": str(tmp_path / "inv"),
                 "container_infra_cluster_ssh_key_file": str(tmp_path / "key")}
    if cloud is not None:
        variables["container_infra_cluster_cloud"] = cloud
    return run_play(tmp_path, {"tasks": [{"ansible.builtin.include_role": {"name": "container_infra_cluster"},
                                          "vars": variables}]}, **env)


def failures(done: subprocess.CompletedProcess) -> list[tuple[str, str]]:
    report = report_of(done.stdout)
    return [(task["task"]["name"], result.get("msg", "")) for play in report["plays"] for task in play["tasks"]
            for result in task["hosts"].values() if result.get("failed")]


CHECK = "Check the Swarm's nodegroups and provider networks"
SWARM = {"name": "hs-test", "driver": "heat-swarm", "image": "img", "flavor": "bm.standard",
         "fixed_network": "private", "node_count": 1}


@pytest.mark.parametrize(("change", "words"), [
    ({"networks": [{"network": "lln", "nodegroups": ["gpu"]}]},
     "networks[lln].nodegroups: gpu is not a nodegroup of cluster hs-test (it has default-master, default-worker)"),
    ({"nodegroups": [{"name": "gpu", "flavor": "bm.gpu", "role": "master"}]},
     "nodegroups[gpu]: role 'master': a Swarm without Magnum takes extra nodegroups of workers only"),
])
def test_heat_swarm_refuses_what_its_stack_cannot_build_before_making_anything(tmp_path, change, words):
    done = run_role(tmp_path, SWARM | change)
    assert done.returncode != 0
    (task, message), = failures(done)
    assert task == f"container_infra_cluster : {CHECK}"
    assert message.startswith(f"cluster hs-test: {words}"), message
    assert not (tmp_path / "key").exists() and not (tmp_path / "inv").exists()


def test_heat_swarm_takes_networks_placed_by_role_and_nodegroup(tmp_path):
    done = run_role(tmp_path, SWARM | {
        "nodegroups": [{"name": "gpu", "flavor": "bm.gpu", "node_count": 1}],
        "networks": [{"network": "hte"}, {"network": "lln", "roles": ["worker"], "nodegroups": ["gpu"]}]})
    # Past the check: the run goes on to its first cloud call, for a cloud that does not exist here.
    (task, message), = failures(done)
    assert task != f"container_infra_cluster : {CHECK}" and "no-such-cloud was not found" in message


MAGNUM = {"name": "k-test", "template": {"name": "k-test-t1", "coe": "kubernetes", "image": "img",
                                        "external_network": "public", "labels": {"kube_tag": "v1.30.4"}},
          "node_count": 2, "nodegroups": [{"name": "gpu", "flavor": "bm.gpu", "node_count": 1,
                                           "node_taints": [{"key": "gpu", "effect": "NoSchedule"}]}],
          "networks": [{"network": "hte"}, {"network": "lln", "roles": ["worker"]}]}


@pytest.mark.parametrize(("spec", "typo"), [
    (MAGNUM | {"template": MAGNUM["template"] | {"imgae": "img"}}, "imgae"),
    (MAGNUM | {"nodegroups": [{"name": "gpu", "flavour": "bm.gpu"}]}, "flavour"),
    (MAGNUM | {"nodegroups": [{"name": "gpu", "node_taints": [{"key": "gpu", "efect": "NoSchedule"}]}]}, "efect"),
    (MAGNUM | {"networks": [{"network": "lln", "role": ["worker"]}]}, "role"),
    (SWARM | {"nodegroups": [{"name": "gpu", "flavor": "bm.gpu", "node_cout": 2}]}, "node_cout"),
    (MAGNUM | {"node_cout": 2}, "node_cout"),
])
def test_a_typo_in_a_nested_spec_key_fails_before_anything_is_made(tmp_path, spec, typo):
    done = run_role(tmp_path, spec)
    assert done.returncode != 0
    (task, message), = failures(done)
    assert task.startswith("container_infra_cluster : Validating arguments against arg spec"), task
    assert f".{typo}. Supported parameters include" in message, message
    assert not (tmp_path / "key").exists() and not (tmp_path / "inv").exists()


@pytest.mark.parametrize(("spec", "words"), [
    ({}, "missing required arguments: name found in container_infra_cluster_spec"),
    (MAGNUM | {"node_count": "three"}, "argument 'node_count' is of type str found in 'container_infra_cluster_spec'"),
    (SWARM | {"nodegroups": [{"name": "gpu", "flavor": "bm.gpu", "node_count": "x"}]},
     "argument 'node_count' is of type str found in 'container_infra_cluster_spec -> nodegroups'"),
    (MAGNUM | {"networks": {"network": "hte"}}, "argument 'networks' is of type dict found in"),
])
def test_an_empty_spec_or_a_value_of_the_wrong_type_fails_before_anything_is_made(tmp_path, spec, words):
    done = run_role(tmp_path, spec)
    assert done.returncode != 0
    (task, message), = failures(done)
    assert task.startswith("container_infra_cluster : Validating arguments against arg spec"), task
    assert words in message, message
    assert not (tmp_path / "key").exists() and not (tmp_path / "inv").exists()


@pytest.mark.parametrize(("spec", "first_cloud_call"), [
    (MAGNUM | {"node_count": 0}, "Cluster template"),
    (SWARM | {"node_count": 0}, "The Nova keypair as it is"),
])
def test_node_count_zero_is_a_spec_the_role_carries_out(tmp_path, spec, first_cloud_call):
    """No worker in the default group is allowed (Magnum takes 0, a Swarm of managers only works): the spec's
    checks pass it and the run goes on to its first cloud call (here to a cloud that does not exist)."""
    done = run_role(tmp_path, spec)
    (task, message), = failures(done)
    assert task == f"container_infra_cluster : {first_cloud_call}" and "no-such-cloud" in message, (task, message)


def test_a_magnum_network_on_a_nodegroup_the_cluster_lacks_is_refused_not_skipped(tmp_path):
    """As for a Swarm without Magnum (issue 15, finding 13): the same check, before anything is made."""
    done = run_role(tmp_path, MAGNUM | {"networks": [{"network": "lln", "nodegroups": ["gpux"]}]})
    assert done.returncode != 0
    (task, message), = failures(done)
    assert task == "container_infra_cluster : Check where the cluster's provider networks go", task
    assert message.startswith(
        "cluster k-test: networks[lln].nodegroups: gpux is not a nodegroup of cluster k-test "
        "(it has default-master, default-worker, gpu); name one of those or add the nodegroup"), message
    assert not (tmp_path / "key").exists() and not (tmp_path / "inv").exists()


@pytest.mark.parametrize("name", ["..", "../../roles", ".hidden"])
def test_a_cluster_name_that_is_no_directory_name_is_refused(tmp_path, name):
    """Issue 15, finding 7: the name is the cluster's directory, which a delete removes."""
    for spec in (SWARM, MAGNUM):
        done = run_role(tmp_path, spec | {"name": name})
        assert done.returncode != 0
        (task, message), = failures(done)
        assert task == "container_infra_cluster : Check the cluster's name", task
        assert message.startswith(f"cluster name {name!r} is not valid: it must start with a letter"), message


def test_a_swarm_delete_against_a_cloud_it_cannot_reach_keeps_the_inventory(tmp_path):
    """Issue 15, finding 7: "cloud no-such-cloud was not found" is no "stack gone"."""
    directory = tmp_path / "inv"
    directory.mkdir()
    (directory / "hosts.yml").write_text("---\n")
    variables = {"container_infra_cluster_spec": SWARM, "container_infra_cluster_state": "absent",
                 "container_infra_cluster_cloud": "no-such-cloud",
                 "container_infra_cluster_inventory_dir": str(directory),
                 "container_infra_cluster_ssh_key_file": str(tmp_path / "key")}
    done = run_play(tmp_path, {"tasks": [{"ansible.builtin.include_role": {"name": "container_infra_cluster"},
                                          "vars": variables}]})
    assert done.returncode != 0
    (task, message), = failures(done)
    assert task == "container_infra_swarm_stack : The stack as it is" and "no-such-cloud" in message, (task, message)
    assert (directory / "hosts.yml").exists()


def test_no_cloud_named_is_refused_in_one_sentence(tmp_path):
    """The production default names no cloud (the sandbox's inventory sets "sandbox")."""
    done = run_role(tmp_path, MAGNUM, cloud=None, OS_CLOUD="")
    (task, message), = failures(done)
    assert task == "container_infra_cluster : Check the cloud"
    assert message.startswith("container_infra_cluster_cloud is empty and OS_CLOUD is not set"), message


def test_the_spec_template_reaches_the_template_module_whole(tmp_path):
    done = run_role(tmp_path, MAGNUM)
    # Past the spec's check: the template task is the first cloud call, for a cloud that does not exist here.
    (task, message), = failures(done)
    assert task == "container_infra_cluster : Cluster template" and "no-such-cloud was not found" in message, message


def test_a_real_clouds_nodes_have_their_host_keys_checked(tmp_path):
    """Issue 15, finding 10: no global opt-out; each cluster's known_hosts beside its inventory, keys learnt
    on first contact and checked after; the example inventory's SSH keys are git-ignored."""
    import configparser
    import shlex

    config = configparser.ConfigParser()
    config.read(REPO / "ansible.cfg")
    assert config.getboolean("defaults", "host_key_checking", fallback=True)
    for path in ("inventories/example/.ssh/id_ed25519", "inventories/mycloud/.ssh/id_ed25519"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0, path

    where = tmp_path / "my clusters" / "k8s-prod"
    out = tmp_path / "args"
    done = run_play(tmp_path, {
        "vars_files": [str(REPO / "roles" / "container_infra_cluster" / "vars" / "main.yml")],
        "vars": {"container_infra_cluster_inventory_dir": str(where), "container_infra_cluster_spec": {}},
        "tasks": [{"ansible.builtin.copy": {
            "content": "{{ container_infra_cluster_ssh_host_vars.ansible_ssh_common_args }}",
            "dest": str(out), "mode": "0600"}}]})
    assert done.returncode == 0, done.stdout + done.stderr
    assert shlex.split(out.read_text()) == [
        "-o", f"UserKnownHostsFile={where}/known_hosts", "-o", "StrictHostKeyChecking=accept-new"]
    for tasks in ("present.yml", "heat_swarm_present.yml"):
        text = (REPO / "roles" / "container_infra_cluster" / "tasks" / tasks).read_text()
        # The spec's host_vars come after, so that the sandbox's opt-out still wins for its clusters.
        assert "{{ container_infra_cluster_ssh_host_vars\n" in text, tasks


STACK_ROLE = REPO / "roles" / "container_infra_swarm_stack"


def render_stack_template(tmp_path: Path, variables: dict) -> dict:
    """The Swarm stack's template as the role renders it (its filters, Ansible's templating)."""
    out = tmp_path / "swarm_cluster.yaml"
    source = STACK_ROLE / "templates" / "swarm_cluster.yaml.j2"
    done = run_play(tmp_path, {
        "vars": yaml.safe_load((STACK_ROLE / "defaults" / "main.yml").read_text()) | variables,
        "tasks": [{"ansible.builtin.copy": {
            "content": f"{{{{ lookup('ansible.builtin.template', '{source}') }}}}",
            "dest": str(out), "mode": "0600"}}],
    })
    assert done.returncode == 0, done.stdout + done.stderr
    return yaml.safe_load(out.read_text())


def test_stack_template_has_a_group_per_nodegroup_with_its_networks(tmp_path):
    template = render_stack_template(tmp_path, {
        "container_infra_swarm_stack_manager_count": 3, "container_infra_swarm_stack_worker_count": 2,
        "container_infra_swarm_stack_manager_flavor": "bm.small", "container_infra_swarm_stack_worker_flavor": "bm.big",
        "container_infra_swarm_stack_provider_networks": ["hte"],
        "container_infra_swarm_stack_worker_networks": ["lln"],
        "container_infra_swarm_stack_nodegroups": [
            {"name": "gpu-a", "flavor": "bm.gpu", "node_count": 4, "image": "cuda", "networks": ["lln", "ib"]}]})
    groups = template["resources"]
    assert sorted(groups) == ["swarm_masters", "swarm_nodegroup_gpu_a", "swarm_nodes"]

    def node(group):
        assert groups[group]["type"] == "OS::Heat::ResourceGroup"
        return groups[group]["properties"]["count"], groups[group]["properties"]["resource_def"]["properties"]

    count, managers = node("swarm_masters")
    assert count == 3 and managers["flavor"] == "bm.small" and managers["provider_networks"] == ["hte"]
    assert managers["image"] == {"get_param": "image"}
    assert managers["name"]["list_join"][1][1] == "manager"
    assert managers["metadata"]["map_merge"][1] == {"container_infra_nodegroup": "default-master"}
    count, workers = node("swarm_nodes")
    assert count == 2 and workers["flavor"] == "bm.big" and workers["provider_networks"] == ["hte", "lln"]
    count, gpu = node("swarm_nodegroup_gpu_a")
    assert count == 4 and gpu["flavor"] == "bm.gpu" and gpu["image"] == "cuda"
    assert gpu["provider_networks"] == ["hte", "lln", "ib"]
    assert gpu["name"]["list_join"][1][1] == "gpu-a"
    assert gpu["metadata"]["map_merge"][1] == {"container_infra_nodegroup": "gpu-a"}
    assert set(template["parameters"]) == {"image", "key_name", "network", "subnet", "external_network",
                                           "availability_zone", "metadata"}


def test_a_delete_removes_only_what_the_role_wrote(tmp_path):
    forget = REPO / "roles" / "container_infra_cluster" / "tasks" / "forget.yml"
    written, shared = tmp_path / "clusters" / "a", tmp_path / "clusters" / "b"
    for directory in (written, shared):
        (directory / "credentials").mkdir(parents=True)
        (directory / "credentials" / "config").write_text("kubeconfig")
        (directory / "hosts.yml").write_text("---\n")
        (directory / "known_hosts").write_text("10.0.0.5 ssh-ed25519 AAAA\n")  # a new cluster may reuse it
    (shared / "notes.md").write_text("the operator's own")
    done = run_play(tmp_path, {"tasks": [
        {"ansible.builtin.include_tasks": str(forget), "vars": {"container_infra_cluster_inventory_dir": str(d)}}
        for d in (written, shared, tmp_path / "clusters" / "never-written")]})
    assert done.returncode == 0, done.stdout[-3000:]
    assert not written.exists()
    assert sorted(p.name for p in shared.iterdir()) == ["notes.md"]


def test_the_nodes_join_the_run_with_every_host_var_and_group(tmp_path):
    add_hosts = REPO / "roles" / "container_infra_cluster" / "tasks" / "add_hosts.yml"
    inventory = {"all": {"children": {
        "cluster_c1": {"hosts": {
            "c1-m0": {"ansible_host": "10.0.0.5", "ansible_user": "core", "container_infra_role": "master",
                      "container_infra_networks": {"hte": {"ip": "10.1.0.5"}}, "my_own_var": [1, 2]},
            "c1-w0": {"ansible_host": "10.0.0.6", "container_infra_role": "worker",
                      "ansible_ssh_common_args": "-o ProxyCommand=\"ssh -W %h:%p core@10.0.0.5\""}}},
        "masters": {"hosts": {"c1-m0": {}}}, "workers": {"hosts": {"c1-w0": {}}}, "gpu": {"hosts": {}}}}}
    done = run_play(tmp_path, {"tasks": [
        {"ansible.builtin.include_tasks": str(add_hosts),
         "vars": {"container_infra_cluster_inventory": {"hostvars": hostvars_of(inventory),
                                                        "host_groups": host_groups(inventory)}}},
        {"ansible.builtin.assert": {"that": [
            "groups['masters'] == ['c1-m0'] and groups['cluster_c1'] | sort == ['c1-m0', 'c1-w0']",
            "hostvars['c1-m0'].ansible_user == 'core' and hostvars['c1-m0'].my_own_var == [1, 2]",
            "hostvars['c1-m0'].container_infra_networks.hte.ip == '10.1.0.5'",
            "hostvars['c1-w0'].ansible_user is not defined",
            "'ProxyCommand' in hostvars['c1-w0'].ansible_ssh_common_args"]}}]})
    assert done.returncode == 0, done.stdout[-3000:]


def test_an_inline_clouds_secrets_are_never_printed(tmp_path):
    """Issue 15, finding 1: a password in an inline `cloud` dict (documented as allowed), on a failed
    authentication, is in neither the failure message nor the invocation shown at -vvvv."""
    import http.server
    import threading

    class Keystone(http.server.BaseHTTPRequestHandler):
        def _refuse(self):
            body = b'{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made ' \
                   b'requires authentication."}}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _refuse

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Keystone)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    password, secret = "Pa55-word-7f3c9e", "app-cred-secret-51d0a2"
    try:
        playbook = tmp_path / "play.yml"
        playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [
            {"name": "Status with an inline cloud", "os_container_infra_status": {
                "name": "k-test", "cloud": {"auth_type": "v3password", "auth": {
                    "auth_url": f"http://127.0.0.1:{server.server_address[1]}/v3", "username": "u",
                    "password": password, "project_name": "p", "user_domain_name": "Default",
                    "project_domain_name": "Default"}, "extra": {"application_credential_secret": secret}}}}]}]))
        done = run([str(BIN / "ansible-playbook"), "-vvvv", "-i", "localhost,", "-c", "local",
                    "-e", f"ansible_python_interpreter={BIN / 'python'}", str(playbook)], timeout=300,
                   ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")
    finally:
        server.shutdown()
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "authenticating to the inline cloud definition (auth_url http://127.0.0.1:" in output, output[-3000:]
    assert password not in output and secret not in output
    assert "********" in output  # the invocation shows where they were


FAKE_STACK_FACTS = '''#!/usr/bin/python
import json
from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={"cloud": {"type": "raw"}, "stack": {"type": "str"},
                                          "nested_depth": {"type": "int"}, "missing_ok": {"type": "bool"}})
    module.exit_json(changed=False, found=True, stack=json.loads(%r))


main()
'''


# Heat as the wait sees it once settled: the stack in ``status`` (the stand-in status module).
FAKE_STACK_STATUS = '''#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={"cloud": {"type": "raw"}, "name": {"type": "str"}, "stack": {"type": "bool"},
                                          "started": {"type": "float"}, "absent_is_settled": {"type": "bool"}})
    module.exit_json(changed=False, found=True, settled=True, status=%r, status_reason="r", progress="p")


main()
'''


def run_stack_role(tmp_path: Path, stack: dict, wait: bool = True, settles_as: str = "UPDATE_COMPLETE",
                   ) -> subprocess.CompletedProcess:
    """The stack role against a Heat that holds ``stack`` (a stand-in os_stack_facts) and that a wait finds
    ``settles_as`` (a stand-in os_container_infra_status): the cloud does not exist, so a create or an update
    (in the background) fails at its first call, which the role reports from the background job."""
    library = tmp_path / "library"
    library.mkdir(parents=True)
    (library / "os_stack_facts.py").write_text(FAKE_STACK_FACTS % json.dumps({"name": "hs-test"} | stack))
    (library / "os_container_infra_status.py").write_text(FAKE_STACK_STATUS % settles_as)
    variables = {"container_infra_swarm_stack_cloud": "no-such-cloud", "container_infra_swarm_stack_name": "hs-test",
                 "container_infra_swarm_stack_image": "img", "container_infra_swarm_stack_manager_flavor": "bm",
                 "container_infra_swarm_stack_worker_flavor": "bm", "container_infra_swarm_stack_key_name": "k",
                 "container_infra_swarm_stack_network": "private", "container_infra_swarm_stack_timeout": 1,
                 "container_infra_swarm_stack_wait": wait, "container_infra_swarm_stack_poll_interval": 1,
                 "container_infra_swarm_stack_render_dir": str(tmp_path / "rendered")}
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"ansible.builtin.include_role": {"name": "container_infra_swarm_stack"}, "vars": variables}]}]))
    # The digest as an extra var: the stand-in's tag matches it whatever the role's templates hold.
    return run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                "-e", f"ansible_python_interpreter={BIN / 'python'}", "-e", "container_infra_swarm_stack_digest=spec-t",
                str(playbook)], timeout=300, ANSIBLE_LIBRARY=f"{library}:{REPO / 'library'}")


def ran_tasks(done: subprocess.CompletedProcess) -> list[str]:
    return [task["task"]["name"].removeprefix("container_infra_swarm_stack : ")
            for play in report_of(done.stdout)["plays"] for task in play["tasks"]
            if not all(result.get("skipped") for result in task["hosts"].values())]


def test_a_whole_stack_with_the_specs_digest_is_left_alone(tmp_path):
    done = run_stack_role(tmp_path, {"status": "UPDATE_COMPLETE", "tags": ["container-infra", "spec-t"]})
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Create or update the stack (in the background)" not in ran_tasks(done)


@pytest.mark.parametrize("status", ["CREATE_FAILED", "UPDATE_FAILED"])
def test_a_failed_stack_with_the_specs_digest_is_updated_again_not_taken_as_done(tmp_path, status):
    """Issue 15, finding 6: the digest tag said "nothing to do" whatever state Heat left the stack in."""
    done = run_stack_role(tmp_path, {"status": status, "status_reason": "No valid host was found",
                                     "tags": ["container-infra", "spec-t"]})
    assert done.returncode != 0
    # The update went to the background; the wait collected its own failure.
    (task, message), = failures(done)
    assert task == "container_infra_swarm_stack : The background create or update's own result", task
    assert "no-such-cloud" in message, message


def test_a_pass_that_does_not_wait_starts_the_update_and_returns(tmp_path):
    done = run_stack_role(tmp_path, {"status": "UPDATE_FAILED", "tags": ["container-infra", "spec-t"]}, wait=False)
    assert done.returncode == 0, failures(done)
    tasks = ran_tasks(done)
    assert "Create or update the stack (in the background)" in tasks
    assert not [name for name in tasks if name.startswith(("Wait for", "Check that Heat finished"))], tasks


def test_a_stack_heat_did_not_finish_whole_stops_the_role(tmp_path):
    """The wait settled on a rolled-back stack (the stand-in's background job fails too: the first failure
    reported is the job's, so the check is shown with a Heat that refused nothing)."""
    done = run_stack_role(tmp_path, {"status": "UPDATE_FAILED", "tags": ["container-infra", "spec-t"]},
                          settles_as="ROLLBACK_COMPLETE")
    assert done.returncode != 0
    assert [task for task, _ in failures(done)] == [
        "container_infra_swarm_stack : The background create or update's own result"]


def test_a_stack_in_progress_is_waited_for_then_planned_again(tmp_path):
    """Another run's change under way: the waiting pass waits, then reads the stack again (the stand-in still
    says UPDATE_IN_PROGRESS, so the second look refuses in one sentence); the pass that does not wait leaves it."""
    stack = {"status": "UPDATE_IN_PROGRESS", "status_reason": "Stack UPDATE started", "tags": ["container-infra"]}
    done = run_stack_role(tmp_path, stack)
    assert done.returncode != 0
    tasks = ran_tasks(done)
    waited = tasks.index("Wait for the change under way, a progress line per poll")
    assert waited < tasks.index("The stack as that change left it"), tasks
    (task, message), = failures(done)
    assert task == "container_infra_swarm_stack : Check that the stack is in a state this run can act on", task
    assert message.startswith("stack hs-test is UPDATE_IN_PROGRESS (Stack UPDATE started): another run or an "
                              "operator is changing it now"), message
    left = run_stack_role(tmp_path / "no-wait", stack, wait=False)
    assert left.returncode == 0, failures(left)
    assert "Create or update the stack (in the background)" not in ran_tasks(left)


def test_a_stack_being_deleted_is_refused_in_one_sentence(tmp_path):
    done = run_stack_role(tmp_path, {"status": "DELETE_FAILED", "status_reason": "Stack DELETE started",
                                     "tags": ["container-infra", "spec-t"]})
    assert done.returncode != 0
    (task, message), = failures(done)
    assert task == "container_infra_swarm_stack : Check that the stack is in a state this run can act on", task
    assert message.startswith("stack hs-test is DELETE_FAILED (Stack DELETE started): Heat cannot update a stack "
                              "that was being deleted; delete it again"), message
    assert message.count(". ") == 0, message
