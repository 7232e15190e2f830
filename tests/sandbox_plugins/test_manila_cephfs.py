"""The emulated CephFS native share driver, called the way manila-share calls it.

Runs only where Manila imports (the services' environment); the toolkit's own environment skips it.

Each service keeps global state (oslo.config options, the oslo.service backend), so run each of the
three plugin test files in its own process, with the services' Python plus the services' test
requirements (testtools, oslotest, webtest, ddt, wsgi-intercept), for example:
``python -m pytest tests/sandbox_plugins/test_neutron_mech.py``.
"""

import base64
import os
import uuid
from unittest import mock

import pytest

pytest.importorskip("manila.share.driver")

import manila.share.driver
from container_infra_sandbox import manila_cephfs
from manila import exception
from manila.share import configuration
from oslo_config import cfg

BACKEND = "plg_cephfs"


@pytest.fixture
def drv(tmp_path):
    conf = cfg.CONF
    conf([], project="manila", default_config_files=[])
    conf.set_override("state_path", str(tmp_path))
    config = configuration.Configuration(manila.share.driver.share_opts, config_group=BACKEND)
    conf.set_override("driver_handles_share_servers", False, group=BACKEND)
    drv = manila_cephfs.CephFSNativeEmulatedDriver(configuration=config, private_storage=mock.Mock())
    drv.message_api = mock.Mock()
    drv.do_setup(None)
    drv.check_for_setup_error()
    yield drv
    conf.reset()


def share(proto="CEPHFS", project="demo", size=1, group=None):
    instance_id = str(uuid.uuid4())
    return {
        "id": instance_id,
        "share_id": str(uuid.uuid4()),
        "share_proto": proto,
        "size": size,
        "project_id": project,
        "share_group_id": group,
    }


def rule(access_to, access_type="cephx", level="rw"):
    return {
        "access_id": str(uuid.uuid4()),
        "access_type": access_type,
        "access_to": access_to,
        "access_level": level,
    }


def grant(drv, shr, *rules):
    return drv.update_access(None, shr, list(rules), list(rules), [], [])


def test_share_root_defaults_under_state_path(drv, tmp_path):
    assert drv._root == str(tmp_path / "shares")


def test_create_exports_like_cephfs_native_and_delete_removes(drv, tmp_path):
    shr = share()
    loc = drv.create_share(None, shr)
    assert loc == {
        "path": f"mon1:6789,mon2:6789,mon3:6789:/volumes/_nogroup/{shr['id']}/{shr['id']}",
        "is_admin_only": False,
        "metadata": {},
    }
    assert (tmp_path / "shares" / shr["id"]).is_dir()
    assert drv.get_optional_share_creation_data(shr) == {"metadata": {"__mount_options": "fs=cephfs"}}
    grouped = share(group="g1")
    assert "/volumes/g1/" in drv.create_share(None, grouped)["path"]
    drv.delete_share(None, shr)
    assert not (tmp_path / "shares" / shr["id"]).exists()
    drv.delete_share(None, shr)  # idempotent


def test_other_protocols_are_refused_as_the_real_driver_does(drv):
    with pytest.raises(exception.ShareBackendException, match="Share protocol NFS is not supported"):
        drv.create_share(None, share(proto="NFS"))


def test_cephx_rules_get_a_stable_ceph_looking_key(drv):
    a, b = share(), share()
    drv.create_share(None, a)
    drv.create_share(None, b)
    r1, r2 = rule("alice"), rule("alice", level="ro")
    key1 = grant(drv, a, r1)[r1["access_id"]]["access_key"]
    key2 = grant(drv, b, r2)[r2["access_id"]]["access_key"]
    assert key1 == key2
    raw = base64.b64decode(key1)
    assert len(raw) == 28 and key1.startswith("AQ")
    # Revoke and grant again: Ceph keeps the entity, so the key stays the same.
    drv.update_access(None, a, [], [], [r1], [])
    r3 = rule("alice")
    assert grant(drv, a, r3)[r3["access_id"]]["access_key"] == key1
    r4 = rule("bob")
    assert grant(drv, a, r4)[r4["access_id"]]["access_key"] != key1


@pytest.mark.parametrize(
    "bad",
    [
        rule("10.0.0.0/24", access_type="ip"),
        rule("someone", access_type="user"),
        rule("manila"),
        rule("admin"),
        rule("client.alice"),
    ],
)
def test_refused_rules_go_to_error_with_a_user_message(drv, bad):
    shr = share()
    drv.create_share(None, shr)
    assert grant(drv, shr, bad) == {bad["access_id"]: {"state": "error"}}
    drv.message_api.create.assert_called_once()


def test_cephx_id_of_another_project_is_refused(drv):
    mine, theirs = share(project="demo"), share(project="other")
    drv.create_share(None, mine)
    drv.create_share(None, theirs)
    grant(drv, mine, rule("carol"))
    r = rule("carol")
    assert grant(drv, theirs, r) == {r["access_id"]: {"state": "error"}}


def test_recovery_mode_resyncs_to_the_full_rule_list(drv):
    shr = share()
    drv.create_share(None, shr)
    grant(drv, shr, rule("dave"), rule("erin"))
    keep = rule("erin")
    updates = drv.update_access(None, shr, [keep], [], [], [])
    assert set(updates) == {keep["access_id"]}
    assert set(drv._load()["shares"][shr["id"]]["access"]) == {"erin"}


def test_extend_shrink_and_capacity(drv):
    shr = share(size=2)
    drv.create_share(None, shr)
    drv._update_share_stats()
    stats = drv.get_share_stats()
    assert stats["storage_protocol"] == "CEPHFS"
    assert stats["vendor_name"] == "Ceph"
    assert stats["driver_handles_share_servers"] is False
    assert stats["snapshot_support"] is True
    pool = stats["pools"][0]
    assert pool["pool_name"] == "cephfs"
    assert pool["allocated_capacity_gb"] == 2
    assert pool["free_capacity_gb"] == 102400 - 2
    drv.extend_share(shr, 5)
    drv.shrink_share(shr, 1)
    assert drv._load()["shares"][shr["id"]]["size"] == 1
    with open(os.path.join(drv._share_dir(shr["id"]), "big"), "wb") as f:
        f.truncate(2 * 1024**3)  # sparse: 2 GiB of apparent size, no disk used
    with pytest.raises(exception.ShareShrinkingPossibleDataLoss):
        drv.shrink_share(shr, 1)


def test_snapshot_and_share_from_snapshot(drv):
    shr = share()
    drv.create_share(None, shr)
    with open(os.path.join(drv._share_dir(shr["id"]), "data.txt"), "w") as f:
        f.write("hello")
    snap = {"id": str(uuid.uuid4()), "snapshot_id": str(uuid.uuid4()), "share_instance_id": shr["id"]}
    assert drv.create_snapshot(None, snap) == {"provider_location": snap["snapshot_id"]}
    clone = share()
    update = drv.create_share_from_snapshot(None, clone, snap)
    assert update["status"] == "available"
    assert update["export_locations"][0]["path"].endswith(f"/{clone['id']}/{clone['id']}")
    with open(os.path.join(drv._share_dir(clone["id"]), "data.txt")) as f:
        assert f.read() == "hello"
    drv.delete_snapshot(None, snap)
    assert not os.path.exists(drv._snapshot_dir(shr["id"], snap["snapshot_id"]))


def test_ensure_shares_reports_missing_directories(drv):
    ok, gone = share(), share()
    drv.create_share(None, ok)
    updates = drv.ensure_shares(None, [ok, gone])
    assert updates[ok["id"]]["export_locations"]["path"].endswith(f"{ok['id']}/{ok['id']}")
    assert updates[gone["id"]] == {"status": "error"}
