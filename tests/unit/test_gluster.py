"""The hyperconverged Gluster volume without a cluster: the spec's checks (one sentence each), the servers and
bricks across the play, the glusterd container, each node's mount, and the two node modules against a Gluster
CLI and a node that record what they are asked (the real glusterd runs in
tests/integration/test_gluster_hyperconverged.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from container_infra import gluster, storage

REPO = Path(__file__).resolve().parents[2]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "library" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


volume_module = load("container_infra_gluster_volume")
brick_module = load("container_infra_gluster_brick")
IMAGE = "registry:5000/container-infra/glusterfs:1"


def entry(**hc) -> dict:
    return {"name": "shared", "kind": "gluster", "path": "/mnt/shared",
            "gluster": {"volume": "gv0", "network": "lln", "hyperconverged": {"image": IMAGE, **hc}}}


@pytest.mark.parametrize(("change", "words"), [
    (lambda e: e["gluster"].update(servers=["10.0.0.1"]), "both given"),
    (lambda e: e["gluster"].pop("network"), "gluster.network is missing"),
    (lambda e: e["gluster"]["hyperconverged"].pop("image"), "image is missing"),
    (lambda e: e["gluster"]["hyperconverged"].update(replica=0), "replica 0 is not a whole number"),
    (lambda e: e["gluster"]["hyperconverged"].update(replica=2, arbiter=1), "arbiter 1 with replica 3 only"),
    (lambda e: e["gluster"]["hyperconverged"].update(devices=["sdb"]), "'sdb', which is no block device"),
    (lambda e: e["gluster"]["hyperconverged"].update(devices=["/dev/sdb", "/dev/sdb"]), "a device twice"),
    (lambda e: e["gluster"]["hyperconverged"].update(options={"nufa": "on"}), "'nufa' is not a Gluster volume"),
    (lambda e: e["gluster"]["hyperconverged"].update(quota={"projects": "10GB"}), "'projects' is not absolute"),
    (lambda e: e["gluster"]["hyperconverged"].update(quota={"/projects": "ten"}), "'ten' of /projects is not a size"),
    (lambda e: e["gluster"]["hyperconverged"].update(brick_root="bricks"), "brick_root 'bricks' is not"),
])
def test_bad_hyperconverged_input_is_one_sentence_before_anything(change, words):
    spec = entry()
    change(spec)
    errors = storage.check_spec([spec], "c1")
    assert len(errors) == 1 and words in errors[0] and errors[0].endswith("."), errors
    with pytest.raises(storage.StorageError):
        storage.node_plan([spec], "c1", "worker", "default-worker")


def test_one_glusterd_per_node_and_each_volume_once():
    other = entry()
    other.update(name="other", path="/mnt/other")
    other["gluster"]["hyperconverged"]["image"] = "registry:5000/gluster/other:2"
    errors = storage.check_spec([entry(), other], "c1")
    assert any("different images" in e for e in errors) and any("volume gv0 is also" in e for e in errors), errors
    assert storage.check_spec([entry(replica=3, arbiter=1, devices=["/dev/vdb", "/dev/vdc"],
                                     options={"cluster.nufa": "on"}, quota={"/projects": "10GB"})], "c1") == []


def plans_and_offers(hosts: dict[str, dict], spec: dict, role: str = "worker"):
    plans, offers = [], []
    for host, networks in hosts.items():
        plan = storage.node_plan([spec], "c1", role, "default-worker")
        plans.append(plan)
        offers.append(gluster.node_serving(plan, networks, host))
    return plans, offers


def lln(ip: str) -> dict:
    return {"lln": {"ip": ip, "mac": "fa:16:3e:00:00:01", "cidr": "10.20.0.0/24"}}


def test_servers_are_the_serving_nodes_in_name_order_with_a_brick_each_on_the_volume_network():
    hosts = {"n-c": lln("10.20.0.13"), "n-a": lln("10.20.0.11"), "n-b": lln("10.20.0.12")}
    plans, offers = plans_and_offers(hosts, entry(replica=3))
    found = gluster.layout(plans, offers)
    assert found["errors"] == []
    volume = found["volumes"]["c1/shared"]
    assert [s["host"] for s in volume["servers"]] == ["n-a", "n-b", "n-c"] and volume["first"] == "n-a"
    assert [s["brick"] for s in volume["servers"]] == [
        f"10.20.0.1{i}:/var/lib/container-infra/gluster/gv0/brick" for i in (1, 2, 3)]
    [call] = gluster.volume_calls(found)
    assert call["host"] == "n-a" and call["self"] == "10.20.0.11" and call["replica"] == 3
    assert call["peers"] == ["10.20.0.11", "10.20.0.12", "10.20.0.13"]
    # Every node mounts from the first server with the others as backup volume file servers.
    mount = storage.node_mounts(plans[0], {}, hosts["n-c"], "n-c", False, found)
    assert mount["errors"] == [] and mount["nic_networks"] == ["lln"]
    [line] = mount["mounts"]
    assert line["src"] == "10.20.0.11:/gv0" and "backup-volfile-servers=10.20.0.12:10.20.0.13" in line["options"]


@pytest.mark.parametrize(("hosts", "spec", "words"), [
    ({"a": lln("10.20.0.1"), "b": lln("10.20.0.2")}, entry(replica=3),
     "replica 3 needs at least 3 serving nodes but 2 serve the volume (a, b)"),
    ({"a": lln("10.20.0.1"), "b": lln("10.20.0.2"), "c": lln("10.20.0.3")}, entry(replica=2),
     "3 serving nodes are not a multiple of replica 2"),
    ({"a": lln("10.20.0.1"), "b": {"hte": {"ip": "10.10.0.2"}}}, entry(),
     "host b serves the volume over network lln but has no port on it (it has hte)"),
    ({"a": lln("10.20.0.1")}, entry(roles=["master"]), "no node of the play serves the volume"),
])
def test_a_layout_the_nodes_cannot_serve_is_one_sentence(hosts, spec, words):
    plans, offers = plans_and_offers(hosts, spec)
    errors = gluster.layout(plans, offers)["errors"]
    assert len(errors) == 1 and words in errors[0], errors


def test_glusterd_runs_on_serving_nodes_only_with_its_state_on_the_node():
    plan = storage.node_plan([entry(roles=["worker"])], "c1", "worker", "default-worker")
    workload = gluster.glusterd_workload(plan)
    argv = workload["argv"]
    assert workload["name"] == "container-infra-glusterd" and argv[-1] == IMAGE
    assert "--network" in argv and argv[argv.index("--network") + 1] == "host"
    assert "/var/lib/container-infra/glusterd:/var/lib/glusterd" in argv
    assert "/var/lib/container-infra/gluster/gv0:/var/lib/container-infra/gluster/gv0" in argv
    assert f"org.container-infra.spec={workload['digest']}" in argv
    assert gluster.glusterd_workload(plan)["digest"] == workload["digest"]
    master = storage.node_plan([entry(roles=["worker"])], "c1", "master", "default-master")
    assert gluster.glusterd_workload(master) == {} and gluster.node_bricks(master) == []
    assert gluster.node_bricks(plan) == [{"volume": "gv0", "root": "/var/lib/container-infra/gluster/gv0",
                                          "devices": [], "force": False, "raid_name": "container-infra-gv0"}]


# ------------------------------------------------------------------------------------------------ volume module
class FakeGluster:
    """glusterd's state as its CLI shows it (XML), changed by the commands the module sends."""

    def __init__(self, self_address: str = "10.20.0.11"):
        self.self_address = self_address
        self.peers: dict[str, bool] = {}
        self.volumes: dict[str, dict] = {}
        self.removing: dict[str, str] = {}
        self.usage: dict[str, tuple[bool, int, int]] = {}
        self.commands: list[str] = []
        self.running = True
        self.refuse_probes = 0
        self.rebalance: list[str] = []  # the next answers of rebalance status, then "completed"

    def __call__(self, argv: list[str]) -> tuple[int, str]:
        if argv[1] == "inspect":
            return (0, "true\n") if self.running else (1, "Error: No such object")
        args = [a for a in argv[4:] if a not in ("--mode=script", "--xml")]
        xml = "--xml" in argv
        if not xml:
            self.commands.append(" ".join(args))
        handler = getattr(self, "_" + "_".join(args[:2]).replace("-", "_"))
        return handler(args[2:], xml)

    @staticmethod
    def out(body: str = "", ok: bool = True, error: str = "") -> tuple[int, str]:
        return (0 if ok else 1), (f"<?xml version=\"1.0\"?><cliOutput><opRet>{0 if ok else -1}</opRet>"
                                  f"<opErrstr>{error}</opErrstr>{body}</cliOutput>")

    def _pool_list(self, args, xml):
        peers = "".join(f"<peer><hostname>{a}</hostname><connected>{int(c)}</connected>"
                        f"<stateStr>Peer in Cluster</stateStr></peer>" for a, c in self.peers.items())
        return self.out(f"<peerStatus><peer><hostname>localhost</hostname><connected>1</connected></peer>{peers}"
                        "</peerStatus>")

    def _peer_probe(self, args, xml):
        if self.refuse_probes:
            self.refuse_probes -= 1
            return 1, "peer probe: failed: Probe returned with Transport endpoint is not connected"
        self.peers[args[0]] = True
        return 0, "peer probe: success"

    def _peer_detach(self, args, xml):
        self.peers.pop(args[0])
        return 0, "peer detach: success"

    def _volume_info(self, args, xml):
        if args[0] == "all":
            bricks = "".join(f"<brick><name>{b}</name></brick>" for v in self.volumes.values() for b in v["bricks"])
            return self.out(f"<volInfo><volumes><volume><bricks>{bricks}</bricks></volume></volumes></volInfo>")
        volume = self.volumes.get(args[0])
        if volume is None:
            return self.out(ok=False, error=f"Volume {args[0]} does not exist")
        bricks = "".join(f"<brick><name>{b}</name></brick>" for b in volume["bricks"])
        options = "".join(f"<option><name>{k}</name><value>{v}</value></option>" for k, v in volume["options"].items())
        return self.out(f"<volInfo><volumes><volume><name>{args[0]}</name><statusStr>{volume['status']}</statusStr>"
                        f"<replicaCount>{volume['replica']}</replicaCount><bricks>{bricks}</bricks>"
                        f"<options>{options}</options></volume></volumes></volInfo>")

    def _volume_create(self, args, xml):
        replica = int(args[args.index("replica") + 1]) if "replica" in args else 1
        bricks = [a for a in args if ":/" in a]
        self.volumes[args[0]] = {"status": "Created", "replica": replica, "bricks": bricks, "options": {}}
        return 0, "volume create: success"

    def _volume_start(self, args, xml):
        self.volumes[args[0]]["status"] = "Started"
        return 0, "ok"

    def _volume_stop(self, args, xml):
        self.volumes[args[0]]["status"] = "Stopped"
        return 0, "ok"

    def _volume_delete(self, args, xml):
        del self.volumes[args[0]]
        return 0, "ok"

    def _volume_set(self, args, xml):
        self.volumes[args[0]]["options"][args[1]] = args[2]
        return 0, "ok"

    def _volume_add_brick(self, args, xml):
        self.volumes[args[0]]["bricks"] += [a for a in args if ":/" in a]
        return 0, "ok"

    def _volume_rebalance(self, args, xml):
        if args[1] == "status":
            state = self.rebalance.pop(0) if self.rebalance else "completed"
            return self.out(f"<volRebalance><node><statusStr>{state}</statusStr></node></volRebalance>")
        return 0, "ok"

    def _volume_status(self, args, xml):
        nodes = "".join(f"<node><hostname>{b.split(':')[0]}</hostname><path>{b.split(':')[1]}</path>"
                        f"<status>{int(online)}</status><sizeTotal>{total}</sizeTotal><sizeFree>{free}</sizeFree></node>"
                        for b, (online, total, free) in self.usage.items())
        return self.out(f"<volStatus><volumes><volume>{nodes}</volume></volumes></volStatus>")

    def _volume_remove_brick(self, args, xml):
        name, rest = args[0], args[1:]
        bricks, what = rest[:-1], rest[-1]
        key = " ".join(bricks)
        if what == "status":
            if key not in self.removing:
                return self.out(ok=False, error="remove-brick not started")
            state = self.removing[key]
            return self.out(f"<volRemoveBrick><node><statusStr>{state}</statusStr></node></volRemoveBrick>")
        if what == "start":
            self.removing[key] = "in progress"
            return 0, "ok"
        assert self.removing.pop(key) == "completed"
        self.volumes[name]["bricks"] = [b for b in self.volumes[name]["bricks"] if b not in bricks]
        return 0, "ok"

    def _volume_quota(self, args, xml):
        if args[1] == "enable":
            self.volumes[args[0]]["options"]["features.quota"] = "on"
            return 0, "ok"
        if args[1] == "list":
            limits = "".join(f"<limit><path>{p}</path><hard_limit>{v}</hard_limit></limit>"
                             for p, v in self.volumes[args[0]].get("limits", {}).items())
            return self.out(f"<volQuota>{limits}</volQuota>")
        self.volumes[args[0]].setdefault("limits", {})[args[2]] = volume_module.size_bytes(args[3])
        return 0, "ok"


def brick(i: int) -> str:
    return f"10.20.0.1{i}:/var/lib/container-infra/gluster/gv0/brick"


def spec(n: int, **more) -> dict:
    return {"name": "gv0", "state": "present", "bricks": [brick(i) for i in range(1, n + 1)],
            "peers": [f"10.20.0.1{i}" for i in range(1, n + 1)], "self": "10.20.0.11", "replica": 1,
            "options": {}, "quota": {}, "path": "/mnt/shared"} | more


def converge(fake, volume, check_mode=False, sleeps=None):
    cli = volume_module.Gluster("glusterd", check_mode, runner=fake)
    volume_module.converge(cli, volume, 30, sleep=(sleeps.append if sleeps is not None else lambda s: None))
    return cli.actions


def test_a_new_volume_probes_its_peers_creates_in_brick_order_sets_options_and_starts():
    fake = FakeGluster()
    actions = converge(fake, spec(3, replica=3, arbiter=1, options={"cluster.nufa": "on"}))
    assert actions == ["peer probe 10.20.0.12", "peer probe 10.20.0.13",
                       f"volume create gv0 replica 3 arbiter 1 transport tcp {brick(1)} {brick(2)} {brick(3)} force",
                       "volume set gv0 cluster.nufa on", "volume start gv0"]
    assert converge(fake, spec(3, replica=3, arbiter=1, options={"cluster.nufa": "on"})) == []


def test_a_peer_whose_glusterd_is_still_starting_is_probed_again():
    fake = FakeGluster()
    fake.refuse_probes = 2
    sleeps = []
    assert converge(fake, spec(2), sleeps=sleeps)[0] == "peer probe 10.20.0.12"
    assert len(sleeps) == 2 and fake.peers == {"10.20.0.12": True}


def test_check_mode_says_what_it_would_do_and_does_nothing():
    fake = FakeGluster()
    actions = converge(fake, spec(2), check_mode=True)
    assert actions[:2] == ["peer probe 10.20.0.12", f"volume create gv0 transport tcp {brick(1)} {brick(2)} force"]
    assert fake.volumes == {} and fake.peers == {}


def test_a_new_node_adds_its_brick_and_a_rebalance():
    fake = FakeGluster()
    converge(fake, spec(3))
    assert converge(fake, spec(4)) == ["peer probe 10.20.0.14", f"volume add-brick gv0 {brick(4)} force",
                                       "volume rebalance gv0 start"]
    assert fake.volumes["gv0"]["bricks"] == [brick(i) for i in range(1, 5)]


def test_a_leaving_node_has_its_data_moved_off_before_its_brick_goes():
    fake = FakeGluster()
    converge(fake, spec(3))
    fake.usage = {brick(i): (True, 10 * 2**30, 8 * 2**30) for i in (1, 2, 3)}
    sleeps = []

    def finish(seconds):
        sleeps.append(seconds)
        fake.removing[brick(3)] = "completed"

    cli = volume_module.Gluster("glusterd", runner=fake)
    volume_module.converge(cli, spec(2), 30, sleep=finish)
    assert cli.actions == [f"volume remove-brick gv0 {brick(3)} start", f"volume remove-brick gv0 {brick(3)} commit",
                           "volume rebalance gv0 start", "peer detach 10.20.0.13"]
    assert fake.volumes["gv0"]["bricks"] == [brick(1), brick(2)] and sleeps


def test_with_shrinking_off_a_leaving_brick_is_refused_before_anything():
    fake = FakeGluster()
    converge(fake, spec(3))
    before = list(fake.commands)
    cli = volume_module.Gluster("glusterd", runner=fake)
    with pytest.raises(volume_module.GlusterError, match=f"the bricks {brick(3)} would leave it, and shrinking"):
        volume_module.converge(cli, spec(2), 30, sleep=lambda s: None, shrink=False)
    assert fake.commands == before and fake.volumes["gv0"]["bricks"] == [brick(1), brick(2), brick(3)]


def test_a_node_the_run_leaves_out_keeps_its_brick():
    fake = FakeGluster()
    converge(fake, spec(3))
    limited = spec(2, outside=["10.20.0.13"])
    assert converge(fake, limited) == [] and fake.volumes["gv0"]["bricks"] == [brick(1), brick(2), brick(3)]


def test_the_nodes_a_limit_leaves_out_are_known_to_the_layout():
    hostvars = {"a": {"container_infra_cluster": "c1", "container_infra_networks": lln("10.20.0.11")},
                "b": {"container_infra_cluster": "c1", "container_infra_networks": lln("10.20.0.12")},
                "x": {"container_infra_cluster": "c2", "container_infra_networks": lln("10.20.0.99")},
                "localhost": {}}
    outside = gluster.outside_hosts(hostvars, list(hostvars), ["a"])
    plans, offers = plans_and_offers({"a": lln("10.20.0.11")}, entry())
    [call] = gluster.volume_calls(gluster.layout(plans, offers, outside))
    assert call["outside"] == ["10.20.0.12"] and call["bricks"] == [
        "10.20.0.11:/var/lib/container-infra/gluster/gv0/brick"]


def test_an_interrupted_shrink_is_picked_up_not_started_twice():
    fake = FakeGluster()
    converge(fake, spec(3))
    fake.usage = {brick(i): (True, 10, 8) for i in (1, 2, 3)}
    fake.removing[brick(3)] = "completed"
    assert converge(fake, spec(2)) == [f"volume remove-brick gv0 {brick(3)} commit", "volume rebalance gv0 start",
                                       "peer detach 10.20.0.13"]


def test_a_shrink_cut_off_after_its_commit_gets_its_rebalance_and_detach_on_the_next_run():
    fake = FakeGluster()
    converge(fake, spec(3))
    fake.volumes["gv0"]["bricks"].remove(brick(3))  # committed; the run ended before the rebalance
    fake.rebalance = ["in progress", "in progress"]
    sleeps = []
    assert converge(fake, spec(2), sleeps=sleeps) == ["volume rebalance gv0 start", "peer detach 10.20.0.13"]
    assert len(sleeps) == 2 and "10.20.0.13" not in fake.peers
    assert converge(fake, spec(2)) == []


def test_a_peer_serving_another_volume_is_no_unfinished_shrink():
    fake = FakeGluster()
    converge(fake, spec(3))
    fake.volumes["gv1"] = {"status": "Started", "replica": 1, "bricks": ["10.20.0.14:/b"], "options": {}}
    fake.peers["10.20.0.14"] = True
    assert converge(fake, spec(3)) == []


def test_a_failed_rebalance_after_a_shrink_is_one_sentence():
    fake = FakeGluster()
    converge(fake, spec(3))
    fake.usage = {brick(i): (True, 10, 8) for i in (1, 2, 3)}
    fake.removing[brick(3)] = "completed"
    fake.rebalance = ["failed"]
    with pytest.raises(volume_module.GlusterError, match="the rebalance after the shrink failed; see gluster volume "
                                                         "rebalance gv0 status on the first server, then run again"):
        converge(fake, spec(2))


@pytest.mark.parametrize(("usage", "replica", "words"), [
    ({1: (True, 10, 8), 2: (True, 10, 8), 3: (False, 10, 8)}, 1, "is offline, so its data cannot be moved"),
    ({1: (True, 10 * 2**30, 1 * 2**30), 2: (True, 10 * 2**30, 1 * 2**30), 3: (True, 10 * 2**30, 1 * 2**30)}, 1,
     "hold 9.0 GiB but the others have room for 2.0 GiB"),
    ({i: (True, 10, 8) for i in range(1, 5)}, 2, "would break the replica set"),
])
def test_a_shrink_that_would_lose_data_is_refused_before_anything(usage, replica, words):
    fake = FakeGluster()
    converge(fake, spec(4 if replica == 2 else 3, replica=replica))
    fake.usage = {brick(i): value for i, value in usage.items()}
    before = list(fake.commands)
    with pytest.raises(volume_module.GlusterError, match=words):
        converge(fake, spec(3 if replica == 2 else 2, replica=replica))
    assert fake.commands == before


def test_a_volume_taken_away_is_stopped_and_deleted():
    fake = FakeGluster()
    converge(fake, spec(2))
    assert converge(fake, spec(2, state="absent")) == ["volume stop gv0", "volume delete gv0"]
    assert converge(fake, spec(2, state="absent")) == []
    fake.running = False  # glusterd removed since: nothing left to ask, nothing to wait for
    assert converge(fake, spec(2, state="absent")) == []


def test_quotas_make_the_directory_and_are_set_once(tmp_path):
    fake = FakeGluster()
    converge(fake, spec(1))
    volume = spec(1, quota={"/projects": "1GB"}, path=str(tmp_path))
    cli = volume_module.Gluster("glusterd", runner=fake)
    volume_module.quota(cli, volume)
    assert cli.actions == ["volume quota gv0 enable", f"mkdir {tmp_path}/projects",
                           "volume quota gv0 limit-usage /projects 1GB"]
    assert (tmp_path / "projects").is_dir() and fake.volumes["gv0"]["limits"] == {"/projects": 2**30}
    again = volume_module.Gluster("glusterd", runner=fake)
    volume_module.quota(again, volume)
    assert again.actions == []


def test_a_glusterd_that_never_answers_is_one_sentence():
    cli = volume_module.Gluster("glusterd", runner=lambda argv: (1, "Error response from daemon: not running"))
    clock = iter(range(0, 1000, 10))
    with pytest.raises(volume_module.GlusterError, match="glusterd in the container did not answer within 30 s"):
        volume_module.wait_for("glusterd in the container did not answer", lambda: cli.xml("pool", "list")[0], 30,
                               sleep=lambda s: None, clock=lambda: next(clock))


# ------------------------------------------------------------------------------------------------ brick module
class FakeNode(brick_module.Node):
    """Block devices, blkid's answers, mdadm arrays and mounts as a node would have them."""

    def __init__(self, devices: dict[str, str | None], check_mode=False):
        super().__init__(check_mode)
        self.types = dict(devices)
        self.files: dict[str, str] = {}
        self.mounts: dict[str, str] = {}
        self.dirs: set[str] = set()

    def run(self, argv):
        if argv[0] == "mdadm" and argv[1] == "--create":
            self.types[argv[2]] = None
            for device in argv[-2:]:
                self.types[device] = "linux_raid_member"
        elif argv[0] == "mdadm" and argv[1] == "--detail" and argv[2] == "--brief":
            return 0, f"ARRAY {argv[3]} metadata=1.2 UUID=1:2:3:4\n"
        elif argv[0] == "mdadm":
            return 0, "MD_DEVICE_dev_vdb_DEV=/dev/vdb\nMD_DEVICE_dev_vdc_DEV=/dev/vdc\n"
        elif argv[0] == "mkfs.xfs":
            self.types[argv[-1]] = "xfs"
        elif argv[0] == "mount":
            self.mounts[argv[1]] = "dev"
        elif argv[0] == "blkid":
            kind = self.types[argv[-1]]
            return (0, f"TYPE={kind}\n") if kind else (2, "")
        return 0, ""

    def is_block_device(self, path):
        return path in self.types

    def exists(self, path):
        return path in self.types

    def read(self, path):
        return self.files.get(path, "")

    def write(self, path, text):
        self.actions.append(f"write {path}")
        self.files[path] = text

    def makedirs(self, path):
        if path not in self.dirs:
            self.actions.append(f"mkdir -p {path}")
            self.dirs.add(path)

    def mounted_on(self, path):
        return self.mounts.get(path)


BRICK = {"volume": "gv0", "root": "/srv/gv0", "devices": [], "force": False, "raid_name": "container-infra-gv0"}


def test_a_directory_brick_is_made_once():
    node = FakeNode({})
    brick_module.prepare(node, BRICK, "/etc/fstab", "/etc/mdadm/mdadm.conf")
    assert node.actions == ["mkdir -p /srv/gv0/brick"]
    node.actions.clear()
    brick_module.prepare(node, BRICK, "/etc/fstab", "/etc/mdadm/mdadm.conf")
    assert node.actions == []


def test_two_devices_become_a_raid0_with_xfs_mounted_now_and_at_boot_and_a_second_run_changes_nothing():
    node = FakeNode({"/dev/vdb": None, "/dev/vdc": None})
    two = BRICK | {"devices": ["/dev/vdb", "/dev/vdc"]}
    brick_module.prepare(node, two, "/etc/fstab", "/etc/mdadm/mdadm.conf")
    assert node.actions[0] == ("mdadm --create /dev/md/container-infra-gv0 --run --level=0 --metadata=1.2 "
                               "--raid-devices=2 /dev/vdb /dev/vdc")
    assert "mkfs.xfs -i size=512 /dev/md/container-infra-gv0" in node.actions and "mount /srv/gv0" in node.actions
    assert node.files["/etc/fstab"] == "/dev/md/container-infra-gv0 /srv/gv0 xfs defaults,noatime,inode64,nofail 0 0\n"
    assert "ARRAY /dev/md/container-infra-gv0" in node.files["/etc/mdadm/mdadm.conf"]
    node.actions.clear()
    brick_module.prepare(node, two, "/etc/fstab", "/etc/mdadm/mdadm.conf")
    assert node.actions == []


def test_a_device_that_holds_a_file_system_is_refused_unless_forced():
    node = FakeNode({"/dev/vdb": "ext4"})
    one = BRICK | {"devices": ["/dev/vdb"]}
    with pytest.raises(brick_module.BrickError, match="/dev/vdb holds a ext4 file system; give an empty device"):
        brick_module.prepare(node, one, "/etc/fstab", "/etc/mdadm/mdadm.conf")
    assert node.actions == []
    brick_module.prepare(node, one | {"force": True}, "/etc/fstab", "/etc/mdadm/mdadm.conf")
    assert node.actions[0] == "mkfs.xfs -f -i size=512 /dev/vdb"


def test_devices_holding_data_are_not_made_into_an_array():
    node = FakeNode({"/dev/vdb": "LVM2_member", "/dev/vdc": None})
    with pytest.raises(brick_module.BrickError, match=r"/dev/vdb \(LVM2_member\) already hold data"):
        brick_module.prepare(node, BRICK | {"devices": ["/dev/vdb", "/dev/vdc"]}, "/etc/fstab", "/etc/m.conf")
    assert node.actions == []


def test_a_path_that_is_no_block_device_is_refused():
    with pytest.raises(brick_module.BrickError, match="/dev/nope is not a block device on this node"):
        brick_module.prepare(FakeNode({}), BRICK | {"devices": ["/dev/nope"]}, "/etc/fstab", "/etc/m.conf")
