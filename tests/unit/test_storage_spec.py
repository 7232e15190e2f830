"""The storage role's logic without a cloud: the spec's checks (one sentence each), placement, what is asked
of Manila, each node's mounts (ceph-fuse and kernel options, files, networks), the node module's fstab
handling, and os_manila_share's query, ID look-up and rule removal."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from container_infra import storage
from container_infra.modules import os_manila_share

REPO = Path(__file__).resolve().parents[2]
SHARE_ID = "0b7a7a3e-1f0c-4f59-9a57-6f2d4a1c9b10"
EXPORT = f"10.80.0.2:6789:/volumes/_nogroup/{SHARE_ID}/5d1c"


def load_mount_module():
    path = REPO / "library" / "container_infra_mount.py"
    spec = importlib.util.spec_from_file_location("container_infra_mount", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["container_infra_mount"] = module
    spec.loader.exec_module(module)
    return module


mount_module = load_mount_module()


def ceph(**more) -> dict:
    entry = {"name": "scratch", "kind": "cephfs", "path": "/mnt/scratch", "cephfs": {"share": "scratch"}}
    return entry | more


def one_error(entries) -> str:
    errors = storage.check_spec(entries, "c1")
    assert len(errors) == 1, errors
    assert errors[0].endswith(".") and errors[0].count(". ") == 0, errors[0]
    return errors[0]


@pytest.mark.parametrize(("entries", "words"), [
    ([ceph(path="mnt/scratch")], "storage[scratch]: path 'mnt/scratch' is not an absolute"),
    ([ceph(path="/mnt/../etc")], "is not an absolute, normalised mount point"),
    ([ceph(path="/")], "other than /"),
    ([ceph(), ceph(name="other")], "storage[other]: path /mnt/scratch is also the mount point of storage[scratch]"),
    ([ceph(), ceph(path="/mnt/b")], "the name scratch is used twice"),
    ([ceph(kind="nfs")], "kind 'nfs' is not one of cephfs, gluster, beegfs"),
    ([ceph(cephfs={})], "cephfs.share is missing"),
    ([ceph(cephfs={"share": "s", "create": True})], "cephfs.create needs cephfs.size"),
    ([ceph(cephfs={"share": "s", "client": "nfs"})], "cephfs.client 'nfs' is not fuse or kernel"),
    ([ceph(cephfs={"share": "s", "user": "a b"})], "is not a cephx user name"),
    ([ceph(roles=["gpu"])], "role 'gpu' is not master or worker"),
    ([{"name": "b", "kind": "beegfs", "path": "/mnt/b", "beegfs": {"version": "9", "mgmtd_host": "m", "auth": False}}],
     "BeeGFS version '9' is not one this role knows (7.4, 8)"),
])
def test_a_bad_spec_is_one_sentence_naming_the_entry_and_the_fix(entries, words):
    assert words in one_error(entries)


def test_an_absent_entry_frees_its_path_and_a_good_spec_has_no_error():
    assert storage.check_spec([ceph(state="absent"), ceph(name="new")], "c1") == []


def test_node_plan_refuses_before_placing_and_places_by_role_and_nodegroup():
    with pytest.raises(storage.StorageError, match=r"^cluster c1: storage\[scratch\]: path 'x'"):
        storage.node_plan([ceph(path="x")], "c1", "worker", "default-worker")
    entries = [ceph(), ceph(name="gpu", path="/mnt/gpu", nodegroups=["gpu-a100"]),
               ceph(name="m", path="/mnt/m", roles=["master"])]
    names = lambda plan: [e["name"] for e in plan]  # noqa: E731
    assert names(storage.node_plan(entries, "c1", "worker", "default-worker")) == ["scratch"]
    assert names(storage.node_plan(entries, "c1", "worker", "gpu-a100")) == ["scratch", "gpu"]
    assert names(storage.node_plan(entries, "c1", "master", "default-master")) == ["scratch", "m"]
    (entry,) = storage.node_plan([ceph()], "c1", "worker", "w")
    assert entry["cephfs"]["user"] == "container-infra-c1-scratch" and entry["cephfs"]["client"] == "fuse"
    assert entry["state"] == "present" and entry["cluster"] == "c1"


def test_manila_is_asked_once_per_cluster_and_share_whatever_the_nodes():
    plans = [storage.node_plan([ceph()], cluster, "worker", "w") for cluster in ("c1", "c1", "c1", "c2")]
    requests = storage.manila_requests(plans)
    assert [r["key"] for r in requests] == ["c1/scratch", "c2/scratch"]
    assert requests[0]["user"] == "container-infra-c1-scratch" and requests[0]["create"] is False


def requests(**ceph_more):
    return storage.manila_requests([storage.node_plan([ceph(cephfs={"share": "scratch"} | ceph_more)], "c1",
                                                      "worker", "w")])


@pytest.mark.parametrize(("found", "words"), [
    ({"share": {}}, "share scratch does not exist in Manila; create it"),
    ({"share": {"share_proto": "NFS", "status": "available"}}, "share scratch is a NFS share; the cephfs kind"),
    ({"share": {"share_proto": "CEPHFS", "status": "error"}}, "share scratch is in status error, not available"),
    ({"failed": True, "msg": "reading share 'scratch' failed: 401."}, "Manila could not be asked about share scratch"),
])
def test_what_manila_holds_is_judged_in_one_sentence_per_share(found, words):
    (error,) = storage.share_errors(requests(), [found])
    assert words in error and error.startswith("storage[scratch] of cluster c1: ") and error.count(". ") == 0


def test_a_missing_share_the_toolkit_creates_and_an_available_one_pass():
    assert storage.share_errors(requests(create=True, size=1), [{"share": {}}]) == []
    assert storage.share_errors(requests(), [{"share": {"share_proto": "CEPHFS", "status": "available"}}]) == []


def manila_share(key: str = "AQB-secret==") -> dict:
    location = os_manila_share.parse_export_location(EXPORT, {"__mount_options": "fs=cephfs"})
    return {"id": SHARE_ID, "share_proto": "CEPHFS", "status": "available",
            "export_locations": [dict(location, preferred=True, is_admin_only=False)],
            "access_rules": [{"id": "rule-1", "access_type": "cephx", "access_to": "container-infra-c1-scratch",
                              "access_level": "rw", "state": "active", "access_key": key}]}


NETWORKS = {"private": {"cidr": "10.0.0.0/24", "mac": "fa:16:3e:00:00:01"},
            "storage": {"cidr": "10.80.0.0/24", "mac": "fa:16:3e:00:00:02", "ip": "10.80.0.11"}}


def node(entry: dict, networks=None, secrets=False, share=None):
    plan = storage.node_plan([entry], "c1", "worker", "w")
    reqs = storage.manila_requests([plan])
    facts = storage.manila_facts(reqs, [{"share": share or manila_share()}])
    return storage.node_mounts(plan, facts, NETWORKS if networks is None else networks, "n1", secrets)


def test_export_location_and_file_system_name_come_from_the_projects_parser():
    facts = storage.manila_facts(requests(), [{"share": manila_share()}])
    assert facts["c1/scratch"] | {"access_key": None} == {
        "id": SHARE_ID, "monitors": ["10.80.0.2:6789"], "path": f"/volumes/_nogroup/{SHARE_ID}/5d1c",
        "fs_name": "cephfs", "access_rule_id": "rule-1", "access_key": None, "user": "container-infra-c1-scratch",
        "size": None, "share_type": None}


def test_a_fuse_mount_has_its_own_ceph_conf_a_private_keyring_and_an_fstab_line():
    out = node(ceph(options=["noatime"], owner="core", mode="0775"), secrets=True)
    assert out["errors"] == [] and out["nic_networks"] == ["storage"]
    (mount,) = out["mounts"]
    cid = storage.ceph_cluster_id(["10.80.0.2:6789"])
    conf, keyring = mount["files"]
    assert conf == {"path": f"/etc/ceph/{cid}.conf", "mode": "0644", "content": storage.ceph_conf(["10.80.0.2:6789"])}
    assert "mon_host = 10.80.0.2:6789" in conf["content"]
    assert keyring["path"] == f"/etc/ceph/{cid}.client.container-infra-c1-scratch.keyring"
    assert keyring["mode"] == "0600" and "key = AQB-secret==" in keyring["content"]
    assert (mount["src"], mount["fstype"], mount["binary"]) == ("none", "fuse.ceph", "ceph-fuse")
    assert mount["options"].split(",") == [
        "ceph.id=container-infra-c1-scratch", f"ceph.conf=/etc/ceph/{cid}.conf", f"ceph.keyring={keyring['path']}",
        f"ceph.client_mountpoint=/volumes/_nogroup/{SHARE_ID}/5d1c", "ceph.client_fs=cephfs", "noatime", "_netdev"]
    assert (mount["owner"], mount["mode"]) == ("core", "0775")


def test_without_secrets_the_key_is_a_placeholder():
    (mount,) = node(ceph())["mounts"]
    assert "AQB-secret" not in str(mount)


def test_the_kernel_client_uses_a_secret_file_and_fs():
    (mount,) = node(ceph(cephfs={"share": "scratch", "client": "kernel"}), secrets=True)["mounts"]
    assert mount["src"] == f"10.80.0.2:6789:/volumes/_nogroup/{SHARE_ID}/5d1c" and mount["fstype"] == "ceph"
    options = mount["options"].split(",")
    assert options[0] == "name=container-infra-c1-scratch" and "fs=cephfs" in options
    secret = next(f for f in mount["files"] if f["path"].endswith(".secret"))
    assert options[1] == f"secretfile={secret['path']}" and secret["content"] == "AQB-secret==\n"
    assert secret["mode"] == "0600"


def test_a_node_without_the_storage_network_is_told_which_network_to_add():
    (error,) = node(ceph(), networks={"private": NETWORKS["private"]})["errors"]
    assert error == ("storage[scratch] of cluster c1: host n1 has no port on a network that reaches the monitors "
                     "10.80.0.2:6789 (it has private); add that network to the cluster's networks (for example "
                     "{network: storage}) and run cluster_create.yml.")
    (error,) = node(ceph(cephfs={"share": "scratch", "network": "hte"}))["errors"]
    assert "host n1 has no port on network hte (it has private, storage)" in error


def test_an_absent_entry_removes_its_mount_and_key_files():
    (mount,) = node(ceph(state="absent"))["mounts"]
    cid = storage.ceph_cluster_id(["10.80.0.2:6789"])
    assert mount["state"] == "absent" and mount["path"] == "/mnt/scratch"
    assert {"path": f"/etc/ceph/{cid}.client.container-infra-c1-scratch.keyring"} in mount["files"]


def test_monitor_addresses_find_their_network():
    assert storage.storage_network(["10.80.0.2:6789", "10.80.0.3:6789"], NETWORKS) == "storage"
    assert storage.storage_network(["[fd00::1]:6789"], NETWORKS) is None
    assert storage.storage_network(["mon.example:6789"], NETWORKS) is None


# ---------------------------------------------------------------------------------------- node module
def test_fstab_line_is_replaced_added_and_removed_by_mount_point():
    line = mount_module.fstab_line({"src": "none", "path": "/mnt/a b", "fstype": "fuse.ceph", "options": "x=1"})
    assert line == "none /mnt/a\\040b fuse.ceph x=1 0 0"
    text = "# comment\nUUID=1 / ext4 defaults 0 1\nnone /mnt/a\\040b fuse.ceph old 0 0\n"
    new, changed = mount_module.fstab_plan(text, "/mnt/a b", line)
    assert changed and new == f"# comment\nUUID=1 / ext4 defaults 0 1\n{line}\n"
    assert mount_module.fstab_plan(new, "/mnt/a b", line) == (new, False)
    gone, changed = mount_module.fstab_plan(new, "/mnt/a b", None)
    assert changed and gone == "# comment\nUUID=1 / ext4 defaults 0 1\n"
    added, changed = mount_module.fstab_plan("", "/mnt/x", "none /mnt/x fuse.ceph a 0 0")
    assert changed and added == "none /mnt/x fuse.ceph a 0 0\n"


def test_mountinfo_paths_are_unescaped():
    info = "36 35 0:32 / /mnt/a\\040b rw - fuse.ceph-fuse ceph-fuse rw\n37 35 0:33 / /mnt/c rw - tmpfs t rw\n"
    assert mount_module.mounted_paths(info) == {"/mnt/a b", "/mnt/c"}


# ---------------------------------------------------------------------------------------- os_manila_share
class FakeShares:
    def __init__(self, shares):
        self.shares = shares
        self.denied = []

    def list(self, search_opts):
        return [s for s in self.shares if s["name"] == search_opts["name"]]

    def get(self, share_id):
        for share in self.shares:
            if share["id"] == share_id:
                return share
        raise type("NotFound", (Exception,), {})()

    def access_list(self, share_id):
        return [{"id": "r1", "access_type": "cephx", "access_to": "u1", "access_level": "rw", "state": "active",
                 "access_key": "SECRET"}]

    def deny(self, share_id, rule_id):
        self.denied.append(rule_id)


def fake_api(shares):
    fake = FakeShares(shares)
    manila = SimpleNamespace(shares=fake, share_access_rules=SimpleNamespace(access_list=fake.access_list),
                             share_export_locations=SimpleNamespace(list=lambda share_id: [{"path": EXPORT}]))
    return os_manila_share.Share(manila, timeout=1, poll_interval=0.01)


def params(**more):
    return {"name": "s1", "state": "present", "share_proto": "CEPHFS", "access_rules": [],
            "purge_access_rules": False} | more


def test_query_reports_a_share_by_id_without_keys_and_changes_nothing():
    api = fake_api([{"id": SHARE_ID, "name": "made-elsewhere", "share_proto": "CEPHFS", "status": "available",
                     "size": 3, "metadata": {"__mount_options": "fs=cephfs"}}])
    result = os_manila_share.ensure(api, params(name=SHARE_ID, state="query"))
    assert result["changed"] is False
    share = result["share"]
    assert share["id"] == SHARE_ID and share["fs_name"] == "cephfs" and share["monitors"] == ["10.80.0.2:6789"]
    assert "SECRET" not in str(share) and share["access_rules"][0]["access_to"] == "u1"
    assert os_manila_share.ensure(api, params(name="nothing", state="query")) == {"changed": False, "share": {}}


AVAILABLE = {"id": SHARE_ID, "name": "s1", "share_proto": "CEPHFS", "status": "available", "size": 1,
             "metadata": {"__mount_options": "fs=cephfs"}}
RULE_U1 = [{"access_type": "cephx", "access_to": "u1", "access_level": "rw", "state": "present"}]


@pytest.mark.parametrize("more", [
    {"state": "present", "access_rules": RULE_U1},
    {"state": "present", "access_rules": RULE_U1, "size": 1},
    {"state": "query"},
])
def test_no_access_key_is_in_a_normal_result(more):
    """Issue 15, finding 2: a task without no_log prints whatever the module returns."""
    result = os_manila_share.ensure(fake_api([dict(AVAILABLE)]), params(**more))
    assert result["share"]["access_rules"][0]["access_to"] == "u1"
    assert "SECRET" not in str(result) and "access_key" not in str(result)
    predicted = os_manila_share.ensure(fake_api([dict(AVAILABLE)]), params(**more), check_mode=True)
    assert "SECRET" not in str(predicted)


def test_the_access_keys_only_with_include_access_keys():
    result = os_manila_share.ensure(fake_api([dict(AVAILABLE)]),
                                    params(access_rules=RULE_U1, include_access_keys=True))
    assert result["share"]["access_rules"][0]["access_key"] == "SECRET"


@pytest.mark.parametrize("no_log", [False, None])
def test_include_access_keys_on_a_task_without_no_log_is_refused_before_any_call(no_log):
    from container_infra.cloud.module import ModuleFailure

    module = SimpleNamespace(params=params(include_access_keys=True), check_mode=False)
    if no_log is not None:
        module.no_log = no_log
    cloud = SimpleNamespace(manila=lambda: pytest.fail("no cloud call may be made"))
    with pytest.raises(ModuleFailure) as caught:
        os_manila_share.run(module, cloud)
    assert str(caught.value).startswith("include_access_keys returns the cephx access keys, so the task must set "
                                        "no_log: true"), caught.value


def test_a_no_log_task_gets_the_keys_it_asked_for():
    module = SimpleNamespace(params=params(state="query", include_access_keys=True), check_mode=False, no_log=True)
    cloud = SimpleNamespace(manila=lambda: fake_api([dict(AVAILABLE)]).m)
    assert os_manila_share.run(module, cloud)["share"]["access_rules"][0]["access_key"] == "SECRET"


@pytest.mark.parametrize("state", ["present", "query", "absent"])
def test_a_share_name_two_shares_have_is_refused_in_one_sentence(state):
    twins = [dict(AVAILABLE), dict(AVAILABLE, id="9d5c2b1e-0000-4000-8000-000000000001")]
    with pytest.raises(os_manila_share.CloudError) as caught:
        os_manila_share.ensure(fake_api(twins), params(state=state, access_rules=RULE_U1))
    assert str(caught.value) == ("share name 's1' matches 2 shares; rename or delete the duplicates "
                                 "(`openstack share list --name ...`), then run again")


def test_a_rule_with_state_absent_is_denied_and_nothing_else():
    share = {"id": SHARE_ID, "name": "s1", "share_proto": "CEPHFS", "status": "available", "size": 1}
    steps = os_manila_share.plan(params(access_rules=[{"access_type": "cephx", "access_to": "u1", "state": "absent"}]),
                                 share, [{"id": "r1", "access_type": "cephx", "access_to": "u1", "access_level": "rw",
                                          "state": "active"},
                                         {"id": "r2", "access_type": "cephx", "access_to": "u2", "access_level": "rw",
                                          "state": "active"}])
    assert [r["id"] for r in steps["deny"]] == ["r1"] and steps["allow"] == [] and steps["resize"] is None
    assert os_manila_share.plan(params(access_rules=[{"access_type": "cephx", "access_to": "u9", "state": "absent"}]),
                                share, [])["deny"] == []


# ---------------------------------------------------------------------------------------- Gluster client
def gluster(**more) -> dict:
    return {"name": "g", "kind": "gluster", "path": "/mnt/g",
            "gluster": {"volume": "vol0", "servers": ["10.80.0.11", "10.80.0.12", "10.80.0.13"]} | more}


def test_a_gluster_client_mount_names_the_backup_volfile_servers():
    plan = storage.node_plan([gluster()], "c1", "worker", "w")
    out = storage.node_mounts(plan, {}, NETWORKS, "n1", True)
    assert out["errors"] == [] and out["nic_networks"] == ["storage"]
    (mount,) = out["mounts"]
    assert (mount["src"], mount["fstype"], mount["binary"]) == ("10.80.0.11:/vol0", "glusterfs", "mount.glusterfs")
    assert mount["options"] == "backup-volfile-servers=10.80.0.12:10.80.0.13,_netdev"
    (mount,) = storage.node_mounts(storage.node_plan([gluster(subdir="/team/")], "c1", "worker", "w"), {},
                                   NETWORKS, "n1")["mounts"]
    assert mount["src"] == "10.80.0.11:/vol0/team"


@pytest.mark.parametrize(("change", "words"), [
    ({"transport": "rdma"}, "Gluster removed its RDMA transport, so use tcp over the IPoIB or RoCE addresses"),
    ({"servers": ["a", "a"]}, "gluster.servers lists a server twice"),
    ({"volume": "bad name"}, "is not a Gluster volume name"),
])
def test_bad_gluster_input_is_one_sentence(change, words):
    assert words in one_error([gluster(**change)])


def test_gluster_servers_no_network_of_the_node_reaches_are_refused():
    plan = storage.node_plan([gluster()], "c1", "worker", "w")
    (error,) = storage.node_mounts(plan, {}, {"private": NETWORKS["private"]}, "n1")["errors"]
    assert "host n1 has no port on a network that reaches the servers 10.80.0.11, 10.80.0.12, 10.80.0.13" in error


def test_a_share_and_rule_already_as_asked_need_no_second_manila_call():
    reqs = requests()
    held = {"share": manila_share()}
    assert storage.needs_ensure(reqs, [held]) == []
    assert storage.needs_ensure(reqs, [{"share": {}}]) == reqs
    no_rule = {"share": manila_share() | {"access_rules": []}}
    assert storage.needs_ensure(reqs, [no_rule]) == reqs
    made = requests(create=True, size=2)
    assert storage.needs_ensure(made, [held]) == made  # a share the toolkit made is resized to the spec
    facts = storage.manila_facts(reqs, [held], [{"skipped": True}])
    assert facts["c1/scratch"]["access_key"] == "AQB-secret=="


def test_a_key_left_under_an_old_ceph_cluster_name_is_removed_once_mounted(tmp_path, monkeypatch):
    """An export that moved to other monitors gets a new cluster name, so a new key file; the old one, a secret
    nothing reads any more, goes (the current one stays), and a run after that finds nothing to remove."""
    point = tmp_path / "mnt"
    point.mkdir()
    current, old = tmp_path / "ceph-new.client.u.keyring", tmp_path / "ceph-old.client.u.keyring"
    current.write_text("[client.u]\n\tkey = new\n")
    current.chmod(0o600)
    old.write_text("[client.u]\n\tkey = old\n")
    fstab = tmp_path / "fstab"
    item = {"name": "scratch", "state": "present", "path": str(point), "src": "none", "fstype": "fuse.ceph",
            "options": "ceph.id=u", "binary": None, "owner": None, "group": None, "mode": None,
            "files": [{"path": str(current), "content": current.read_text(), "mode": "0600"}],
            "stale": [str(tmp_path / "*.client.u.keyring"), str(tmp_path / "*.client.u.secret")]}
    fstab.write_text(mount_module.fstab_line(item) + "\n")
    monkeypatch.setattr(mount_module, "mounted_paths", lambda _text: {str(point)})
    module = type("Module", (), {"check_mode": False})()
    report = mount_module.ensure(module, item, str(fstab), 5)
    assert report["changed"] and report["removed"] == [str(old)] and report["action"] == "none"
    assert current.exists() and not old.exists()
    again = mount_module.ensure(module, item, str(fstab), 5)
    assert not again["changed"] and "removed" not in again
    # The CephFS mounts name their user's key files as stale patterns.
    mount = node(ceph(cephfs={"share": "s"}))["mounts"][0]
    assert mount["stale"] == ["/etc/ceph/*.client.container-infra-c1-scratch.keyring",
                              "/etc/ceph/*.client.container-infra-c1-scratch.secret"]


class StuckProcess:
    """A process stuck in the kernel (an unmount waiting on a FUSE client that does not answer): it never ends,
    and waiting for it after the kill would wait for good."""

    def __init__(self, *args, **kwargs):
        self.killed = False

    def communicate(self, timeout=None):
        if self.killed:
            raise AssertionError("waited for a process that cannot end")
        raise mount_module.subprocess.TimeoutExpired("umount", timeout)

    def kill(self):
        self.killed = True


def test_a_command_stuck_in_the_kernel_is_left_behind_not_waited_for(monkeypatch):
    monkeypatch.setattr(mount_module.subprocess, "Popen", StuckProcess)
    assert mount_module.run_bounded(["umount", "/mnt/scratch"], 1) == (None, "no answer within 1 s")


def unmount_with(monkeypatch, answers: dict, daemons: list[int]):
    """unmount() with commands answering ``answers`` (None: hung) and the mount gone after a lazy unmount; what
    it ran and which processes it killed."""
    ran, killed, table = [], [], {"/mnt/scratch"}

    def run_bounded(command, timeout):
        ran.append(" ".join(command))
        code = answers.get(command[0] if command[1:2] != ["-l"] else "umount -l")
        if code == 0:
            table.discard(command[-1])
        return code, ""

    monkeypatch.setattr(mount_module, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(mount_module, "run_bounded", run_bounded)
    monkeypatch.setattr(mount_module, "in_mount_table", lambda path: path in table)
    monkeypatch.setattr(mount_module, "fuse_daemons", lambda path: daemons)
    monkeypatch.setattr(mount_module.os, "kill", lambda pid, sig: killed.append(pid))
    mount_module.unmount(SimpleNamespace(fail_json=lambda **kw: pytest.fail(kw["msg"])), "/mnt/scratch", 60)
    return ran, killed


def test_an_unmount_that_hangs_is_done_lazily_and_the_silent_client_stopped(monkeypatch):
    """Seen in a full test run: a ceph-fuse whose session the MDS had evicted (its access rule denied) never
    answered `umount`; the module used to wait for it for good."""
    ran, killed = unmount_with(monkeypatch, {"umount": None, "umount -l": 0}, daemons=[4242])
    assert ran == ["umount /mnt/scratch", "umount -l /mnt/scratch"]
    assert killed == [4242]


def test_a_busy_mount_is_detached_lazily_and_its_client_left_serving_it(monkeypatch):
    ran, killed = unmount_with(monkeypatch, {"umount": 32, "fusermount3": 1, "fusermount": 1, "umount -l": 0},
                               daemons=[4242])
    assert ran[-1] == "umount -l /mnt/scratch" and len(ran) == 4
    assert killed == []


def test_the_fuse_client_of_a_mount_point_is_found_by_its_command_line(monkeypatch, tmp_path):
    proc = tmp_path / "proc"
    for pid, argv in {"10": ["ceph-fuse", "--id=x", "/mnt/scratch", "-o", "rw"], "11": ["ceph-fuse", "/mnt/other"],
                      "12": ["bash", "/mnt/scratch"], "13": ["/usr/sbin/glusterfs", "--volfile-id=v", "/mnt/scratch"]
                      }.items():
        (proc / pid).mkdir(parents=True)
        (proc / pid / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    real_open, real_listdir = open, mount_module.os.listdir
    monkeypatch.setattr(mount_module.os, "listdir",
                        lambda path: real_listdir(proc) if path == "/proc" else real_listdir(path))
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(
        str(path).replace("/proc/", f"{proc}/", 1) if str(path).startswith("/proc/") else path, *a, **k))
    assert sorted(mount_module.fuse_daemons("/mnt/scratch")) == [10, 13]
