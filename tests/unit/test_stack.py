"""The container_infra_stack role's logic: the stack file as deployed (host network, logging, digest label) and
whether the running services need a deploy."""

from __future__ import annotations

import json

import pytest

from container_infra import stack

COMPOSE = {"services": {"sim": {"image": "reg/base:1", "command": ["sleep", "infinity"]},
                        "probe": {"image": "reg/base:1", "logging": {"driver": "json-file"}}}}
JOURNALD = {"driver": "journald"}


def test_every_service_is_on_the_host_network_with_the_logging_and_the_digest():
    rendered = stack.render(COMPOSE, "s1", True, JOURNALD)
    assert rendered["networks"] == {"hostnet": {"external": True, "name": "host"}}
    sim, probe = rendered["services"]["sim"], rendered["services"]["probe"]
    assert sim["networks"] == probe["networks"] == ["hostnet"]
    assert sim["logging"] == JOURNALD and probe["logging"] == {"driver": "json-file"}  # its own is kept
    digest = sim["deploy"]["labels"][stack.DIGEST_LABEL]
    assert probe["deploy"]["labels"][stack.DIGEST_LABEL] == digest
    assert stack.services(rendered, "s1") == {"s1_sim": digest, "s1_probe": digest}
    assert COMPOSE["services"]["sim"].get("networks") is None  # the input is left alone


def test_the_digest_follows_the_content_not_the_order():
    same = {"services": dict(reversed(list(COMPOSE["services"].items())))}
    assert stack.services(stack.render(same, "s1", True, JOURNALD), "s1") == \
        stack.services(stack.render(COMPOSE, "s1", True, JOURNALD), "s1")
    changed = {"services": {**COMPOSE["services"], "sim": {"image": "reg/base:2"}}}
    assert stack.services(stack.render(changed, "s1", True, JOURNALD), "s1") != \
        stack.services(stack.render(COMPOSE, "s1", True, JOURNALD), "s1")


def test_an_unchanged_stack_is_not_deployed_again_and_a_change_or_a_missing_service_is():
    rendered = stack.render(COMPOSE, "s1", True, JOURNALD)
    digest = rendered["services"]["sim"]["deploy"]["labels"][stack.DIGEST_LABEL]
    def line(service, value):
        return f"{service} " + json.dumps({"com.docker.stack.namespace": "s1", stack.DIGEST_LABEL: value},
                                          separators=(",", ":"))

    assert stack.needs_deploy(rendered, "s1", [])
    assert not stack.needs_deploy(rendered, "s1", [line("s1_sim", digest), line("s1_probe", digest)])
    assert stack.needs_deploy(rendered, "s1", [line("s1_sim", digest), line("s1_probe", "0123")])
    assert stack.needs_deploy(rendered, "s1", [line("s1_sim", digest)])
    assert stack.needs_deploy(rendered, "s1", [line("s1_sim", digest), line("s1_probe", digest),
                                               line("s1_old", digest)])
    assert stack.needs_deploy(rendered, "s1", [line("s1_sim", digest), "s1_probe null"])


def test_without_the_host_network_the_services_keep_their_networks():
    compose = {"services": {"a": {"image": "x", "networks": ["back"]}}, "networks": {"back": {}}}
    rendered = stack.render(compose, "s1", False, None)
    assert rendered["services"]["a"]["networks"] == ["back"] and "logging" not in rendered["services"]["a"]


@pytest.mark.parametrize(("compose", "name", "words"), [
    ({"services": {}}, "s1", "has no services mapping"),
    ({"services": {"a": {"command": "x"}}}, "s1", "service a names no image"),
    ({"services": {"a": {"image": "x", "networks": ["back"]}}}, "s1", "joins networks ['back']"),
    ({"services": {"a": {"image": "x", "ports": ["80:80"]}}}, "s1", "through the ingress mesh"),
    (COMPOSE, "bad name", "stack name 'bad name'"),
])
def test_a_stack_the_role_cannot_deploy_is_one_sentence(compose, name, words):
    with pytest.raises(stack.StackError) as caught:
        stack.render(compose, name, True, JOURNALD)
    assert words in str(caught.value) and str(caught.value).count(". ") == 0


def test_ports_published_in_host_mode_are_taken():
    compose = {"services": {"a": {"image": "x", "ports": [{"target": 80, "published": 80, "mode": "host"}]}}}
    assert stack.render(compose, "s1", True, None)["services"]["a"]["ports"][0]["mode"] == "host"
