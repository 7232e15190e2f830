"""Boolean role variables in conditionals go through ``| bool``: an operator's ``-e name=false`` (and a Rundeck
job's option) arrives as the string "false", which a bare ``when: name`` takes as true. Found when
``-e container_infra_storage_beegfs_packages=false`` still ran the BeeGFS restart handler."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CONDITIONALS = ("when", "changed_when", "failed_when", "until")
# What may follow a variable used as a value, not as a truth value: a filter, an attribute, an index, a test or
# a comparison.
NOT_BARE = r"(?!\s*(\||\.|\[|==|!=|<|>|\bis\b|\bin\b))"


def boolean_variables() -> set[str]:
    names = set()
    for spec in REPO.glob("roles/*/meta/argument_specs.yml"):
        for entry_point in (yaml.safe_load(spec.read_text())["argument_specs"] or {}).values():
            names |= {name for name, option in (entry_point.get("options") or {}).items()
                      if option.get("type") == "bool"}
    return names


def conditionals(node):
    """Every conditional expression in a tasks, handlers or playbook file (blocks and plays included)."""
    if isinstance(node, list):
        for item in node:
            yield from conditionals(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in CONDITIONALS and not isinstance(value, bool):
                yield from (value if isinstance(value, list) else [value])
            elif isinstance(value, list | dict):
                yield from conditionals(value)


def bare_uses(text: str, names: set[str]) -> list[str]:
    pattern = re.compile(r"\b(" + "|".join(sorted(names, key=len, reverse=True)) + r")\b" + NOT_BARE)
    return [m.group(1) for m in pattern.finditer(text)]


def test_the_scan_sees_a_bare_boolean_and_passes_a_filtered_one():
    names = {"container_infra_x_wait"}
    assert bare_uses("container_infra_x_wait and not ansible_check_mode", names) == ["container_infra_x_wait"]
    assert bare_uses("not container_infra_x_wait", names) == ["container_infra_x_wait"]
    assert bare_uses("container_infra_x_wait | bool and other", names) == []
    assert bare_uses("container_infra_x_wait_more", names) == []
    found = list(conditionals([{"block": [{"name": "t", "when": ["a", "container_infra_x_wait"]}]}]))
    assert found == ["a", "container_infra_x_wait"]


def test_boolean_role_variables_in_conditionals_go_through_the_bool_filter():
    names = boolean_variables()
    assert "container_infra_storage_beegfs_packages" in names and "container_infra_cluster_wait" in names
    files = [*REPO.glob("roles/*/tasks/*.yml"), *REPO.glob("roles/*/handlers/*.yml"), *REPO.glob("playbooks/*.yml"),
             *REPO.glob("molecule/*/*.yml")]
    bare = [f"{path.relative_to(REPO)}: {expression}" for path in sorted(files)
            for expression in conditionals(yaml.safe_load(path.read_text()))
            if isinstance(expression, str) and bare_uses(expression, names)]
    assert bare == [], "add | bool to these (a string 'false' from -e is true): " + "; ".join(bare)
