"""The modules' DOCUMENTATION, EXAMPLES and RETURN parse, render with ansible-doc, and agree with the
argument specs the modules use; the shared options come from one doc fragment that matches
AUTH_ARGUMENT_SPEC."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess

import pytest
import yaml
from ansible_runner import BIN, REPO

from container_infra.cloud.connection import AUTH_ARGUMENT_SPEC
from container_infra.modules import (
    os_container_infra,
    os_container_infra_config,
    os_container_infra_template,
    os_manila_share,
    os_port_prune,
    os_server_interface,
    os_stack_facts,
)

ANSIBLE_DOC = str(BIN / "ansible-doc")
# module -> (its own argument spec, the wait fragment it takes: modules that wait, or not)
MODULES = {
    "os_container_infra": (os_container_infra.ARGUMENT_SPEC, "container_infra.wait"),
    "os_container_infra_template": (os_container_infra_template.ARGUMENT_SPEC, "container_infra.no_wait"),
    "os_container_infra_config": (os_container_infra_config.ARGUMENT_SPEC, "container_infra.no_wait"),
    "os_stack_facts": (os_stack_facts.ARGUMENT_SPEC, "container_infra.no_wait"),
    "os_server_interface": (os_server_interface.ARGUMENT_SPEC, "container_infra.wait"),
    "os_port_prune": (os_port_prune.ARGUMENT_SPEC, "container_infra.wait"),
    "os_manila_share": (os_manila_share.ARGUMENT_SPEC, "container_infra.wait"),
}
WAIT_OPTIONS = {"wait", "timeout", "poll_interval"}


def fragments() -> dict[str, dict]:
    """The doc fragment's variables, parsed: {"container_infra": ..., "container_infra.wait": ...}."""
    spec = importlib.util.spec_from_file_location("fragment", REPO / "doc_fragments" / "container_infra.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cls = module.ModuleDocFragment
    return {"container_infra": yaml.safe_load(cls.DOCUMENTATION),
            "container_infra.wait": yaml.safe_load(cls.WAIT),
            "container_infra.no_wait": yaml.safe_load(cls.NO_WAIT)}


def docs(name: str) -> dict[str, object]:
    tree = ast.parse((REPO / "library" / f"{name}.py").read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
            out[node.targets[0].id] = yaml.safe_load(node.value.value)
    return out


def assert_option_matches(option: str, described: dict, spec: dict) -> None:
    assert described.get("type", "str") == spec.get("type", "str"), option
    assert described.get("default") == spec.get("default"), option
    assert described.get("choices") == spec.get("choices"), option
    assert sorted(described.get("aliases") or []) == sorted(spec.get("aliases") or []), option


def test_the_fragment_matches_the_shared_argument_spec():
    parsed = fragments()
    connection = parsed["container_infra"]["options"]
    assert set(connection) == set(AUTH_ARGUMENT_SPEC) - WAIT_OPTIONS
    for variant in ("container_infra.wait", "container_infra.no_wait"):
        assert set(parsed[variant]["options"]) == WAIT_OPTIONS
    for name in ("container_infra", "container_infra.wait", "container_infra.no_wait"):
        for option, described in parsed[name]["options"].items():
            assert described["description"], option
            assert_option_matches(option, described, AUTH_ARGUMENT_SPEC[option])


@pytest.mark.parametrize("name", list(MODULES))
def test_documentation_uses_the_fragment_and_matches_the_argument_spec(name):
    own_spec, wait_fragment = MODULES[name]
    parsed = docs(name)
    assert set(parsed) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    documentation = parsed["DOCUMENTATION"]
    assert documentation["extends_documentation_fragment"] == ["container_infra", wait_fragment]
    own_options = documentation["options"]
    # The shared options are written once, in the fragment; a module may only say what its wait waits for.
    restated = set(own_options) & set(AUTH_ARGUMENT_SPEC)
    assert restated <= {"wait"}, restated
    if "wait" in own_options:
        assert wait_fragment == "container_infra.wait" and set(own_options["wait"]) == {"description"}
    shared = fragments()
    merged = {**shared["container_infra"]["options"], **shared[wait_fragment]["options"],
              **{k: v for k, v in own_options.items() if k not in AUTH_ARGUMENT_SPEC}}
    spec = {**AUTH_ARGUMENT_SPEC, **own_spec}
    assert set(merged) == set(spec)
    for option, described in merged.items():
        assert described.get("type", "str") == spec[option].get("type", "str"), option
        assert described.get("default") == spec[option].get("default"), option
        if "choices" in spec[option]:
            assert described["choices"] == spec[option]["choices"], option
    assert parsed["EXAMPLES"], "examples"


@pytest.mark.parametrize("name", list(MODULES))
def test_ansible_doc_renders_with_the_fragment(name):
    done = subprocess.run([ANSIBLE_DOC, "-M", "library", name], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "RETURN VALUES" in done.stdout and "EXAMPLES" in done.stdout
    as_json = subprocess.run([ANSIBLE_DOC, "-M", "library", "--json", name], cwd=REPO, capture_output=True,
                             text=True, timeout=120)
    assert as_json.returncode == 0, as_json.stderr
    options = json.loads(as_json.stdout)[name]["doc"]["options"]
    own_spec, wait_fragment = MODULES[name]
    assert set(options) == set(AUTH_ARGUMENT_SPEC) | set(own_spec)
    # The fragment's text reached the rendered page (ansible.cfg names doc_fragments/).
    assert options["api_timeout"]["description"] == fragments()["container_infra"]["options"]["api_timeout"][
        "description"]
    assert options["poll_interval"]["type"] == "float"
    if wait_fragment == "container_infra.no_wait":
        assert "Not used" in options["wait"]["description"]
    else:
        assert "Not used" not in str(options["wait"]["description"])
