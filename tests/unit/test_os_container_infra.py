"""os_container_infra, os_container_infra_template and os_container_infra_config without a cloud:
validation sentences and the plan (find -> diff -> plan), table-driven, each with its no-change run."""

from __future__ import annotations

import base64
import datetime

import pytest

from container_infra import credentials, magnum_cluster, magnum_template
from container_infra import magnum as mg
from container_infra.cloud.module import ModuleFailure
from container_infra.modules import os_container_infra, os_container_infra_template

TEMPLATE = {"uuid": "11111111-1111-1111-1111-111111111111", "name": "t1", "labels": {"a": "1"}}
TEMPLATE2 = {"uuid": "22222222-2222-2222-2222-222222222222", "name": "t2"}


def params(**overrides):
    base = {name: spec.get("default") for name, spec in os_container_infra.ARGUMENT_SPEC.items()}
    base.update(name="demo", state="present", wait=True, timeout=600, poll_interval=2.0)
    base.update(overrides)
    return base


def cluster(**overrides):
    base = {"uuid": "cccccccc-cccc-cccc-cccc-cccccccccccc", "name": "demo", "status": "CREATE_COMPLETE",
            "cluster_template_id": TEMPLATE["uuid"], "keypair": "kp", "master_count": 1, "node_count": 3,
            "flavor_id": "bm.standard", "master_flavor_id": "bm.standard", "labels": {"a": "1"},
            "fixed_network": "private", "fixed_subnet": "private-subnet", "floating_ip_enabled": True,
            "master_lb_enabled": False, "docker_volume_size": None, "updated_at": "t0"}
    base.update(overrides)
    return base


def nodegroup(name, count=1, role="worker", is_default=False, **extra):
    return {"name": name, "node_count": count, "role": role, "is_default": is_default, "min_node_count": 0,
            "max_node_count": None, "flavor_id": "bm.standard", "image_id": "img", **extra}


DEFAULT_NGS = [nodegroup("default-master", 1, "master", True), nodegroup("default-worker", 3, "worker", True)]


def aliases(kind, stored, wanted):
    """Names and ids of the same flavor count as the same."""
    same = {"bm.standard": "f-1", "private": "n-1"}
    return stored == wanted or same.get(wanted) == stored or same.get(stored) == wanted


# ------------------------------------------------------------------ validation
BAD_PARAMS = [
    ({"node_count": -1}, "node_count must be 0 or more, not -1"),
    ({"master_count": 0}, "master_count must be 1 or more, not 0"),
    ({"docker_volume_size": 0}, "docker_volume_size must be 1 or more"),
    ({"name": "1cluster"}, "is not a valid cluster name"),
    ({"name": "a" * 243}, "Magnum allows at most 242"),
    ({"labels": {"kube_tag": {"nested": 1}}}, "labels.kube_tag must be a string, number or boolean"),
    ({"labels": {"bad key": "x"}}, "labels has an invalid key 'bad key'"),
    ({"poll_interval": 0}, "poll_interval must be more than 0"),
    ({"timeout": 0}, "timeout must be 1 or more seconds, not 0"),
    ({"nodegroups": [{"name": "g", "node_count": 1, "min_node_count": 2}]},
     "nodegroups[g].node_count 1 is below its min_node_count 2"),
    ({"nodegroups": [{"name": "g", "node_count": 5, "max_node_count": 2}]}, "above its max_node_count 2"),
    ({"nodegroups": [{"name": "g", "node_count": -2}]}, "nodegroups[g].node_count must be 0 or more"),
    ({"nodegroups": [{"name": "g", "min_node_count": 3, "max_node_count": 2}]}, "min_node_count 3 is above"),
    ({"nodegroups": [{"name": "g"}, {"name": "g"}]}, "names 'g' twice"),
    ({"nodegroups": [{"name": "default-master", "node_count": 3}]}, "cannot manage default-master"),
    ({"nodegroups": [{"name": "m", "role": "master"}]}, "role cannot be master"),
    ({"nodegroups": [{"name": "g", "node_taints": [{"key": "gpu", "effect": "Sometimes"}]}]},
     "node_taints entries need a key and an effect"),
    ({"nodegroups": [{"name": "g", "labels": {"x": [1]}}]}, "nodegroups[g].labels.x must be a string"),
    ({"node_count": 2, "nodegroups": [{"name": "default-worker", "node_count": 3}]}, "disagree"),
]


def _ng_defaults(ng):
    return {**{k: v.get("default") for k, v in os_container_infra.NODEGROUP_SPEC.items()}, **ng}


@pytest.mark.parametrize(("overrides", "message"), BAD_PARAMS, ids=[m[:30] for _, m in BAD_PARAMS])
def test_bad_parameters_fail_in_one_sentence(overrides, message):
    if "nodegroups" in overrides:
        overrides = {**overrides, "nodegroups": [_ng_defaults(ng) for ng in overrides["nodegroups"]]}
    with pytest.raises(ModuleFailure) as caught:
        magnum_cluster.validate(params(**overrides))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_labels_are_flattened_to_strings():
    assert mg.clean_labels("labels", {"a": 1, "b": True, "c": "x", "d": 1.5}) == {
        "a": "1", "b": "true", "c": "x", "d": "1.5"}


# ------------------------------------------------------------------ planning
PLANS = [
    # (name, params, current, nodegroups, template, expected actions, expected refusal words)
    ("create", params(cluster_template="t1", node_count=3), None, None, TEMPLATE,
     ["create cluster demo"], []),
    ("create with nodegroups", params(cluster_template="t1", nodegroups=[_ng_defaults({"name": "gpu"})]),
     None, None, TEMPLATE, ["create cluster demo", "create nodegroup gpu with 1 nodes"], []),
    ("no change", params(cluster_template="t1", node_count=3, flavor="bm.standard"), cluster(), DEFAULT_NGS,
     TEMPLATE, [], []),
    ("flavor by id is the same", params(flavor="f-1", fixed_network="n-1"), cluster(), DEFAULT_NGS, None, [], []),
    ("grow", params(node_count=5), cluster(), DEFAULT_NGS, None,
     ["resize nodegroup default-worker from 3 to 5 nodes"], []),
    ("shrink naming nodes", params(node_count=2, nodes_to_remove=["n-2"]), cluster(), DEFAULT_NGS, None,
     ["resize nodegroup default-worker from 3 to 2 nodes, removing n-2"], []),
    ("nodes_to_remove alone changes nothing", params(node_count=3, nodes_to_remove=["n-2"]), cluster(),
     DEFAULT_NGS, None, [], []),
    ("upgrade", params(cluster_template="t2"), cluster(), DEFAULT_NGS, TEMPLATE2,
     ["upgrade to cluster template t2"], []),
    ("upgrade and resize", params(cluster_template="t2", node_count=4), cluster(), DEFAULT_NGS, TEMPLATE2,
     ["upgrade to cluster template t2", "resize nodegroup default-worker from 3 to 4 nodes"], []),
    ("add nodegroup", params(nodegroups=[_ng_defaults({"name": "gpu", "node_count": 2})]), cluster(), DEFAULT_NGS,
     None, ["create nodegroup gpu with 2 nodes"], []),
    ("nodegroup unchanged", params(nodegroups=[_ng_defaults({"name": "gpu", "node_count": 2})]), cluster(),
     [*DEFAULT_NGS, nodegroup("gpu", 2)], None, [], []),
    ("resize nodegroup", params(nodegroups=[_ng_defaults({"name": "gpu", "node_count": 4})]), cluster(),
     [*DEFAULT_NGS, nodegroup("gpu", 2)], None, ["resize nodegroup gpu from 2 to 4 nodes"], []),
    ("nodegroup bounds", params(nodegroups=[_ng_defaults({"name": "gpu", "node_count": 2, "max_node_count": 5})]),
     cluster(), [*DEFAULT_NGS, nodegroup("gpu", 2)], None, ["update nodegroup gpu: max_node_count 5"], []),
    ("remove nodegroup", params(nodegroups=[]), cluster(), [*DEFAULT_NGS, nodegroup("gpu", 2)], None,
     ["delete nodegroup gpu"], []),
    ("nodegroups omitted leaves them", params(), cluster(), [*DEFAULT_NGS, nodegroup("gpu", 2)], None, [], []),
    ("default-worker via nodegroups", params(nodegroups=[_ng_defaults({"name": "default-worker", "node_count": 4})]),
     cluster(), DEFAULT_NGS, None, ["resize nodegroup default-worker from 3 to 4 nodes"], []),
    ("refuse immutable", params(master_count=3, keypair="other", flavor="bm.large"), cluster(), DEFAULT_NGS, None,
     [], ["master_count is 1, wanted 3", "keypair is 'kp', wanted 'other'", "flavor is 'bm.standard'"]),
    ("refuse labels", params(labels={"a": "2"}), cluster(), DEFAULT_NGS, None, [], ["labels differ in a"]),
    ("merged labels present", params(labels={"a": "1"}, merge_labels=True), cluster(labels={"a": "1", "b": "2"}),
     DEFAULT_NGS, None, [], []),
    ("refuse nodegroup flavor", params(nodegroups=[_ng_defaults({"name": "gpu", "node_count": 2,
                                                                 "flavor": "bm.gpu.a100"})]),
     cluster(), [*DEFAULT_NGS, nodegroup("gpu", 2)], None, [], ["nodegroups[gpu].flavor is 'bm.standard'"]),
    ("recreate failed", params(cluster_template="t1"), cluster(status="CREATE_FAILED"), None, TEMPLATE,
     ["delete cluster demo (CREATE_FAILED) and create it again"], []),
    ("absent", params(state="absent"), cluster(status="CREATE_FAILED"), None, None, ["delete cluster demo"], []),
    ("absent, gone", params(state="absent"), None, None, None, [], []),
    ("query", params(state="query"), cluster(), None, None, [], []),
]


@pytest.mark.parametrize(("params_", "current", "ngs", "template", "actions", "refusals"),
                         [p[1:] for p in PLANS], ids=[p[0] for p in PLANS])
def test_plan(params_, current, ngs, template, actions, refusals):
    plan = magnum_cluster.plan_cluster(params_, current, ngs, template=template, same=aliases)
    assert plan.describe() == (actions if not refusals else plan.describe())
    for words in refusals:
        assert any(words in r for r in plan.refusals), plan.refusals
    if not refusals:
        assert plan.refusals == []
    assert plan.changed == bool(plan.actions)


def test_plan_diff_before_after():
    plan = magnum_cluster.plan_cluster(params(node_count=5, cluster_template="t2"), cluster(), DEFAULT_NGS,
                            template=TEMPLATE2)
    assert plan.before == {"node_count": 3, "cluster_template_id": TEMPLATE["uuid"]}
    assert plan.after == {"node_count": 5, "cluster_template_id": TEMPLATE2["uuid"]}


def test_plan_after_applying_is_empty():
    """The second run: the cluster as the first run left it gives no actions."""
    wanted = params(cluster_template="t2", node_count=5, nodegroups=[_ng_defaults({"name": "gpu", "node_count": 2})])
    first = magnum_cluster.plan_cluster(wanted, cluster(), DEFAULT_NGS, template=TEMPLATE2)
    assert len(first.actions) == 3
    # Magnum's cluster node_count is the sum over the worker nodegroups: 5 default workers + 2 gpu.
    after = cluster(cluster_template_id=TEMPLATE2["uuid"], node_count=7)
    ngs_after = [DEFAULT_NGS[0], nodegroup("default-worker", 5, is_default=True), nodegroup("gpu", 2)]
    second = magnum_cluster.plan_cluster(wanted, after, ngs_after, template=TEMPLATE2)
    assert second.actions == [] and second.refusals == []


def test_default_workers_are_compared_with_their_own_nodegroup_not_the_cluster_total():
    """The cluster's node_count (7) counts the gpu nodegroup too; 5 default workers asked for, 5 there."""
    ngs = [DEFAULT_NGS[0], nodegroup("default-worker", 5, is_default=True), nodegroup("gpu", 2)]
    wanted = params(node_count=5, nodegroups=[_ng_defaults({"name": "gpu", "node_count": 2})])
    assert magnum_cluster.plan_cluster(wanted, cluster(node_count=7), ngs).actions == []
    grown = magnum_cluster.plan_cluster(params(node_count=6), cluster(node_count=7), ngs)
    assert grown.describe() == ["resize nodegroup default-worker from 5 to 6 nodes"]
    assert (grown.before["node_count"], grown.after["node_count"]) == (5, 6)


def test_nodegroup_bounds_are_sent_only_when_they_differ():
    """min/max come from the nodegroup's own record (Magnum's listing leaves them out)."""
    listed = [*DEFAULT_NGS, {"name": "gpu", "node_count": 2, "role": "worker", "is_default": False}]
    detail = {"gpu": nodegroup("gpu", 2, min_node_count=1, max_node_count=4)}
    same = params(nodegroups=[_ng_defaults({"name": "gpu", "node_count": 2, "min_node_count": 1,
                                            "max_node_count": 4})])
    assert magnum_cluster.plan_cluster(same, cluster(node_count=5), listed, nodegroup_details=detail).actions == []
    wider = params(nodegroups=[_ng_defaults({"name": "gpu", "node_count": 2, "max_node_count": 6})])
    assert magnum_cluster.plan_cluster(wider, cluster(node_count=5), listed, nodegroup_details=detail).describe() == [
        "update nodegroup gpu: max_node_count 6"]


def test_bounds_loosen_before_a_resize_and_tighten_after():
    """Magnum checks min <= node_count <= max on the update and on the resize, so the order matters."""
    ngs = [*DEFAULT_NGS, nodegroup("gpu", 5, min_node_count=0, max_node_count=5)]
    grow = params(nodegroups=[_ng_defaults({"name": "gpu", "node_count": 8, "min_node_count": 6,
                                            "max_node_count": 8})])
    assert magnum_cluster.plan_cluster(grow, cluster(node_count=8), ngs).describe() == [
        "update nodegroup gpu: max_node_count 8", "resize nodegroup gpu from 5 to 8 nodes",
        "update nodegroup gpu: min_node_count 6"]
    shrink = params(nodegroups=[_ng_defaults({"name": "gpu", "node_count": 2, "max_node_count": 2})])
    assert magnum_cluster.plan_cluster(shrink, cluster(node_count=8), ngs).describe() == [
        "resize nodegroup gpu from 5 to 2 nodes", "update nodegroup gpu: max_node_count 2"]


def test_default_worker_bounds_through_nodegroups():
    ngs = [DEFAULT_NGS[0], nodegroup("default-worker", 3, is_default=True, min_node_count=0, max_node_count=3)]
    wanted = params(nodegroups=[_ng_defaults({"name": "default-worker", "node_count": 4, "max_node_count": 6})])
    plan = magnum_cluster.plan_cluster(wanted, cluster(), ngs)
    assert plan.describe() == ["update nodegroup default-worker: max_node_count 6",
                               "resize nodegroup default-worker from 3 to 4 nodes"]
    assert plan.after["nodegroups"] == {"default-worker": {"max_node_count": 6}}
    settled = [DEFAULT_NGS[0], nodegroup("default-worker", 4, is_default=True, max_node_count=6)]
    assert magnum_cluster.plan_cluster(wanted, cluster(node_count=4), settled).actions == []


def test_nodegroup_details_are_read_only_where_the_listing_falls_short():
    calls = []

    class Nodegroups:
        def get(self, cluster_uuid, name):
            calls.append(name)
            return {"name": name, "node_count": 3, "min_node_count": 0, "max_node_count": None}

    class Magnum:
        nodegroups = Nodegroups()

    listed = [*DEFAULT_NGS, nodegroup("gpu", 2)]
    plain = params(node_count=3, nodegroups=[_ng_defaults({"name": "gpu", "node_count": 2})])
    assert magnum_cluster.nodegroup_details(Magnum(), "c", plain, listed) == {} and calls == []
    bounded = params(node_count=4, nodegroups=[_ng_defaults({"name": "gpu", "node_count": 2,
                                                             "max_node_count": 3})])
    assert set(magnum_cluster.nodegroup_details(Magnum(), "c", bounded, listed)) == {"default-worker", "gpu"}


def test_create_body_uses_magnum_fields():
    body = magnum_cluster.create_body(params(cluster_template="t1", node_count=2, flavor="bm.large", labels={"x": 1},
                                  merge_labels=True, create_timeout=30), TEMPLATE["uuid"])
    assert body == {"name": "demo", "cluster_template_id": TEMPLATE["uuid"], "node_count": 2,
                    "flavor_id": "bm.large", "labels": {"x": "1"}, "merge_labels": True, "create_timeout": 30}


def test_shrinking_below_the_default_worker_minimum_is_refused():
    ngs = [DEFAULT_NGS[0], nodegroup("default-worker", 3, is_default=True, min_node_count=2)]
    with pytest.raises(ModuleFailure, match="below the min_node_count 2 of nodegroup default-worker"):
        magnum_cluster.plan_cluster(params(node_count=1), cluster(), ngs)


def test_refusal_message_is_one_sentence():
    text = magnum_cluster.refusal_message("demo", ["master_count is 1, wanted 3", "keypair is 'a', wanted 'b'"])
    assert text.startswith("cluster demo cannot be changed in place: master_count")
    assert "delete the cluster" in text and "\n" not in text


def test_failure_sentence_has_reason_and_faults():
    text = magnum_cluster.failure_sentence({"name": "demo", "status": "CREATE_FAILED", "status_reason": "disk broke.",
                                 "faults": {"default-worker": "server boot failed"}})
    assert text == ("cluster demo is CREATE_FAILED: disk broke (faults: default-worker: server boot failed)")


# ------------------------------------------------------------------ normalising
@pytest.mark.parametrize(("raw", "ref", "kind"), [
    ({"stack_id": "5b0ad1b5-7d8b-4d1b-9cdb-2a7b2b8e6c1e"}, "5b0ad1b5-7d8b-4d1b-9cdb-2a7b2b8e6c1e", "heat"),
    ({"cluster_id": "kube-ab12c"}, "kube-ab12c", "cluster_api"),
    ({"stack_id": "demo-cluster-0123456789ab"}, "demo-cluster-0123456789ab", "cluster_api"),
    ({"stack_id": None}, None, None),
])
def test_normalise_cluster_sets_stack_and_cluster_id(raw, ref, kind):
    out = mg.normalise_cluster({"uuid": "u", **raw, "links": []})
    assert out["stack_id"] == out["cluster_id"] == ref
    assert out["driver_kind"] == kind
    assert "links" not in out


class FakeClusters:
    def __init__(self, items):
        self.items = items

    def list(self):
        return self.items


def test_find_cluster_refuses_a_name_several_clusters_share():
    magnum = type("M", (), {"clusters": FakeClusters([{"uuid": "a", "name": "x"}, {"uuid": "b", "name": "x"}])})()
    with pytest.raises(mg.CloudError, match="2 clusters have that name"):
        mg.find_cluster(magnum, "x")
    assert mg.find_cluster(magnum, "b")["uuid"] == "b"
    assert mg.find_cluster(magnum, "y") is None


# ------------------------------------------------------------------ template
def tparams(**overrides):
    base = {name: spec.get("default") for name, spec in os_container_infra_template.ARGUMENT_SPEC.items()}
    base.update(name="t1", state="present")
    base.update(overrides)
    return base


TEMPLATE_FULL = {"uuid": "u", "name": "t1", "coe": "kubernetes", "image_id": "img", "external_network_id": "public",
                 "labels": {"a": "1"}, "public": False, "flavor_id": "bm.standard"}


@pytest.mark.parametrize(("p", "current", "action", "patch_paths"), [
    (tparams(coe="kubernetes", image="img", external_network="public"), None, "create", []),
    (tparams(coe="kubernetes", image="img", labels={"a": 1}), TEMPLATE_FULL, None, []),
    (tparams(labels={"a": "2"}, public=True), TEMPLATE_FULL, "update", ["/labels", "/public"]),
    (tparams(flavor="f-1"), TEMPLATE_FULL, None, []),
    (tparams(state="absent"), TEMPLATE_FULL, "delete", []),
    (tparams(state="absent"), None, None, []),
])
def test_template_plan(p, current, action, patch_paths):
    plan = magnum_template.plan_template(p, current, same=aliases)
    assert plan.action == action
    assert [x["path"] for x in plan.patch] == patch_paths


def test_template_create_needs_coe_image_network():
    with pytest.raises(ModuleFailure, match="coe is required to create cluster template t1"):
        magnum_template.plan_template(tparams(image="img"), None)


# ------------------------------------------------------------------ config
def _ca_and_cert(days=30):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key_pem, csr_pem = credentials.make_key_and_csr()
    csr = x509.load_pem_x509_csr(csr_pem)
    cert = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_name).public_key(csr.public_key())
            .serial_number(2).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=days))
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return ca.public_bytes(pem), cert.public_bytes(pem), key_pem, csr


def test_csr_is_for_admin_in_system_masters():
    _, _, _, csr = _ca_and_cert()
    assert "CN=admin" in csr.subject.rfc4514_string()
    assert "O=system:masters" in csr.subject.rfc4514_string()


def test_cert_still_good_checks_issuer_and_expiry():
    ca, cert, _, _ = _ca_and_cert(days=30)
    other_ca, _, _, _ = _ca_and_cert()
    assert credentials.cert_still_good(cert, ca)
    assert not credentials.cert_still_good(cert, other_ca)
    assert not credentials.cert_still_good(cert, ca, renew_before_days=31)
    assert not credentials.cert_still_good(b"garbage", ca)


def test_kubeconfig_round_trip(tmp_path):
    ca, cert, key, _ = _ca_and_cert()
    config = credentials.build_kubeconfig("demo", "https://127.42.0.5:6443", ca, cert, key)
    assert config["current-context"] == "default"
    assert config["users"][0]["name"] == "admin"
    assert base64.b64decode(config["users"][0]["user"]["client-key-data"]) == key
    import yaml

    path = tmp_path / "config"
    credentials.write_file(path, yaml.safe_dump(config).encode(), credentials.PRIVATE_MODE)
    assert path.stat().st_mode & 0o777 == 0o600
    assert credentials.read_kubeconfig(path) == ("https://127.42.0.5:6443", ca, cert)
    assert credentials.read_kubeconfig(tmp_path / "missing") == (None, None, None)


def test_docker_env_script():
    env = credentials.docker_env("tcp://127.42.0.9:2376", credentials.Path("/creds"), tls=True)
    assert env == {"DOCKER_HOST": "tcp://127.42.0.9:2376", "DOCKER_CERT_PATH": "/creds", "DOCKER_TLS_VERIFY": "1"}
    assert credentials.env_script(env).decode().splitlines()[0] == "export DOCKER_HOST=tcp://127.42.0.9:2376"


def test_env_sh_quotes_what_the_cloud_says(tmp_path):
    """Issue 15, finding 8: a cluster's api_address is cloud data; env.sh is sourced by a shell."""
    import subprocess

    address = "tcp://127.42.0.9:2376$(touch pwned) `id` 'x'"
    env = credentials.docker_env(address, tmp_path, tls=False)
    (tmp_path / "env.sh").write_bytes(credentials.env_script(env))
    shown = subprocess.run(["sh", "-c", '. ./env.sh && printf %s "$DOCKER_HOST"'], cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout
    assert shown == address and not (tmp_path / "pwned").exists()
    assert credentials.current_state(tmp_path, swarm=True, tls=False)["server"] == address


def test_resolver_compares_plain_values_without_lookups():
    """Counts and flags (kind None) are compared as they are; only named resources are looked up."""
    class NoCloud:
        def __getattr__(self, name):
            raise AssertionError(f"looked up {name}")

    resolver = mg.Resolver(NoCloud())
    assert not resolver.same(None, 1, 3)
    assert resolver.same(None, 3, 3)
    assert not resolver.same(None, "kp", "other")


def test_a_just_created_cluster_missing_for_a_while_is_waited_for():
    """Magnum answers the creation before its conductor records the cluster: GETs 404 for a while."""
    class NotFound(Exception):  # what the clients call a 404
        pass

    answers = [NotFound(), NotFound(),
               {"uuid": "u", "name": "demo", "status": "CREATE_IN_PROGRESS", "stack_id": "kube-ab12c"},
               {"uuid": "u", "name": "demo", "status": "CREATE_COMPLETE", "stack_id": "kube-ab12c"}]

    class Clusters:
        def get(self, uuid):
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

    class Cloud:
        def magnum(self):
            return type("Magnum", (), {"clusters": Clusters()})()

    runner = magnum_cluster.Runner(None, Cloud(), params(poll_interval=0.01, timeout=30))
    cluster = runner.wait_cluster("u", "create cluster demo", expect_change=False, just_created=True)
    assert cluster["status"] == "CREATE_COMPLETE" and not answers
    assert [e["status"] for e in runner.events] == ["CREATE_IN_PROGRESS", "CREATE_COMPLETE"]


@pytest.mark.parametrize(("status", "delete_answers"), [
    ("DELETE_IN_PROGRESS", None),      # another run's delete under way: waited for, not asked again
    ("CREATE_COMPLETE", "notfound"),   # gone between the read and the delete: what was asked
])
def test_state_absent_converges_when_deletes_meet(status, delete_answers):
    """Issue 15, finding 3: two deletes at once, or a retried one, end with the cluster gone."""
    from magnumclient import exceptions

    current = {"uuid": "u", "name": "demo", "status": status, "stack_id": "kube-ab12c"}
    asked = []

    class Clusters:
        def delete(self, uuid):
            asked.append(uuid)
            if delete_answers == "notfound":
                raise exceptions.NotFound(message="Cluster u could not be found", http_status=404)

        def get(self, uuid):
            raise exceptions.NotFound(message="Cluster u could not be found", http_status=404)

    class Cloud:
        def magnum(self):
            return type("Magnum", (), {"clusters": Clusters()})()

    plan = magnum_cluster.plan_cluster(params(state="absent"), current, [])
    runner = magnum_cluster.Runner(None, Cloud(), params(state="absent", poll_interval=0.01, timeout=30))
    assert runner.execute(plan, current) is None
    assert asked == ([] if status == "DELETE_IN_PROGRESS" else ["u"])


# ------------------------------------------------------------------ credentials' files (issue 15, finding 12)
class _Signer:
    """A cluster's CA that signs the CSRs os_container_infra_config sends, as Magnum does."""

    def __init__(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.x509, self.hashes, self.serialization = x509, hashes, serialization
        now = datetime.datetime.now(datetime.timezone.utc)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca")])
        self.ca = (x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
                   .public_key(self.key.public_key()).serial_number(1).not_valid_before(now)
                   .not_valid_after(now + datetime.timedelta(days=365))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(self.key, hashes.SHA256())).public_bytes(serialization.Encoding.PEM)

    def get(self, uuid):
        return {"pem": self.ca.decode()}

    def create(self, cluster_uuid, csr):
        now = datetime.datetime.now(datetime.timezone.utc)
        request = self.x509.load_pem_x509_csr(csr.encode())
        cert = (self.x509.CertificateBuilder().subject_name(request.subject).issuer_name(self.name)
                .public_key(request.public_key()).serial_number(2).not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(days=30)).sign(self.key, self.hashes.SHA256()))
        return {"pem": cert.public_bytes(self.serialization.Encoding.PEM).decode()}


def _config_run(tmp_path, coe="kubernetes", check_mode=False):
    from types import SimpleNamespace

    from container_infra.modules import os_container_infra_config

    record = {"uuid": "c-1", "name": "demo", "status": "CREATE_COMPLETE", "cluster_template_id": "t-1",
              "api_address": "tcp://127.42.0.9:2376" if coe == "swarm" else "https://127.42.0.5:6443"}
    signer = getattr(_config_run, "signer", None) or _Signer()
    _config_run.signer = signer
    magnum = SimpleNamespace(
        clusters=SimpleNamespace(list=lambda: [record], get=lambda uuid: record),
        cluster_templates=SimpleNamespace(get=lambda uuid: {"uuid": uuid, "coe": coe, "tls_disabled": False}),
        certificates=signer)
    module = SimpleNamespace(check_mode=check_mode, params={
        "cluster": "demo", "dest": str(tmp_path / "credentials"), "state": "present", "force": False,
        "key_size": 2048, "renew_before_days": 1})
    return os_container_infra_config.run(module, SimpleNamespace(magnum=lambda: magnum))


@pytest.mark.parametrize(("coe", "private"), [("kubernetes", "config"), ("swarm", "key.pem")])
def test_credentials_modes_are_kept(tmp_path, coe, private):
    import os

    old = os.umask(0o022)
    try:
        first = _config_run(tmp_path, coe)
    finally:
        os.umask(old)
    dest = tmp_path / "credentials"
    assert first["changed"]
    assert dest.stat().st_mode & 0o777 == 0o700, "the credentials directory is the owner's only"
    assert (dest / private).stat().st_mode & 0o777 == 0o600
    assert not _config_run(tmp_path, coe)["changed"]

    # Someone opens them up: the next run puts the modes back without new credentials.
    content = (dest / private).read_bytes()
    os.chmod(dest / private, 0o644)
    os.chmod(dest, 0o755)  # noqa: S103 - the fault the module must repair
    checked = _config_run(tmp_path, coe, check_mode=True)
    assert checked["changed"] and (dest / private).stat().st_mode & 0o777 == 0o644
    again = _config_run(tmp_path, coe)
    assert again["changed"] and any(private in line and "0644 -> 0600" in line for line in again["modes_repaired"])
    assert (dest / private).stat().st_mode & 0o777 == 0o600 and dest.stat().st_mode & 0o777 == 0o700
    assert (dest / private).read_bytes() == content
    assert not _config_run(tmp_path, coe)["changed"]


def test_credentials_are_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    """A write interrupted half-way leaves the old file as it was and no temporary file behind."""
    path = tmp_path / "credentials" / "config"
    credentials.write_file(path, b"old", credentials.PRIVATE_MODE)

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(credentials.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        credentials.write_file(path, b"new and longer", credentials.PRIVATE_MODE)
    assert path.read_bytes() == b"old"
    assert [p.name for p in path.parent.iterdir()] == ["config"]


def test_ssh_fingerprint_is_novas(tmp_path):
    """MD5 colon-hex of the key's blob, as `openstack keypair show` and `ssh-keygen -l -E md5` give it."""
    import subprocess

    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "me@here", "-f", str(key)], check=True)
    expected = subprocess.run(["ssh-keygen", "-l", "-E", "md5", "-f", str(key)], capture_output=True, text=True,
                              check=True).stdout.split()[1].removeprefix("MD5:")
    public = (tmp_path / "id.pub").read_text()
    assert credentials.ssh_fingerprint(public) == expected
    assert credentials.ssh_fingerprint(" ".join(public.split()[:2])) == expected  # the comment plays no part
    assert credentials.ssh_fingerprint("") == credentials.ssh_fingerprint("ssh-ed25519 !!!") == ""
