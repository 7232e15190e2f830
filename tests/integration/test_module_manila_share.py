"""os_manila_share through `ansible localhost -m` against Manila's CephFS driver on the sandbox's Ceph."""

from __future__ import annotations

import pytest
from ansible_runner import ansible_module, assert_one_clear_sentence

from container_infra.sandbox.layout import STORAGE_SERVICE_ADDRESS


def share_args(name, **extra):
    base = {"cloud": "sandbox", "name": name, "size": 1, "share_type": "cephfs", "share_proto": "CEPHFS",
            "metadata": {"owner": "modb"}, "poll_interval": 1,
            "access_rules": [{"access_type": "cephx", "access_to": f"{name}-user", "access_level": "rw"}]}
    base.update(extra)
    return base


def test_share_lifecycle(unique_name, osc):
    name = unique_name
    try:
        predicted = ansible_module("os_manila_share", share_args(name), check=True, diff=True)
        assert predicted["changed"] and predicted["plan"]["create"]
        created = ansible_module("os_manila_share", share_args(name), diff=True)
        assert created["changed"], created.get("msg")
        share = created["share"]
        assert share["status"] == "available" and share["size"] == 1
        assert share["monitors"] == [f"{STORAGE_SERVICE_ADDRESS}:6789"]
        assert share["path"].startswith("/volumes/_nogroup/") and share["fs_name"]
        # Issue 15, finding 2: a task without no_log shows the result, so no key is in it.
        assert share["access_rules"][0]["state"] == "active" and "access_key" not in share["access_rules"][0]
        (key,) = [rule["Access Key"] for rule in osc.json("share", "access", "list", name)]
        assert key and key not in str(created) and key not in str(predicted)
        assert not ansible_module("os_manila_share", share_args(name))["changed"]

        update = share_args(name, size=2, metadata={"owner": "modb", "tier": "scratch"},
                            access_rules=[{"access_type": "cephx", "access_to": f"{name}-user", "access_level": "ro"}])
        planned = ansible_module("os_manila_share", update, check=True)
        assert planned["changed"] and planned["plan"]["resize"] == 2
        updated = ansible_module("os_manila_share", update)
        assert updated["changed"] and updated["share"]["size"] == 2
        assert updated["share"]["metadata"] == {"owner": "modb", "tier": "scratch"}
        assert [r["access_level"] for r in updated["share"]["access_rules"]] == ["ro"]
        assert not ansible_module("os_manila_share", update)["changed"]

        refused = ansible_module("os_manila_share", share_args(name, share_proto="NFS", access_rules=[]))
        assert refused["failed"] and "cannot change in place" in refused["msg"]

        assert ansible_module("os_manila_share", {"cloud": "sandbox", "name": name, "state": "absent"})["changed"]
        assert not ansible_module("os_manila_share", {"cloud": "sandbox", "name": name, "state": "absent"})["changed"]
    finally:
        osc.run("share", "delete", name, check=False)


@pytest.mark.parametrize("extra,message", [
    ({"share_proto": "SMB"}, "share_proto 'SMB' is not one of CEPHFS, GLUSTERFS, NFS"),
    ({"size": 0}, "size must be at least 1"),
    ({"access_rules": [{"access_type": "ip", "access_to": "10.0.0.0/24"}]}, "takes cephx rules only"),
    ({"size": None}, "size is not given"),
    ({"include_access_keys": True}, "include_access_keys returns the cephx access keys, so the task must set no_log"),
])
def test_bad_input(unique_name, extra, message):
    result = ansible_module("os_manila_share", share_args(unique_name, **extra))
    assert_one_clear_sentence(result, message)



def assert_nothing_refused_left(osc, name):
    """The share may stay (it is whole), but no access rule in error is left behind."""
    rules = osc.json("share", "access", "list", name)
    assert [rule for rule in rules if rule["State"] == "error"] == [], rules


def test_a_share_type_the_cloud_does_not_have_makes_nothing(unique_name, osc):
    result = ansible_module("os_manila_share", share_args(unique_name, share_type="no-such-type"))
    assert_one_clear_sentence(result, "share_type 'no-such-type' does not exist", "choose one of: cephfs")
    assert unique_name not in {share["Name"] for share in osc.json("share", "list")}


def test_a_cephx_user_ceph_refuses_is_reported_and_removed(unique_name, osc):
    # Ceph's own admin identity: its volumes module refuses to hand it out.
    try:
        result = ansible_module("os_manila_share", share_args(unique_name, access_rules=[
            {"access_type": "cephx", "access_to": "admin"}]))
        assert_one_clear_sentence(result, "rule for admin went to error", "forbidden", "choose another cephx user")
        assert_nothing_refused_left(osc, unique_name)
    finally:
        osc.run("share", "delete", "--wait", unique_name, check=False)


def test_a_cephx_user_of_another_project_is_reported_and_removed(unique_name, osc, osc_admin):
    user = f"{unique_name}-shared"
    theirs = f"{unique_name}-admins"
    try:
        # The operator's project holds the cephx user first.
        osc_admin.run("share", "create", "CEPHFS", "1", "--name", theirs, "--share-type", "cephfs", "--wait")
        osc_admin.run("share", "access", "create", theirs, "cephx", user)
        result = ansible_module("os_manila_share", share_args(unique_name, access_rules=[
            {"access_type": "cephx", "access_to": user}]))
        assert_one_clear_sentence(result, f"rule for {user} went to error", "another project already holds")
        assert_nothing_refused_left(osc, unique_name)
    finally:
        osc.run("share", "delete", "--wait", unique_name, check=False)
        osc_admin.run("share", "delete", "--wait", theirs, check=False)


def test_no_secret_reaches_the_output_or_a_file_others_can_read_even_at_vvvv(unique_name, osc, tmp_path):
    """Issue 15 (secret scan): the cloud's password given inline and the share's cephx key, through a play at
    -vvvv that makes a share without no_log (the result is shown), takes the key under no_log and writes the
    keyring: neither secret in the output, Ansible's log or any file others may read."""
    import os
    import stat
    import subprocess
    from pathlib import Path

    import yaml
    from ansible_runner import BIN, REPO, ansible_env
    from openstack.config import loader

    auth = loader.OpenStackConfig().get_one("sandbox").config["auth"]
    password = auth["password"]
    inline = {"auth": {k: v for k, v in auth.items() if v}, "region_name": "RegionOne", "interface": "public"}
    user = f"{unique_name}-user"
    keyring = tmp_path / "out" / f"ceph.client.{user}.keyring"
    keyring.parent.mkdir()
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "The share, its result shown", "register": "made",
         "os_manila_share": share_args(unique_name, cloud=inline)},
        {"name": "The key, under no_log", "register": "keys", "no_log": True,
         "os_manila_share": {"cloud": inline, "name": unique_name, "state": "query", "include_access_keys": True}},
        {"name": "The keyring", "no_log": True, "ansible.builtin.copy": {
            "dest": str(keyring), "mode": "0600",
            "content": "[client." + user + "]\n\tkey = {{ keys.share.access_rules | selectattr('access_to', 'eq', '"
                       + user + "') | map(attribute='access_key') | first }}\n"}},
        {"name": "Show what was made", "ansible.builtin.debug": {"var": "made"}}]}]
    playbook = tmp_path / "play.yml"
    playbook.touch(mode=0o600)  # the operator's own file with the password: theirs to keep private
    playbook.write_text(yaml.safe_dump(play))
    env = ansible_env(json_results=False, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
                      ANSIBLE_LOG_PATH=str(tmp_path / "ansible.log"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
                      ANSIBLE_REMOTE_TEMP=str(tmp_path / "tmp"), ANSIBLE_INVENTORY_ENABLED="host_list")
    try:
        done = subprocess.run([str(BIN / "ansible-playbook"), "-vvvv", "-i", "localhost,", "-c", "local",
                               "-e", f"ansible_python_interpreter={BIN / 'python'}", str(playbook)],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        (key,) = [rule["Access Key"] for rule in osc.json("share", "access", "list", unique_name)]
        assert key and password
        assert f"key = {key}\n" in keyring.read_text() and stat.S_IMODE(keyring.stat().st_mode) == 0o600
        output = done.stdout + done.stderr + (tmp_path / "ansible.log").read_text()
        assert "access_key" not in done.stdout.split("TASK [Show what was made]")[1]
        for secret in (key, password):
            assert secret not in output
        for where, _, files in os.walk(tmp_path):
            for name in files:
                path = Path(where, name)
                holds = any(secret in path.read_text(errors="replace") for secret in (key, password))
                assert not holds or not path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH), path
    finally:
        osc.run("share", "delete", unique_name, check=False)
