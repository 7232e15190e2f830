"""The cluster modules' DOCUMENTATION, EXAMPLES and RETURN parse, render with ansible-doc, and agree
with the argument specs the modules use."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from container_infra.cloud.connection import AUTH_ARGUMENT_SPEC
from container_infra.modules import os_container_infra, os_container_infra_config, os_container_infra_template

REPO = Path(__file__).resolve().parents[2]
MODULES = {
    "os_container_infra": os_container_infra.ARGUMENT_SPEC,
    "os_container_infra_template": os_container_infra_template.ARGUMENT_SPEC,
    "os_container_infra_config": os_container_infra_config.ARGUMENT_SPEC,
}


def docs(name: str) -> dict[str, object]:
    tree = ast.parse((REPO / "library" / f"{name}.py").read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
            out[node.targets[0].id] = yaml.safe_load(node.value.value)
    return out


@pytest.mark.parametrize("name", list(MODULES))
def test_documentation_matches_the_argument_spec(name):
    parsed = docs(name)
    assert set(parsed) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    documented = parsed["DOCUMENTATION"]["options"]
    spec = {**AUTH_ARGUMENT_SPEC, **MODULES[name]}
    assert set(documented) == set(spec)
    for option, described in documented.items():
        assert described.get("type", "str") == spec[option].get("type", "str"), option
        assert described.get("default") == spec[option].get("default"), option
        if "choices" in spec[option]:
            assert described["choices"] == spec[option]["choices"], option
    assert parsed["EXAMPLES"], "examples"


@pytest.mark.parametrize("name", list(MODULES))
def test_ansible_doc_renders(name):
    done = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "-M", "library", name], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "RETURN VALUES" in done.stdout and "EXAMPLES" in done.stdout
