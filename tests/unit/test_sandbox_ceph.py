"""The sandbox's Ceph as configured (no daemon runs here: tests/integration/test_storage.py runs them)."""

from __future__ import annotations

import configparser
import stat

import pytest

from container_infra.sandbox import bootstrap, ceph, configs, storagenet
from container_infra.sandbox.layout import STORAGE_SERVICE_ADDRESS, Layout
from container_infra.sandbox.manager import programs_reading
from container_infra.sandbox.supervisor import programs


@pytest.fixture
def layout(tmp_path):
    return Layout(tmp_path / "sandbox")


def ceph_conf(layout) -> configparser.RawConfigParser:
    ceph.write_conf(layout)
    parser = configparser.RawConfigParser(interpolation=None, strict=True)
    parser.read_string(ceph.conf_path(layout).read_text())
    return parser


def test_daemons_bind_the_storage_address_only_and_ipv4(layout):
    conf = ceph_conf(layout)["global"]
    assert conf["public_addr"] == conf["cluster_addr"] == STORAGE_SERVICE_ADDRESS
    assert conf["mon_host"] == f"[v2:{STORAGE_SERVICE_ADDRESS}:3300,v1:{STORAGE_SERVICE_ADDRESS}:6789]"
    assert conf["ms_bind_ipv6"] == "false"
    # No manager module that opens an HTTP port (dashboard, prometheus, restful).
    assert conf["mgr_initial_modules"] == "iostat"
    assert conf["auth_allow_insecure_global_id_reclaim"] == "false"
    assert {conf[f"auth_{kind}_required"] for kind in ("cluster", "service", "client")} == {"cephx"}


def test_every_path_is_inside_the_sandbox_directory(layout):
    conf = ceph_conf(layout)
    paths = [value for section in conf.sections() for key, value in conf[section].items()
             if key.endswith(("_data", "_dir", "_file", "_path", "socket", "keyring"))]
    assert len(paths) >= 10
    assert all(value.startswith(str(layout.root)) for value in paths), paths
    # The OSD's block file sits beside its data directory, not inside it (mkfs fails there).
    block = conf["osd"]["bluestore_block_path"]
    assert not block.startswith(conf["osd"]["osd_data"] + "/")


def test_fsid_is_made_once_and_the_conf_is_private_and_rewritten_only_on_change(layout):
    assert ceph.write_conf(layout) == [ceph.conf_path(layout)]
    first = ceph.fsid(layout)
    assert ceph.write_conf(layout) == []
    assert ceph.fsid(layout) == first
    assert stat.S_IMODE(ceph.conf_path(layout).stat().st_mode) == 0o600


def test_private_files_are_repaired_to_0600(layout, tmp_path):
    path = tmp_path / "keyring"
    assert ceph._write_private(path, "[client.x]\n")
    path.chmod(0o644)
    assert ceph._write_private(path, "[client.x]\n")  # same text, wrong mode: rewritten
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_client_conf_names_only_the_cluster_and_its_monitors():
    text = ceph.client_conf("f00")
    assert text == f"[global]\nfsid = f00\nmon_host = {ceph.mon_host()}\n"


def test_manila_runs_its_own_cephfs_driver_against_the_sandbox_ceph(layout):
    backend = configs.manila(layout, bootstrap.load_or_create_secrets(layout))["cephfsnative"]
    assert backend["share_driver"] == "manila.share.drivers.cephfs.driver.CephFSDriver"
    assert backend["cephfs_conf_path"] == str(ceph.conf_path(layout))
    assert backend["cephfs_auth_id"] == ceph.MANILA_AUTH_ID != "admin"
    assert backend["cephfs_filesystem_name"] == ceph.FS_NAME
    assert backend["cephfs_protocol_helper_type"] == "CEPHFS"


def test_ceph_daemons_run_in_the_foreground_after_the_seed_and_before_manila_share(layout):
    by_name = {program.name: program for program in programs(layout)}
    for kind in ("mon", "mgr", "osd", "mds"):
        program = by_name[f"ceph-{kind}"]
        assert program.phase == 3 and "-f" in program.command
        assert str(ceph.conf_path(layout)) in program.command
    assert by_name["manila-share"].phase == 3


def test_a_changed_ceph_conf_restarts_the_ceph_daemons(layout):
    names = programs_reading(layout, [ceph.conf_path(layout)])
    assert {"ceph-mon", "ceph-mgr", "ceph-osd", "ceph-mds"} <= set(names)


def test_storage_bridge_follows_the_compute_drivers_naming():
    assert storagenet.bridge_name("0123456789-abcdef") == "sbx-b0123456789"
    assert len(storagenet.bridge_name("f" * 36)) <= 15
    assert storagenet.service_interface() == f"{STORAGE_SERVICE_ADDRESS}/24"
