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
        assert share["access_rules"][0]["state"] == "active" and share["access_rules"][0]["access_key"]
        assert "access_key" not in str(created["diff"])
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
])
def test_bad_input(unique_name, extra, message):
    result = ansible_module("os_manila_share", share_args(unique_name, **extra))
    assert_one_clear_sentence(result, message)

