"""The documentation keeps pace with the code: every module in the module table, every role a README naming
each of its variables, and every relative link of the READMEs and docs/ pointing into the repository."""

from __future__ import annotations

import re

import pytest
import yaml
from ansible_runner import REPO

ROLES = sorted(p.parent.parent.name for p in (REPO / "roles").glob("*/meta/argument_specs.yml"))
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "roles").glob("*/README.md")])


def test_the_module_table_lists_every_module():
    table = (REPO / "docs" / "modules.md").read_text()
    listed = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.MULTILINE))
    assert listed == {p.stem for p in (REPO / "library").glob("*.py")}


@pytest.mark.parametrize("role", ROLES)
def test_every_role_has_a_readme_with_its_variables(role):
    readme = REPO / "roles" / role / "README.md"
    assert readme.exists(), f"roles/{role} has no README"
    specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    text = readme.read_text()
    missing = [name for name in specs["argument_specs"]["main"]["options"] if f"`{name}`" not in text]
    assert not missing, f"roles/{role}/README.md does not name {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_stay_in_the_repository(doc):
    for target in re.findall(r"\]\(([^)#][^)]*)\)", doc.read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        path = (doc.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(REPO) and path.exists(), f"{doc.name} links to {target}"
