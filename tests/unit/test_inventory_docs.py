"""os_container_infra_inventory's and the container_infra inventory plugin's documentation: it parses,
agrees with the options the code takes, and renders with ansible-doc."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_runner import BIN, REPO

from container_infra.cloud.connection import AUTH_ARGUMENT_SPEC
from container_infra.modules.os_container_infra_inventory import ARGUMENT_SPEC

ANSIBLE_DOC = str(BIN / "ansible-doc")
MODULE = REPO / "library" / "os_container_infra_inventory.py"
PLUGIN = REPO / "inventory_plugins" / "container_infra.py"


def docs(path: Path) -> dict[str, object]:
    out = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and node.targets[0].id in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
            out[node.targets[0].id] = yaml.safe_load(node.value.value)
    return out


def test_module_documents_its_own_options_and_takes_the_shared_ones_from_the_fragment():
    documented = docs(MODULE)["DOCUMENTATION"]
    assert documented["extends_documentation_fragment"] == ["container_infra", "container_infra.no_wait"]
    assert set(documented["options"]) == set(ARGUMENT_SPEC)
    for name, spec in ARGUMENT_SPEC.items():
        option = documented["options"][name]
        assert option["type"] == spec["type"], name
        assert option.get("required", False) == spec.get("required", False), name
        assert option.get("default") == spec.get("default"), name
        assert sorted(option.get("aliases", [])) == sorted(spec.get("aliases", [])), name
    assert not set(ARGUMENT_SPEC) & set(AUTH_ARGUMENT_SPEC)
    assert set(docs(MODULE)["RETURN"]) >= {"inventory", "hosts", "groups", "path"}
    assert all("os_container_infra_inventory" in task for task in docs(MODULE)["EXAMPLES"] if "debug" not in str(task))


@pytest.mark.parametrize("kind,name", [("module", "os_container_infra_inventory"), ("inventory", "container_infra")])
def test_ansible_doc_renders(kind, name):
    done = subprocess.run([ANSIBLE_DOC, "-t", kind, name], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert name in done.stdout and "ERROR" not in done.stderr


def test_plugin_options_and_example():
    documented = docs(PLUGIN)
    options = documented["DOCUMENTATION"]["options"]
    assert set(options) == {"plugin", "cloud", "clusters", "stacks", "network", "ansible_user", "extra_host_vars",
                            "jump_via_master"}
    assert set(documented["DOCUMENTATION"]["extends_documentation_fragment"]) == {"constructed", "inventory_cache"}
    assert documented["EXAMPLES"]["plugin"] == "container_infra"
