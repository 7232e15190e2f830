"""Node discovery and stack facts, table-driven, without a cloud: both eras give the same shape."""

from __future__ import annotations

import pytest

from container_infra import discovery, magnum
from container_infra.heat import annotate, role_of, select, servers_of
from container_infra.modules.os_manila_share import parse_export_location

TOP = "11111111-1111-1111-1111-111111111111"
HEAT = "http://heat/v1/p/stacks"


def res(name, rtype, stack, nested=None, physical="", status="CREATE_COMPLETE", parent=None):
    links = [{"rel": "stack", "href": f"{HEAT}/s/{stack}"}]
    if nested:
        links.append({"rel": "nested", "href": f"{HEAT}/n/{nested}"})
    item = {"resource_name": name, "resource_type": rtype, "physical_resource_id": physical,
            "resource_status": status, "links": links}
    if parent:
        item["parent_resource"] = parent
    return item


def uuid(n):
    return f"{n:08d}-0000-0000-0000-000000000000"


def magnum_stack():
    """kube_masters[0] -> kube-master, kube_minions[0,1] -> kube-minion, as the Heat-era driver builds."""
    return [
        res("kube_masters", "OS::Heat::ResourceGroup", TOP, nested=uuid(1)),
        res("kube_minions", "OS::Heat::ResourceGroup", TOP, nested=uuid(2)),
        res("0", "kubemaster.yaml", uuid(1), nested=uuid(3), parent="kube_masters"),
        res("0", "kubeminion.yaml", uuid(2), nested=uuid(4), parent="kube_minions"),
        res("1", "kubeminion.yaml", uuid(2), nested=uuid(5), parent="kube_minions"),
        res("kube-master", "OS::Nova::Server", uuid(3), physical="srv-m0", parent="0"),
        res("kube_master_eth0", "OS::Neutron::Port", uuid(3), physical="port-m0", parent="0"),
        res("kube-minion", "OS::Nova::Server", uuid(4), physical="srv-w0", parent="0"),
        res("kube-minion", "OS::Nova::Server", uuid(5), physical="srv-w1", parent="1", status="CREATE_FAILED"),
    ]


def test_annotate_gives_parent_and_path():
    resources = annotate(magnum_stack(), TOP)
    server = next(r for r in resources if r["physical_resource_id"] == "srv-w1")
    assert server["parent"] == "1"
    assert server["path"] == ["kube_minions", "1", "kube-minion"]
    assert server["depth"] == 2
    assert next(r for r in resources if r["resource_name"] == "kube_masters")["parent"] is None


def test_servers_with_roles_from_resource_groups():
    servers = servers_of(annotate(magnum_stack(), TOP))
    assert [(s["server_id"], s["role"], s["group"], s["index"]) for s in servers] == [
        ("srv-m0", "master", "kube_masters", 0), ("srv-w0", "worker", "kube_minions", 0),
        ("srv-w1", "worker", "kube_minions", 1)]


@pytest.mark.parametrize("path,name,role", [
    (["swarm_primary_master", "0", "swarm_master"], "swarm_master", "master"),
    (["swarm_secondary_masters", "1", "swarm_master"], "swarm_master", "master"),
    (["swarm_nodes", "3", "swarm_node"], "swarm_node", "worker"),
    (["server"], "kube-master-bfv", "master"),
    (["server"], "my-node", "worker"),
    (["server"], "bastion", None),
])
def test_role_of(path, name, role):
    assert role_of({"resource_name": name, "path": path}) == role


@pytest.mark.parametrize("kwargs,names", [
    ({"types": ["OS::Nova::Server"]}, ["kube-master", "kube-minion", "kube-minion"]),
    ({"types": ["OS::Neutron::*"]}, ["kube_master_eth0"]),
    ({"name_pattern": "kube_*"}, ["kube_masters", "kube_minions", "kube_master_eth0"]),
    ({"name_pattern": "/^kube-(master|minion)$/", "statuses": ["create_failed"]}, ["kube-minion"]),
])
def test_select(kwargs, names):
    assert [r["resource_name"] for r in select(annotate(magnum_stack(), TOP), **kwargs)] == names


def nova(name, sid, fip=None, net="private", ip="10.0.0.5"):
    addresses = [{"addr": ip, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"}]
    if fip:
        addresses.append({"addr": fip, "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"})
    return {"id": sid, "name": name, "status": "ACTIVE", "flavor": {"original_name": "bm.standard"},
            "addresses": {net: addresses}}


@pytest.mark.parametrize("stack_id,name,expected", [
    ("kube-ab12c", "kube-ab12c-control-plane-x1y2z", ("master", "default-master")),
    ("kube-ab12c", "kube-ab12c-default-worker-x1y2z", ("worker", "default-worker")),
    ("kube-ab12c", "kube-ab12c-gpu-nodes-x1y2z", ("worker", "gpu-nodes")),
    ("kube-ab12c", "kube-zz999-default-worker-x1y2z", None),
    ("kube-ab12c", "kube-ab12c-", None),
])
def test_parse_capi_name(stack_id, name, expected):
    assert discovery.parse_capi_name(stack_id, name) == expected


@pytest.mark.parametrize("cluster,era", [
    ({"stack_id": uuid(7)}, "heat"),
    ({"cluster_id": "kube-ab12c"}, "cluster_api"),
    ({"stack_id": "mycluster-0123456789ab"}, "cluster_api"),  # magnum-capi-helm
])
def test_era(cluster, era):
    assert magnum.era_of(cluster) == era


def test_both_eras_give_the_same_shape():
    heat_nodes = discovery.nodes_from_heat(
        [(None, servers_of(annotate(magnum_stack(), TOP)))],
        [nova("c-abc-master-0", "srv-m0", fip="127.42.0.5"), nova("c-abc-node-0", "srv-w0"),
         nova("c-abc-node-1", "srv-w1"), nova("unrelated", "srv-x")])
    capi_nodes = discovery.nodes_from_nova("kube-ab12c", [
        nova("kube-ab12c-control-plane-aaaaa", "c1", fip="127.42.0.6"),
        nova("kube-ab12c-default-worker-bbbbb", "c2"), nova("kube-ab12c-gpu_x-ccccc", "c3"),
        nova("other", "c4")], nodegroups=[{"name": "gpu_x"}])
    assert {tuple(sorted(n)) for n in heat_nodes} == {tuple(sorted(n)) for n in capi_nodes}
    assert [(n["role"], n["nodegroup"]) for n in heat_nodes] == [
        ("master", "default-master"), ("worker", "default-worker"), ("worker", "default-worker")]
    assert [(n["role"], n["nodegroup"]) for n in capi_nodes] == [
        ("master", "default-master"), ("worker", "default-worker"), ("worker", "gpu_x")]
    master = capi_nodes[0]
    assert master["ip"] == "127.42.0.6" and master["private_ip"] == "10.0.0.5"
    assert master["addresses"]["private"] == {"fixed_ip": "10.0.0.5", "fixed_ips": ["10.0.0.5"],
                                              "floating_ip": "127.42.0.6", "mac": "fa:16:3e:00:00:01"}
    assert master["flavor"] == "bm.standard"


class FakeRest:
    def __init__(self, servers):
        self.servers, self.calls = servers, []

    def list_servers(self, name_regex=None, detail=True):
        self.calls.append(name_regex)
        return self.servers


def test_discover_cluster_api_makes_one_listing():
    rest = FakeRest([nova("kube-ab12c-control-plane-aaaaa", "c1"), nova("kube-ab12c-default-worker-bbbbb", "c2")])
    found = discovery.discover(cloud=None, cluster={"name": "c", "cluster_id": "kube-ab12c"}, rest=rest)
    assert found["era"] == "cluster_api" and len(found["nodes"]) == 2
    assert len(rest.calls) == 1 and rest.calls[0].startswith("^kube")


@pytest.mark.parametrize("export,metadata,monitors,path,fs", [
    ("mon1:6789,mon2:6789,mon3:6789:/volumes/_nogroup/a/b", {"__mount_options": "fs=cephfs"},
     ["mon1:6789", "mon2:6789", "mon3:6789"], "/volumes/_nogroup/a/b", "cephfs"),
    ("10.0.0.1:/share-1", {}, ["10.0.0.1"], "/share-1", None),
    ("[fd00::1]:6789:/volumes/x", {"__mount_options": "mds_namespace=fs2"}, ["[fd00::1]:6789"], "/volumes/x", "fs2"),
])
def test_parse_export_location(export, metadata, monitors, path, fs):
    parsed = parse_export_location(export, metadata)
    assert (parsed["monitors"], parsed["path"], parsed["fs_name"]) == (monitors, path, fs)


def swarm_stack():
    """The toolkit's Swarm stack: swarm_masters[0], swarm_nodes[0], swarm_nodegroup_gpu_a[0]."""
    return [
        res("swarm_masters", "OS::Heat::ResourceGroup", TOP, nested=uuid(1)),
        res("swarm_nodes", "OS::Heat::ResourceGroup", TOP, nested=uuid(2)),
        res("swarm_nodegroup_gpu_a", "OS::Heat::ResourceGroup", TOP, nested=uuid(3)),
        res("0", "swarm_node.yaml", uuid(1), nested=uuid(4), parent="swarm_masters"),
        res("0", "swarm_node.yaml", uuid(2), nested=uuid(5), parent="swarm_nodes"),
        res("0", "swarm_node.yaml", uuid(3), nested=uuid(6), parent="swarm_nodegroup_gpu_a"),
        res("node", "OS::Nova::Server", uuid(4), physical="s-m0", parent="0"),
        res("node", "OS::Nova::Server", uuid(5), physical="s-w0", parent="0"),
        res("node", "OS::Nova::Server", uuid(6), physical="s-g0", parent="0"),
    ]


def test_swarm_stack_nodes_take_their_nodegroup_from_server_metadata():
    def server(name, sid, nodegroup):
        return nova(name, sid) | ({"metadata": {"container_infra_nodegroup": nodegroup}} if nodegroup else {})

    nodes = discovery.nodes_from_heat([(None, servers_of(annotate(swarm_stack(), TOP)))], [
        server("s-manager-0", "s-m0", "default-master"), server("s-worker-0", "s-w0", None),
        server("s-gpu-a-0", "s-g0", "gpu-a")])
    assert [(n["name"], n["role"], n["nodegroup"]) for n in nodes] == [
        ("s-manager-0", "master", "default-master"), ("s-worker-0", "worker", "default-worker"),
        ("s-gpu-a-0", "worker", "gpu-a")]
