"""The inventory (container_infra.inventory) and the module's reading and writing, without a cloud:
listings shaped as Nova (2.47), Neutron and Glance v2 answer them."""

from __future__ import annotations

import copy
import os
import stat

import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from container_infra import discovery, inventory
from container_infra.cloud.errors import CloudError
from container_infra.cloud.module import ModuleFailure
from container_infra.modules import os_container_infra_inventory as module_logic

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STACK = "kube-ab12c"
NET = {"private": "a0000000-0000-0000-0000-000000000001", "hte": "a0000000-0000-0000-0000-000000000002",
       "lln": "a0000000-0000-0000-0000-000000000003"}
SUBNET = {"private": "b0000000-0000-0000-0000-000000000001", "hte": "b0000000-0000-0000-0000-000000000002",
          "lln": "b0000000-0000-0000-0000-000000000003"}
IMAGE_UBUNTU = "c0000000-0000-0000-0000-000000000001"
IMAGE_COREOS = "c0000000-0000-0000-0000-000000000002"

STANDARD = {"original_name": "bm.standard", "vcpus": 32, "ram": 131072, "disk": 480, "ephemeral": 0, "swap": 0,
            "extra_specs": {"resources:CUSTOM_BAREMETAL_STANDARD": "1", "resources:VCPU": "0"}}
GPU = {"original_name": "bm.gpu.a100", "vcpus": 64, "ram": 524288, "disk": 960, "ephemeral": 0, "swap": 0,
       "extra_specs": {"resources:CUSTOM_BAREMETAL_GPU_A100": "1", "gpu:vendor": "nvidia", "gpu:count": "4"}}


def server_id(n: int) -> str:
    return f"d0000000-0000-0000-0000-{n:012d}"


def address(ip, mac, kind="fixed"):
    return {"version": 4, "addr": ip, "OS-EXT-IPS:type": kind, "OS-EXT-IPS-MAC:mac_addr": mac}


def server(n: int, name: str, flavor=STANDARD, image=IMAGE_UBUNTU, floating: str | None = None, hte=False):
    mac = f"fa:16:3e:00:00:{n:02x}"
    private = [address(f"10.0.0.{10 + n}", mac)] + ([address(floating, mac, "floating")] if floating else [])
    addresses = {"private": private}
    if hte:  # attached after boot: Nova lists it after the boot network
        addresses["hte"] = [address(f"10.60.0.{10 + n}", f"fa:16:3e:01:00:{n:02x}")]
    return {"id": server_id(n), "name": name, "status": "ACTIVE", "flavor": copy.deepcopy(flavor),
            "image": {"id": image, "links": []} if image else "", "addresses": addresses,
            "OS-EXT-AZ:availability_zone": "docker"}


def port(n: int, network: str, ip: str, mac: str, created: str, port_n: int = 0):
    return {"id": f"e0000000-0000-0000-{port_n:04d}-{n:012d}", "device_id": server_id(n), "network_id": NET[network],
            "mac_address": mac.upper() if network == "lln" else mac, "created_at": created,
            "fixed_ips": [{"subnet_id": SUBNET[network], "ip_address": ip}]}


NETWORKS = [
    {"id": NET["private"], "name": "private", "mtu": 1450, "tags": []},
    {"id": NET["hte"], "name": "hte", "mtu": 9000, "tags": ["owner=ops"]},
    {"id": NET["lln"], "name": "lln", "mtu": 65520, "tags": ["ipoib_mode=connected"]},
]
SUBNETS = [
    {"id": SUBNET["private"], "network_id": NET["private"], "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1",
     "ip_version": 4},
    {"id": SUBNET["hte"], "network_id": NET["hte"], "cidr": "10.60.0.0/16", "gateway_ip": None, "ip_version": 4},
    {"id": SUBNET["lln"], "network_id": NET["lln"], "cidr": "10.70.0.0/16", "gateway_ip": None, "ip_version": 4},
]
IMAGES = [
    {"id": IMAGE_UBUNTU, "name": "ubuntu-capi-sandbox", "os_distro": "ubuntu", "visibility": "public"},
    {"id": IMAGE_COREOS, "name": "fedora-coreos-sandbox", "os_distro": "fedora-coreos", "os_admin_user": "core"},
]


def capi_cloud_data():
    """A Cluster-API-era cluster ``my-cluster.v2``: 1 master (floating IP), 2 default workers, 1 GPU worker
    in nodegroup ``gpu_a100`` with an LLN port and an HTE port attached after boot."""
    servers = [
        server(1, f"{STACK}-control-plane-x7k2p", floating="127.42.0.57"),
        server(2, f"{STACK}-default-worker-aaaaa"),
        server(3, f"{STACK}-default-worker-bbbbb"),
        server(4, f"{STACK}-gpu-a100-ccccc", flavor=GPU, hte=True),
        server(9, "kube-zz999-control-plane-other"),  # another cluster's node: not in this inventory
    ]
    ports = [port(n, "private", f"10.0.0.{10 + n}", f"fa:16:3e:00:00:{n:02x}", "2026-01-01T00:00:00Z")
             for n in (1, 2, 3, 4, 9)]
    ports.append(port(4, "hte", "10.60.0.14", "fa:16:3e:01:00:04", "2026-01-01T00:05:00Z", 1))
    ports.append(port(4, "lln", "10.70.0.14", "fa:16:3e:02:00:04", "2026-01-01T00:06:00Z", 2))
    nodegroups = [{"name": "default-master", "role": "master", "image_id": "ubuntu-capi-sandbox"},
                  {"name": "default-worker", "role": "worker", "image_id": "ubuntu-capi-sandbox"},
                  {"name": "gpu_a100", "role": "worker", "image_id": "ubuntu-capi-sandbox"}]
    return servers, ports, nodegroups


def capi_inventory(**options):
    from container_infra.discovery import nodes_from_nova

    servers, ports, nodegroups = capi_cloud_data()
    nodes = nodes_from_nova(STACK, servers, nodegroups=nodegroups)
    listings = inventory.Listings(servers=servers, ports=ports, networks=NETWORKS, subnets=SUBNETS, images=IMAGES)
    return inventory.build([{"name": "my-cluster.v2", "nodes": nodes, "nodegroups": nodegroups}], listings,
                           **options)


# ---------------------------------------------------------------------------- jump through a master
def test_nodes_without_floating_ip_go_through_the_master_that_has_one():
    built = capi_inventory(extra_host_vars={"ansible_ssh_private_key_file": "/keys/id",
                                            "ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null"})
    hosts = inventory.hostvars_of(built)
    master = f"{STACK}-control-plane-x7k2p"
    worker = hosts[f"{STACK}-default-worker-aaaaa"]
    assert worker["container_infra_jump_host"] == master
    assert worker["ansible_ssh_common_args"] == (
        "-o UserKnownHostsFile=/dev/null -o 'ProxyCommand=ssh -W %h:%p -q -i /keys/id "
        "-o UserKnownHostsFile=/dev/null ubuntu@127.42.0.57'")
    assert hosts[master]["ansible_ssh_common_args"] == "-o UserKnownHostsFile=/dev/null"


def test_cloud_strings_reach_no_shell_unquoted():
    """Issue 15, finding 8: what the cloud names goes through the ProxyCommand's shell as one word."""
    import shlex

    jump = {"ansible_user": "core", "ansible_host": "127.42.0.57; touch /tmp/pwned",
            "ansible_ssh_private_key_file": "/my keys/id", "ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null"}
    outer = shlex.split(inventory.proxy_command(jump))       # as Ansible splits ansible_ssh_common_args
    assert outer[0] == "-o" and len(outer) == 2 and outer[1].startswith("ProxyCommand=")
    inner = shlex.split(outer[1][len("ProxyCommand="):])    # as ssh's shell reads the ProxyCommand
    assert inner == ["ssh", "-W", "%h:%p", "-q", "-i", "/my keys/id", "-o", "UserKnownHostsFile=/dev/null",
                     "core@127.42.0.57; touch /tmp/pwned"]


@pytest.mark.parametrize("user", ["core$(id)", "a b", "root;id", "x%r", "Core"])
def test_an_images_login_name_that_is_no_login_name_is_refused(user):
    with pytest.raises(ModuleFailure, match=r"has os_admin_user .* which is not a login name.*set ansible_user"):
        inventory.login_user({"name": "fcos", "properties": {"os_admin_user": user}})
    assert inventory.login_user({"name": "fcos", "properties": {"os_admin_user": "core"}}) == "core"


def test_cloud_strings_with_template_markers_are_written_unsafe(tmp_path):
    built = {"all": {"children": {"cluster_x": {"hosts": {"x-0": {
        "ansible_host": "127.42.0.5", "container_infra_flavor": "{{ lookup('pipe', 'id') }}",
        "container_infra_networks": {"hte": {"name": "{% raw %}"}}}}}}}}
    text = inventory.render(built, ["x"])
    assert "!unsafe" in text and text.count("!unsafe") == 2
    path = tmp_path / "hosts.yml"
    path.write_text(text)
    loaded = _as_the_inventory_reads(path)
    host = loaded["all"]["children"]["cluster_x"]["hosts"]["x-0"]
    assert host["container_infra_flavor"] == "{{ lookup('pipe', 'id') }}"
    assert _never_templated(host["container_infra_flavor"])
    assert not _never_templated(host["ansible_host"])  # plain values stay as they were
    assert "!unsafe" not in inventory.render({"all": {"children": {"g": {"hosts": {"h": {"a": "b"}}}}}}, ["x"])


def _as_the_inventory_reads(path):
    """The file as Ansible's YAML inventory plugin loads it (its values trusted as templates unless tagged)."""
    from ansible.parsing.dataloader import DataLoader

    try:
        data = DataLoader().load_from_file(str(path), trusted_as_template=True)
        _as_the_inventory_reads.trusts = True
    except TypeError:  # before ansible-core 2.19
        data = DataLoader().load_from_file(str(path))
    return data


def _never_templated(value):
    try:  # ansible-core 2.19 and later: data tagging
        from ansible.template import is_trusted_as_template
    except ImportError:
        return type(value).__name__ == "AnsibleUnsafeText"
    return not is_trusted_as_template(value)


def test_no_jump_when_told_or_when_no_master_has_a_floating_ip():
    hosts = inventory.hostvars_of(capi_inventory(jump_via_master=False))
    assert not any("container_infra_jump_host" in hv for hv in hosts.values())
    servers, _ports, _nodegroups = capi_cloud_data()
    for s in servers:
        s["addresses"] = {net: [e for e in entries if e.get("OS-EXT-IPS:type") != "floating"]
                          for net, entries in s["addresses"].items()}
    hosts = {name: {"container_infra_server_id": s["id"], "container_infra_role": "worker", "ansible_host": "10.0.0.1"}
             for name, s in ((s["name"], s) for s in servers)}
    inventory.add_jump_host(hosts, {s["id"]: s for s in servers})
    assert not any("ansible_ssh_common_args" in hv for hv in hosts.values())


# ---------------------------------------------------------------------------- small pieces
@pytest.mark.parametrize("name,group", [
    ("my-cluster.v2", "cluster_my_cluster_v2"),
    ("k8s demo/ä", "cluster_k8s_demo__"),
    ("Plain_Name9", "cluster_Plain_Name9"),
])
def test_group_names_are_ansible_safe(name, group):
    assert inventory.cluster_group(name) == group
    assert inventory.nodegroup_group("gpu-a100.x") == "nodegroup_gpu_a100_x"


@pytest.mark.parametrize("specs,expected", [
    ({"gpu:count": "4", "gpu:vendor": "nvidia"}, True),
    ({"gpu:count": "0"}, False),
    ({"resources:VGPU": "1"}, True),
    ({"resources1:PGPU": "2"}, True),
    ({"resources:CUSTOM_BAREMETAL_GPU_A100": "1"}, True),
    ({"resources:CUSTOM_BAREMETAL_GPU_A100": "0"}, False),
    ({"resources:VCPU": "0", "resources:CUSTOM_BAREMETAL_STANDARD": "1"}, False),
    ({"pci_passthrough:alias": "a100:2"}, True),
    ({"pci_passthrough:alias": ""}, False),
    ({}, False),
    (None, False),
])
def test_gpu_detection(specs, expected):
    assert inventory.has_gpu(specs) is expected


@pytest.mark.parametrize("specs,count", [
    ({"gpu:count": "4", "gpu:vendor": "nvidia"}, 4),
    ({"gpu:count": "0"}, None),
    ({"pci_passthrough:alias": "a100:2"}, 2),
    ({"pci_passthrough:alias": "a100:2,t4:1"}, 3),
    ({"pci_passthrough:alias": "a100"}, None),
    # A resource class's amount is one per bare-metal node, not its GPUs.
    ({"resources:CUSTOM_BAREMETAL_GPU_A100": "1"}, None),
    ({"resources:VGPU": "1", "gpu:count": "2"}, 2),
    ({}, None),
    (None, None),
])
def test_gpu_count_is_what_the_flavor_says_or_none(specs, count):
    assert inventory.gpu_count(specs) == count


@pytest.mark.parametrize("image,override,user", [
    ({"os_admin_user": "core", "os_distro": "fedora-coreos"}, None, "core"),
    ({"os_distro": "fedora-atomic"}, None, "fedora"),
    ({"os_distro": "Ubuntu"}, None, "ubuntu"),
    ({"properties": {"os_distro": "rocky"}}, None, "rocky"),
    ({"os_distro": "gentoo"}, None, None),
    (None, None, None),
    ({"os_admin_user": "core"}, "admin", "admin"),
])
def test_login_user(image, override, user):
    assert inventory.login_user(image, override) == user


@pytest.mark.parametrize("tags,mode", [
    (["ipoib_mode=connected"], "connected"),
    (["x", "ipoib_mode=datagram"], "datagram"),
    (["ipoib_mode=bogus"], None),
    ([], None),
])
def test_ipoib_mode_from_network_tag(tags, mode):
    assert inventory.ipoib_mode({"tags": tags}) == mode


# ---------------------------------------------------------------------------- ansible_host
def test_ansible_host_is_the_floating_ip_first():
    hosts = inventory.hostvars_of(capi_inventory(network="hte"))
    assert hosts[f"{STACK}-control-plane-x7k2p"]["ansible_host"] == "127.42.0.57"


def test_ansible_host_is_the_ip_on_the_chosen_network_without_a_floating_ip():
    hosts = inventory.hostvars_of(capi_inventory(network="lln"))
    gpu_node = hosts[f"{STACK}-gpu-a100-ccccc"]
    assert gpu_node["ansible_host"] == "10.70.0.14"  # from the port listing (Nova's cache may lag)
    # A node without a port on that network: its first fixed IP.
    assert hosts[f"{STACK}-default-worker-aaaaa"]["ansible_host"] == "10.0.0.12"


def test_ansible_host_is_the_boot_networks_ip_not_a_later_provider_port():
    # hte sorts before private by name, but was attached later: Nova's order keeps private first.
    hosts = inventory.hostvars_of(capi_inventory())
    assert hosts[f"{STACK}-gpu-a100-ccccc"]["ansible_host"] == "10.0.0.14"


def test_ansible_host_from_ports_when_nova_has_no_addresses_yet():
    entries = {"private": {"ip": "10.0.0.99"}}
    assert inventory.choose_ansible_host({"addresses": {}}, entries) == "10.0.0.99"
    assert inventory.choose_ansible_host({"addresses": {}}, {}) is None


# ---------------------------------------------------------------------------- the whole inventory
def test_groups_and_host_vars():
    built = capi_inventory()
    master, w1, w2, gpu_node = (f"{STACK}-control-plane-x7k2p", f"{STACK}-default-worker-aaaaa",
                                f"{STACK}-default-worker-bbbbb", f"{STACK}-gpu-a100-ccccc")
    assert inventory.groups_of(built) == {
        "cluster_my_cluster_v2": [master, w1, w2, gpu_node],
        "masters": [master],
        "workers": [w1, w2, gpu_node],
        "nodegroup_default_master": [master],
        "nodegroup_default_worker": [w1, w2],
        "nodegroup_gpu_a100": [gpu_node],
        "gpu": [gpu_node],
    }
    hosts = inventory.hostvars_of(built)
    assert "kube-zz999-control-plane-other" not in hosts
    assert list(hosts[gpu_node]) == [
        "ansible_host", "ansible_user", "container_infra_cluster", "container_infra_role",
        "container_infra_nodegroup", "container_infra_server_id", "container_infra_flavor", "container_infra_gpu",
        "container_infra_networks", "container_infra_gpu_count", "ansible_ssh_common_args", "container_infra_jump_host"]
    assert "container_infra_jump_host" not in hosts[master]
    # The flavor's gpu:count; a node whose flavor says nothing of GPUs has no such variable.
    assert hosts[gpu_node]["container_infra_gpu_count"] == 4 and "container_infra_gpu_count" not in hosts[w1]
    assert hosts[gpu_node]["container_infra_nodegroup"] == "gpu_a100"  # the real name, not the server name's
    assert hosts[gpu_node]["container_infra_gpu"] is True and hosts[w1]["container_infra_gpu"] is False
    assert hosts[master]["container_infra_role"] == "master" and hosts[w1]["container_infra_role"] == "worker"
    assert hosts[master]["ansible_user"] == "ubuntu"
    assert hosts[gpu_node]["container_infra_flavor"] == "bm.gpu.a100"
    assert hosts[gpu_node]["container_infra_server_id"] == server_id(4)
    networks = hosts[gpu_node]["container_infra_networks"]
    assert list(networks) == ["hte", "lln", "private"]
    assert networks["lln"] == {"ip": "10.70.0.14", "mac": "fa:16:3e:02:00:04", "mtu": 65520, "cidr": "10.70.0.0/16",
                               "prefix": 16, "gateway": None, "port_id": "e0000000-0000-0000-0002-000000000004",
                               "ipoib_mode": "connected"}
    assert networks["private"]["gateway"] == "10.0.0.1" and networks["private"]["prefix"] == 24
    assert networks["hte"]["ipoib_mode"] is None and networks["hte"]["mtu"] == 9000
    # The other groups name the hosts only.
    assert all(v == {} for g, c in built["all"]["children"].items() if not g.startswith("cluster_")
               for v in c["hosts"].values())


def test_user_override_and_extra_host_vars():
    hosts = inventory.hostvars_of(capi_inventory(ansible_user="admin",
                                                 extra_host_vars={"ansible_python_interpreter": "/usr/bin/python3"}))
    assert {v["ansible_user"] for v in hosts.values()} == {"admin"}
    assert {v["ansible_python_interpreter"] for v in hosts.values()} == {"/usr/bin/python3"}


def test_user_of_a_volume_booted_node_comes_from_its_nodegroups_image():
    from container_infra.discovery import nodes_from_nova

    servers, ports, nodegroups = capi_cloud_data()
    servers[1]["image"] = ""  # booted from a volume
    nodegroups[1]["image_id"] = "fedora-coreos-sandbox"
    nodes = nodes_from_nova(STACK, servers, nodegroups=nodegroups)
    built = inventory.build([{"name": "c", "nodes": nodes, "nodegroups": nodegroups}],
                            inventory.Listings(servers=servers, ports=ports, networks=NETWORKS, subnets=SUBNETS,
                                               images=IMAGES))
    assert inventory.hostvars_of(built)[f"{STACK}-default-worker-aaaaa"]["ansible_user"] == "core"


def test_gpu_from_the_flavor_listing_when_nova_hides_extra_specs():
    from container_infra.discovery import nodes_from_nova

    servers, ports, nodegroups = capi_cloud_data()
    for item in servers:
        del item["flavor"]["extra_specs"]
    assert inventory.needs_flavor_listing(servers)
    flavors = [{"id": "f1", "name": "bm.gpu.a100", "extra_specs": GPU["extra_specs"]},
               {"id": "f2", "name": "bm.standard", "extra_specs": STANDARD["extra_specs"]}]
    built = inventory.build([{"name": "c", "nodes": nodes_from_nova(STACK, servers, nodegroups=nodegroups)}],
                            inventory.Listings(servers=servers, ports=ports, networks=NETWORKS, subnets=SUBNETS,
                                               flavors=flavors, images=IMAGES))
    assert inventory.groups_of(built)["gpu"] == [f"{STACK}-gpu-a100-ccccc"]


def test_no_nodes_gives_the_fixed_groups_empty():
    built = inventory.build([{"name": "empty", "nodes": []}], inventory.Listings())
    assert inventory.groups_of(built) == {"cluster_empty": [], "masters": [], "workers": [], "gpu": []}


def test_rendered_text_is_stable_loadable_and_yamllint_clean():
    first = inventory.render(capi_inventory(), ["my-cluster.v2"], "sandbox")
    second = inventory.render(capi_inventory(), ["my-cluster.v2"], "sandbox")
    assert first == second
    assert "cluster my-cluster.v2 on cloud sandbox" in first.splitlines()[1]
    assert yaml.safe_load(first) == capi_inventory()
    config = YamlLintConfig(file=os.path.join(REPO, ".yamllint"))
    problems = list(linter.run(first, config))
    assert problems == [], problems
    # Lists in extra host vars are indented as yamllint wants too.
    with_list = inventory.render(capi_inventory(extra_host_vars={"tags": ["a", "b"]}), ["c"], None)
    assert list(linter.run(with_list, config)) == []
    assert yaml.safe_load(with_list) == capi_inventory(extra_host_vars={"tags": ["a", "b"]})
    # A different inventory gives a different text.
    assert inventory.render(capi_inventory(network="lln"), ["my-cluster.v2"], "sandbox") != first


# ---------------------------------------------------------------------------- reading the cloud (fakes)
class FakeRest:
    """Records each listing: collect() must make the same number whatever the number of nodes."""

    def __init__(self, servers, ports):
        self.servers, self.ports, self.calls = servers, ports, []

    def list_servers(self, name_regex=None, detail=True):
        self.calls.append(("servers", name_regex))
        return self.servers

    def list_ports_where(self, device_ids, fields=None):
        self.calls.append(("ports", None))
        return [p for p in self.ports if p["device_id"] in set(device_ids)]

    def list_networks(self, names=None, ids=None):
        self.calls.append(("networks", None))
        return NETWORKS

    def list_subnets(self, network_ids):
        self.calls.append(("subnets", None))
        return SUBNETS

    def list_images(self, ids=None, names=None):
        self.calls.append(("images", None))
        return IMAGES

    def list_flavors(self):
        self.calls.append(("flavors", None))
        return []


class FakeClusters:
    def __init__(self, clusters):
        self.clusters = clusters

    def get(self, ref):
        for cluster in self.clusters:
            if ref in (cluster["uuid"], cluster["name"]):
                return cluster
        raise type("NotFound", (Exception,), {"http_status": 404})(f"Cluster {ref} could not be found")

    def list(self):
        return self.clusters


class FakeNodegroups:
    def __init__(self, nodegroups):
        self.nodegroups = nodegroups

    def list(self, uuid):
        return self.nodegroups


class FakeCloud:
    def __init__(self, clusters, nodegroups):
        self._magnum = type("Magnum", (), {})()
        self._magnum.clusters = FakeClusters(clusters)
        self._magnum.nodegroups = FakeNodegroups(nodegroups)

    def magnum(self):
        return self._magnum


CLUSTER = {"uuid": "f0000000-0000-0000-0000-000000000001", "name": "my-cluster.v2", "cluster_id": STACK,
           "status": "CREATE_COMPLETE"}


def scaled(workers: int):
    servers, ports, nodegroups = capi_cloud_data()
    for n in range(100, 100 + workers):
        servers.append(server(n, f"{STACK}-default-worker-{n:05d}"))
        ports.append(port(n, "private", "10.0.1.1", "fa:16:3e:aa:aa:aa", "2026-01-01T00:00:00Z"))
    return servers, ports, nodegroups


@pytest.mark.parametrize("workers", [0, 500])
def test_collect_makes_the_same_calls_whatever_the_node_count(workers):
    servers, ports, nodegroups = scaled(workers)
    rest = FakeRest(servers, ports)
    collected = discovery.collect(FakeCloud([CLUSTER], nodegroups), ["my-cluster.v2"], rest=rest)
    assert len(collected["clusters"][0]["nodes"]) == 4 + workers
    assert rest.calls == [("servers", "^(kube\\-ab12c)-"), ("ports", None), ("networks", None),
                          ("subnets", None), ("images", None)]


def test_unknown_cluster_and_cluster_without_stack_are_one_sentence():
    cloud = FakeCloud([CLUSTER, {**CLUSTER, "uuid": "u2", "name": "young", "cluster_id": None, "stack_id": None,
                                 "status": "CREATE_IN_PROGRESS"}], [])
    with pytest.raises(CloudError) as missing:
        discovery.collect(cloud, ["nope"], rest=FakeRest([], []))
    assert str(missing.value) == ("cluster nope was not found in the project; check the name or UUID with "
                                  "`openstack coe cluster list`")
    with pytest.raises(CloudError) as young:
        discovery.collect(cloud, ["young"], rest=FakeRest([], []))
    assert "cluster young has no stack yet" in str(young.value) and "\n" not in str(young.value)
    # Listing every cluster (the plugin): the young one is left out with a warning.
    servers, ports, nodegroups = capi_cloud_data()
    cloud.magnum().nodegroups = FakeNodegroups(nodegroups)
    collected = discovery.collect(cloud, None, skip_unready=True, rest=FakeRest(servers, ports))
    assert [c["name"] for c in collected["clusters"]] == ["my-cluster.v2"]
    assert len(collected["warnings"]) == 1 and "young" in collected["warnings"][0]


# ---------------------------------------------------------------------------- the module's file
class FakeModule:
    def __init__(self, params, check_mode=False):
        self.params = {"network": None, "ansible_user": None, "extra_host_vars": {}, "jump_via_master": True,
                       "cloud": "sandbox", **params}
        self.check_mode = check_mode
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)


@pytest.fixture
def fake_collect(monkeypatch):
    servers, ports, nodegroups = capi_cloud_data()
    real = module_logic.collect

    def collect(cloud, refs, **kwargs):
        return real(FakeCloud([CLUSTER], nodegroups), refs, rest=FakeRest(servers, ports), **kwargs)

    monkeypatch.setattr(module_logic, "collect", collect)


def test_module_writes_once_then_reports_no_change(fake_collect, tmp_path):
    path = str(tmp_path / "inventories" / "my-cluster" / "hosts.yml")
    predicted = module_logic.run(FakeModule({"cluster": "my-cluster.v2", "path": path}, check_mode=True), None)
    assert predicted["changed"] and not os.path.exists(path)
    assert predicted["diff"]["before"] == "" and predicted["diff"]["after"].startswith("---\n# Ansible inventory")
    written = module_logic.run(FakeModule({"cluster": "my-cluster.v2", "path": path}), None)
    assert written["changed"] and stat.S_IMODE(os.stat(path).st_mode) == 0o644
    with open(path, encoding="utf-8") as handle:
        assert yaml.safe_load(handle) == written["inventory"]
    assert written["groups"]["gpu"] == [f"{STACK}-gpu-a100-ccccc"]
    assert {h["name"]: h["role"] for h in written["hosts"]}[f"{STACK}-control-plane-x7k2p"] == "master"
    before = os.stat(path).st_mtime_ns
    again = module_logic.run(FakeModule({"cluster": "my-cluster.v2", "path": path}), None)
    assert not again["changed"] and os.stat(path).st_mtime_ns == before
    checked = module_logic.run(FakeModule({"cluster": "my-cluster.v2", "path": path}, check_mode=True), None)
    assert not checked["changed"]
    changed = module_logic.run(FakeModule({"cluster": "my-cluster.v2", "path": path, "ansible_user": "admin"},
                                          check_mode=True), None)
    assert changed["changed"] and "ansible_user: admin" in changed["diff"]["after"]
    assert "ansible_user: ubuntu" in changed["diff"]["before"]


def test_module_warns_about_a_network_no_node_has(fake_collect):
    module = FakeModule({"cluster": "my-cluster.v2", "path": None, "network": "privat"})
    result = module_logic.run(module, None)
    assert not result["changed"] and result["path"] is None
    assert len(module.warnings) == 1 and "network privat is on none of the nodes" in module.warnings[0]


def test_module_unwritable_path_is_one_sentence(fake_collect, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ModuleFailure) as failure:
        module_logic.run(FakeModule({"cluster": "my-cluster.v2", "path": str(blocker / "hosts.yml")}), None)
    message = str(failure.value)
    assert message.startswith(f"writing the inventory file {blocker / 'hosts.yml'} failed: ")
    assert "a-file is a file, not a directory; choose a path you can write" in message and "\n" not in message
    with pytest.raises(ModuleFailure) as directory:
        module_logic.run(FakeModule({"cluster": "my-cluster.v2", "path": str(tmp_path)}), None)
    assert "is a directory" in str(directory.value)


def test_module_returns_what_the_role_adds_to_the_play(fake_collect):
    result = module_logic.run(FakeModule({"cluster": "my-cluster.v2", "path": None}), None)
    assert result["hostvars"] == inventory.hostvars_of(result["inventory"])
    assert result["host_groups"] == inventory.host_groups(result["inventory"])
    master = next(host for host, v in result["hostvars"].items() if v["container_infra_role"] == "master")
    assert "masters" in result["host_groups"][master] and result["hostvars"][master]["ansible_host"]


def test_the_dynamic_inventory_never_templates_cloud_data():
    """Issue 15, finding 8: the plugin's host vars are data, as the written file's are."""
    import importlib.util
    from pathlib import Path

    from ansible.inventory.data import InventoryData

    path = Path(__file__).resolve().parents[2] / "inventory_plugins" / "container_infra.py"
    spec = importlib.util.spec_from_file_location("container_infra_inventory_plugin", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin = module.InventoryModule()
    plugin.inventory = InventoryData()
    plugin.get_option = lambda name: {"strict": False, "compose": {}, "groups": {}, "keyed_groups": []}[name]
    plugin._populate({"all": {"children": {"cluster_x": {"hosts": {"x-0": {
        "container_infra_cluster": "x", "container_infra_flavor": "{{ lookup('pipe', 'id') }}"}}}}}})
    value = plugin.inventory.get_host("x-0").get_vars()["container_infra_flavor"]
    assert value == "{{ lookup('pipe', 'id') }}" and _never_templated(value)
