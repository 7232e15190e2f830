"""The shared module base without a cloud: error sentences, the waiter, microversion negotiation,
turning module parameters into openstacksdk's configuration."""

from __future__ import annotations

import pytest

from container_infra.cloud import errors
from container_infra.cloud.connection import AUTH_ARGUMENT_SPEC, ApiCallCounter, _sdk_config_kwargs, negotiate
from container_infra.cloud.errors import CloudError, explain, is_transient
from container_infra.cloud.waiter import WaitTimeout, wait_for


# ------------------------------------------------------------------ errors
def _magnum(status, message):
    from magnumclient import exceptions

    cls = {400: exceptions.BadRequest, 401: exceptions.Unauthorized, 403: exceptions.Forbidden,
           404: exceptions.NotFound, 409: exceptions.Conflict, 500: exceptions.InternalServerError,
           503: exceptions.ServiceUnavailable}[status]
    return cls(message=message, http_status=status)


def _ksa(name, *args):
    from keystoneauth1 import exceptions

    return getattr(exceptions, name)(*args)


def _heat(status, message):
    import json

    from heatclient import exc

    body = json.dumps({"error": {"message": message, "type": "NotFound"}}).encode()
    return exc.from_response(type("R", (), {"status_code": status, "headers": {}, "content": body})())


def _manila(status, message):
    from manilaclient.common.apiclient import exceptions

    headers = {"Content-Type": "application/json"}
    return exceptions.from_response(type("R", (), {"status_code": status, "headers": headers, "text": "",
                                                   "json": lambda self: {"x": {"message": message}}})(), "GET", "/x")


def _sdk_http(status, message):
    from openstack import exceptions

    return exceptions.HttpException(message=message, http_status=status)


ERROR_CASES = [
    # (exception, kind, text the sentence holds, advice it holds)
    (_magnum(400, "Invalid input for field/attribute node_count. Value: '-1'"), "badrequest",
     "Invalid input for field/attribute node_count", "correct the parameter"),
    (_magnum(401, "Authentication required"), "auth", "rejected the credentials", "may have expired"),
    (_magnum(403, "Policy doesn't allow cluster:create"), "forbidden", "Policy doesn't allow", "role"),
    (_magnum(404, "Cluster x could not be found"), "notfound", "Cluster x could not be found", "check the name"),
    (_magnum(409, "Multiple clusters exist with same name. Please use the cluster uuid instead."), "conflict",
     "Multiple clusters exist", "duplicates"),
    (_magnum(409, "Cluster x is in UPDATE_IN_PROGRESS"), "conflict", "UPDATE_IN_PROGRESS", "transitional"),
    (_magnum(503, "Service Unavailable"), "server", "Service Unavailable", "run again later"),
    (_ksa("Unauthorized", "The request you have made requires authentication."), "auth",
     "requires authentication", "credentials"),
    (_ksa("ConnectFailure", "Unable to establish connection to http://127.0.0.1:1/v3"), "unreachable",
     "cannot connect", "reachable"),
    (_ksa("ConnectTimeout", "timed out"), "timeout", "in time", "api_timeout"),
    (_ksa("SSLError", "certificate verify failed"), "ssl", "TLS certificate", "ca_cert"),
    (_ksa("EndpointNotFound", "No endpoint for container-infra"), "endpoint", "No endpoint", "region_name"),
    (_heat(404, "The Stack (s) could not be found."), "notfound", "The Stack (s) could not be found",
     "check the name"),
    (_manila(413, "Quota exceeded for shares"), "overlimit", "Quota exceeded", "quota"),
    (_sdk_http(500, "Internal error"), "server", "Internal error", "run again later"),
    (ConnectionResetError("Connection reset by peer"), "unreachable", "cannot connect", "reachable"),
]


@pytest.mark.parametrize(("exc", "kind", "said", "advice"), ERROR_CASES,
                         ids=[f"{type(c[0]).__name__}-{c[1]}" for c in ERROR_CASES])
def test_explain_gives_one_sentence(exc, kind, said, advice):
    assert errors.classify(exc) == kind
    error = explain(exc, "creating", "cluster demo")
    text = str(error)
    assert isinstance(error, CloudError)
    assert text.startswith("creating cluster demo failed: ")
    assert said in text
    assert advice in text
    assert "\n" not in text and "Traceback" not in text and "Request-ID" not in text
    assert text.count("; ") >= 1


def test_explain_keeps_a_cloud_error():
    error = CloudError("already explained")
    assert explain(error, "x", "y") is error


@pytest.mark.parametrize(("exc", "transient"), [
    (_magnum(400, "Invalid input for field/attribute master_count. Value: '0'"), True),
    (_magnum(400, "Invalid input for field/attribute node_count. Value: '-1'"), False),
    (_magnum(503, "down"), True),
    (_magnum(500, "oops"), True),
    (_magnum(404, "gone"), False),
    (_magnum(401, "no"), False),
    (ConnectionResetError("reset"), True),
    (_ksa("ConnectTimeout", "slow"), True),
])
def test_transient_errors(exc, transient):
    assert is_transient(exc) is transient


# ------------------------------------------------------------------ waiter
class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_for_backs_off_up_to_poll_interval_and_reports_progress():
    clock = FakeClock()
    statuses = iter(["CREATE_IN_PROGRESS"] * 8 + ["CREATE_COMPLETE"])
    seen = []
    result = wait_for(lambda: next(statuses), lambda s: s.endswith("COMPLETE"), lambda s: s.endswith("FAILED"),
                      timeout=100, poll_interval=2, progress=seen.append, sleep=clock.sleep, clock=clock.clock)
    assert result == "CREATE_COMPLETE"
    assert len(seen) == 9
    assert clock.sleeps[0] == 0.5
    assert clock.sleeps == sorted(clock.sleeps)
    assert max(clock.sleeps) == 2


def test_wait_for_rides_over_transient_errors():
    clock = FakeClock()
    answers = [_magnum(400, "Invalid input for field/attribute master_count. Value: '0'"), _magnum(503, "busy"),
               ConnectionResetError("reset"), "CREATE_COMPLETE"]

    def fetch():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert wait_for(fetch, lambda s: True, timeout=60, poll_interval=1, sleep=clock.sleep,
                    clock=clock.clock) == "CREATE_COMPLETE"


def test_wait_for_raises_other_errors_at_once():
    with pytest.raises(Exception, match="gone"):
        wait_for(lambda: (_ for _ in ()).throw(_magnum(404, "gone")), lambda s: True, timeout=60)


def test_wait_for_fails_with_the_reason():
    clock = FakeClock()
    with pytest.raises(CloudError, match="waiting for cluster x failed: CREATE_FAILED: disk"):
        wait_for(lambda: "CREATE_FAILED", lambda s: False, lambda s: f"{s}: disk", timeout=10,
                 what="cluster x", sleep=clock.sleep, clock=clock.clock)


def test_wait_for_has_a_deadline():
    clock = FakeClock()
    with pytest.raises(WaitTimeout, match="not done after 10 s"):
        wait_for(lambda: "CREATE_IN_PROGRESS", lambda s: False, timeout=10, poll_interval=3,
                 sleep=clock.sleep, clock=clock.clock)
    assert clock.now == pytest.approx(10)


def test_wait_for_deadline_while_erroring_names_the_error():
    clock = FakeClock()
    with pytest.raises(WaitTimeout, match="still erroring"):
        wait_for(lambda: (_ for _ in ()).throw(_magnum(503, "busy")), lambda s: True, timeout=5,
                 sleep=clock.sleep, clock=clock.clock)


# ------------------------------------------------------------------ connection
@pytest.mark.parametrize(("client", "low", "high", "chosen"), [
    ((1, 14), (1, 1), (1, 14), (1, 14)),
    ((1, 14), (1, 1), (1, 12), (1, 12)),
    ((1, 14), (1, 1), (1, 99), (1, 14)),
    ((1, 14), None, None, (1, 1)),
    ((1, 14), (1, 20), (1, 30), None),
    ((2, 98), (2, 0), (2, 99), (2, 98)),
])
def test_negotiate(client, low, high, chosen):
    assert negotiate(client, low, high) == chosen


def test_auth_spec_marks_secrets_no_log():
    assert AUTH_ARGUMENT_SPEC["auth"]["no_log"] is True
    assert AUTH_ARGUMENT_SPEC["client_key"]["no_log"] is True
    assert AUTH_ARGUMENT_SPEC["interface"]["choices"] == ["public", "internal", "admin"]
    assert AUTH_ARGUMENT_SPEC["api_timeout"]["type"] == "int"


@pytest.mark.parametrize(("params", "expected"), [
    ({"cloud": "sandbox", "interface": "public"}, {"cloud": "sandbox", "interface": "public"}),
    ({"auth": {"auth_url": "http://k/v3", "application_credential_id": "a", "application_credential_secret": "s"},
      "auth_type": "v3applicationcredential", "region_name": "R"},
     {"auth": {"auth_url": "http://k/v3", "application_credential_id": "a", "application_credential_secret": "s"},
      "auth_type": "v3applicationcredential", "region_name": "R"}),
    ({"cloud": "c", "validate_certs": False, "ca_cert": "/ca.pem", "api_timeout": 5},
     {"cloud": "c", "verify": False, "cacert": "/ca.pem", "api_timeout": 5}),
    ({"cloud": {"auth": {"auth_url": "http://k/v3"}, "region_name": "R"}},
     {"auth": {"auth_url": "http://k/v3"}, "region_name": "R"}),
])
def test_params_to_sdk_config(params, expected):
    assert _sdk_config_kwargs(params) == expected


def test_api_call_counter_counts_responses():
    counter = ApiCallCounter()
    request = type("Req", (), {"method": "GET", "url": "http://127.0.0.1:9511/v1/clusters"})()
    response = type("Resp", (), {"request": request})()
    for _ in range(3):
        counter(response)
    assert counter.total == 3 and counter.by_method["GET"] == 3 and counter.by_host["127.0.0.1:9511"] == 3
    assert counter.reset() == 3 and counter.total == 0


def test_a_revoked_token_reads_as_rejected_credentials():
    from keystoneauth1 import exceptions as ksa

    from container_infra.cloud import errors

    revoked = ksa.http.NotFound(message="Failed to validate token (HTTP 404)", http_status=404)
    assert errors.classify(revoked) == "auth"
    assert errors.classify(ksa.http.NotFound(message="Could not find project", http_status=404)) == "notfound"


# ------------------------------------------------------------------ timeouts (issue 15, finding 9)
@pytest.fixture
def no_cloud_config(tmp_path, monkeypatch):
    """No OS_* environment and a clouds.yaml of our own, so that the operator's do not leak in."""
    import os

    for name in list(os.environ):
        if name.startswith("OS_"):
            monkeypatch.delenv(name)
    config = tmp_path / "clouds.yaml"
    config.write_text("clouds:\n  slow:\n    api_timeout: 9\n    auth:\n      auth_url: http://127.0.0.1:1/v3\n"
                      "      username: u\n      password: p\n      project_name: x\n"
                      "  other:\n    auth:\n      auth_url: http://127.0.0.1:1/v3\n")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(config))
    return config


AUTH = {"auth_url": "http://127.0.0.1:1/v3", "username": "u", "password": "p", "project_name": "x",
        "user_domain_name": "Default", "project_domain_name": "Default"}


@pytest.mark.parametrize(("params", "seconds"), [
    ({"auth": AUTH}, 120.0),                    # nothing said: the default, never "for ever"
    ({"auth": AUTH, "api_timeout": 7}, 7.0),    # the task's
    ({"cloud": "slow"}, 9.0),                   # the clouds.yaml entry's
    ({"cloud": "slow", "api_timeout": 3}, 3.0),  # the task's over the entry's
])
def test_every_request_has_an_api_timeout(no_cloud_config, params, seconds):
    from container_infra.cloud.connection import Cloud

    cloud = Cloud.connect({"interface": "public", **params})
    try:
        assert cloud.api_timeout == seconds
        assert cloud.session.timeout == seconds
    finally:
        cloud.close()


@pytest.mark.parametrize(("params", "said"), [
    ({"timeout": 0}, "timeout must be 1 or more seconds, not 0"),
    ({"timeout": -5}, "timeout must be 1 or more seconds, not -5"),
    ({"api_timeout": 0}, "api_timeout must be 1 or more seconds, not 0"),
    ({"poll_interval": 0.0}, "poll_interval must be more than 0 seconds"),
])
def test_a_zero_timeout_is_refused_not_replaced(params, said):
    from container_infra.cloud.module import ModuleFailure, check_common

    with pytest.raises(ModuleFailure, match=said):
        check_common({"timeout": 1800, "poll_interval": 5.0, "api_timeout": None, **params})


def test_the_cluster_runner_keeps_the_timeout_it_was_given():
    from container_infra import magnum_cluster

    cloud = type("C", (), {"magnum": lambda self: object()})()
    runner = magnum_cluster.Runner(None, cloud, {"timeout": 0, "poll_interval": 0.5})
    assert runner.deadline_s == 0.0 and runner.poll == 0.5  # was silently 1800


# ------------------------------------------------------------------ results (issue 15, finding 13)
class _Exit(Exception):
    pass


class _FakeModule:
    """Enough of AnsibleModule for run_module."""

    def __init__(self, argument_spec, supports_check_mode=True, **kwargs):
        self.params = {k: v.get("default") for k, v in argument_spec.items()}
        self._verbosity = 0
        self._diff = False

    def exit_json(self, **result):
        raise _Exit(("exit", result))

    def fail_json(self, **result):
        raise _Exit(("fail", result))


def test_a_module_result_never_carries_the_keys_ansible_reserves():
    from container_infra.cloud.module import run_module

    with pytest.raises(_Exit) as caught:
        run_module({}, lambda module, cloud: {"changed": False, "failed": False}, needs_cloud=False,
                   module_class=_FakeModule)
    kind, result = caught.value.args[0]
    assert kind == "fail" and "returned failed, which Ansible reserves" in result["msg"]


@pytest.mark.parametrize("status", ["CREATE_FAILED", "CREATE_COMPLETE", None])
def test_the_status_module_reports_a_failed_operation_as_data_not_as_its_own_failure(status):
    from types import SimpleNamespace

    from container_infra.modules import os_container_infra_status

    record = {"uuid": "c-1", "name": "demo", "status": status, "status_reason": "boom", "master_count": 1,
              "node_count": 1}
    magnum = SimpleNamespace(clusters=SimpleNamespace(list=lambda: [record] if status else [], get=lambda uuid: record),
                             nodegroups=SimpleNamespace(list=lambda uuid, **kw: []))
    module = SimpleNamespace(params={"name": "demo", "started": None, "absent_is_settled": True})
    result = os_container_infra_status.run(module, SimpleNamespace(magnum=lambda: magnum))
    assert "failed" not in result
    assert result["operation_failed"] is (status == "CREATE_FAILED")
    assert result["settled"]


def test_status_returns_the_nodes_it_found_and_fails_when_a_settled_clusters_are_not(monkeypatch):
    from types import SimpleNamespace

    from container_infra import discovery
    from container_infra.modules import os_container_infra_status

    record = {"uuid": "c-1", "name": "demo", "status": "CREATE_IN_PROGRESS", "stack_id": "s-1",
              "master_count": 1, "node_count": 1}
    magnum = SimpleNamespace(clusters=SimpleNamespace(list=lambda: [record], get=lambda uuid: record),
                             nodegroups=SimpleNamespace(list=lambda uuid, **kw: []))
    module = SimpleNamespace(params={"name": "demo", "started": None, "absent_is_settled": False})
    cloud = SimpleNamespace(magnum=lambda: magnum)
    found = [{"name": "demo-m0", "id": "i-1", "role": "master", "nodegroup": "default-master", "status": "ACTIVE",
              "addresses": {}}]
    monkeypatch.setattr(discovery, "discover", lambda *a, **kw: {"nodes": found})
    result = os_container_infra_status.run(module, cloud)
    assert result["nodes"] == [{"name": "demo-m0", "id": "i-1", "role": "master", "nodegroup": "default-master",
                                "status": "ACTIVE"}]
    assert result["nodes_active"] == 1

    def missing(*args, **kwargs):
        raise CloudError("stack s-1 was not found")

    monkeypatch.setattr(discovery, "discover", missing)
    assert os_container_infra_status.run(module, cloud)["nodes"] == []  # still being made
    record["status"] = "CREATE_COMPLETE"
    with pytest.raises(CloudError, match="was not found"):
        os_container_infra_status.run(module, cloud)


@pytest.mark.parametrize(("status", "settled", "failed"), [
    ("CREATE_IN_PROGRESS", False, False), ("UPDATE_COMPLETE", True, False), ("UPDATE_FAILED", True, True),
    # A create Heat undid settled, but not whole: the waiting role must not go on to the inventory.
    ("ROLLBACK_COMPLETE", True, True),
])
def test_a_swarm_stack_is_looked_at_like_a_cluster(status, settled, failed):
    from types import SimpleNamespace

    from container_infra import cluster_status

    stack = {"id": "s-1", "stack_name": "hs", "stack_status": status, "stack_status_reason": "r"}
    server = {"resource_type": "OS::Nova::Server", "physical_resource_id": "i-1", "resource_name": "node",
              "links": [{"rel": "stack", "href": "https://heat/v1/p/stacks/hs/s-1"}]}
    resources = [dict(server, resource_status="CREATE_COMPLETE"),
                 dict(server, physical_resource_id="i-2", resource_status="CREATE_IN_PROGRESS")]
    heat = SimpleNamespace(stacks=SimpleNamespace(get=lambda ref: stack),
                           resources=SimpleNamespace(list=lambda ident, **kw: resources))
    seen = cluster_status.look(SimpleNamespace(heat=lambda: heat), "hs", stack=True)
    assert (seen["status"], seen["settled"], seen["operation_failed"]) == (status, settled, failed)
    assert (seen["nodes_active"], seen["nodes_expected"]) == (1, 2)
    assert seen["progress"].startswith(f"cluster hs: {status} - r - 1/2 nodes ACTIVE")


def test_a_missing_swarm_stack_is_settled_only_when_asked():
    from types import SimpleNamespace

    from container_infra import cluster_status
    from container_infra.cloud.errors import CloudError as Error

    def missing(ref):
        raise _heat(404, "The Stack (hs) could not be found.")

    cloud = SimpleNamespace(heat=lambda: SimpleNamespace(stacks=SimpleNamespace(get=missing)))
    assert cluster_status.look(cloud, "hs", stack=True, absent_is_settled=True)["settled"]
    with pytest.raises(Error, match="Heat stack hs was not found in the project"):
        cluster_status.look(cloud, "hs", stack=True)


# ------------------------------------------------------------------ a stack that is gone (issue 15, finding 7)
def test_a_missing_stack_is_found_false_only_when_heat_says_so():
    from container_infra.heat import stack_facts

    class Stacks:
        def __init__(self, error):
            self.error = error

        def get(self, ref):
            raise self.error

    from types import SimpleNamespace

    gone = SimpleNamespace(stacks=Stacks(_heat(404, "The Stack (s1) could not be found.")))
    assert stack_facts(gone, "s1", missing_ok=True)["found"] is False
    with pytest.raises(CloudError, match="was not found in the project"):
        stack_facts(gone, "s1")
    # Anything else than Heat's 404 fails, even with missing_ok (and even if its words say "not found").
    broken = SimpleNamespace(stacks=Stacks(_ksa("EndpointNotFound", "orchestration endpoint was not found")))
    with pytest.raises(CloudError):
        stack_facts(broken, "s1", missing_ok=True)


# ------------------------------------------------------------------ bad clouds.yaml, wrong region
@pytest.mark.parametrize(("text", "said"), [
    ("clouds:\n  c: [unclosed\n", "is not valid YAML at line 3, column 1 (expected ',' or ']'"),
    ("- c\n- d\n", "holds a list, not a mapping with a clouds: key"),
    ("clouds: c\n", ": clouds is a string, not a mapping of cloud names"),
    ("clouds:\n  c: just-a-name\n", ": clouds.c is a string, not a mapping of its settings"),
    ("clouds:\n  c:\n    auth: 5\n", ": clouds.c.auth is a number, not a mapping (auth_url, ...)"),
])
def test_a_malformed_clouds_yaml_is_named_in_one_sentence(no_cloud_config, text, said):
    from container_infra.cloud.connection import Cloud

    no_cloud_config.write_text(text)
    with pytest.raises(CloudError) as caught:
        Cloud.connect({"cloud": "c"})
    message = str(caught.value)
    assert message.startswith(f"{no_cloud_config}{'' if said.startswith(':') else ' '}{said}"), message
    assert message.endswith("; fix the file (clouds: a mapping of cloud names, each with an auth: mapping) and "
                            "run again") and "\n" not in message


def test_a_region_the_cloud_lacks_is_named_with_the_ones_it_has(no_cloud_config):
    from container_infra.cloud.connection import Cloud

    no_cloud_config.write_text("clouds:\n  c:\n    regions: [RegionOne, RegionTwo]\n    auth:\n"
                               "      auth_url: http://127.0.0.1:1/v3\n")
    with pytest.raises(CloudError) as caught:
        Cloud.connect({"cloud": "c", "region_name": "regionone"})
    assert str(caught.value) == ("region_name regionone is not a region of cloud c (it has RegionOne, RegionTwo; "
                                 "names are case-sensitive); set region_name to one of those")
