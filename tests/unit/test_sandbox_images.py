"""The registry's images without Docker: recipes, digests, what a build does and skips, the CLI's errors."""

from __future__ import annotations

import fcntl
import json
import re

import pytest
from click.testing import CliRunner

from container_infra.cli import main
from container_infra.sandbox import images, nodeimage
from container_infra.sandbox import registry as sandbox_registry

MIRROR = nodeimage.Mirror("http://mirror.example/debian", "bookworm")


def test_the_roles_images_have_recipes():
    assert {"base", "glusterfs", "prometheus", "node-exporter"} <= set(images.RECIPES)
    assert "glusterfs-server" in images.RECIPES["glusterfs"].packages
    assert "prometheus" in images.RECIPES["prometheus"].packages
    assert "prometheus-node-exporter" in images.RECIPES["node-exporter"].packages
    # glusterd stays in the foreground, so the container lives as long as it does.
    assert "--no-daemon" in images.RECIPES["glusterfs"].entrypoint
    for recipe in images.RECIPES.values():
        assert recipe.packages and (recipe.entrypoint or recipe.cmd) and recipe.description


def test_tags_name_the_sandbox_registry_and_follow_the_recipe(monkeypatch):
    tag = images.image_tag("base", "bookworm")
    assert re.fullmatch(r"10\.80\.0\.2:5000/container-infra/base:[0-9a-f]{16}", tag)
    assert tag == images.image_tag("base", "bookworm")
    assert images.image_tag("base", "trixie") != tag
    assert images.image_tag("glusterfs", "bookworm").rsplit(":", 1)[1] != tag.rsplit(":", 1)[1]
    assert images.image_tag("base", "bookworm", registry="127.0.0.1:25500").startswith("127.0.0.1:25500/")
    changed = dict(images.RECIPES)
    changed["base"] = images.Recipe("x", (*images.RECIPES["base"].packages, "vim"), cmd=("/bin/bash",))
    monkeypatch.setattr(images, "RECIPES", changed)
    assert images.image_tag("base", "bookworm") != tag
    assert images.root_tag("bookworm").startswith(f"{images.ROOT_REPOSITORY}:bookworm-")


def test_import_says_how_to_run_and_carries_the_digest():
    recipe = images.RECIPES["prometheus"]
    changes = images.import_changes("prometheus", "bookworm", recipe)
    assert f"ENTRYPOINT {json.dumps(list(recipe.entrypoint))}" in changes
    assert f"CMD {json.dumps(list(recipe.cmd))}" in changes
    assert "USER prometheus" in changes
    assert "EXPOSE 9090/tcp" in changes
    digest = images.recipe_digest("prometheus", "bookworm")
    assert f"LABEL {nodeimage.LABEL_DIGEST}={digest}" in changes


def test_install_keeps_recommends_and_caches_out():
    script = images.install_script(images.RECIPES["glusterfs"])
    assert "apt-get install -y -qq --no-install-recommends glusterfs-server" in script
    assert "/var/run/gluster" in script
    assert script.index("install") < script.index("rm -rf /var/lib/apt/lists/*")
    assert "/usr/sbin/policy-rc.d" in images.CLEANUP_SCRIPT
    assert "exit 101" in images.POLICY_RC_D


def test_names_are_checked_before_anything_runs():
    assert images.select(()) == list(images.RECIPES)
    assert images.select(["base", "base"]) == ["base"]
    with pytest.raises(RuntimeError, match="no image recipe named nope; choose from base"):
        images.select(["base", "nope"])


class FakeClient:
    def __init__(self, tags=(), latest=None):
        self._tags, self.latest, self.copied = list(tags), latest, []

    def check(self):
        pass

    def tags(self, repository):
        return self._tags

    def manifest_digest(self, repository, reference):
        return self.latest if reference == "latest" else f"sha256:{reference}"

    def copy_tag(self, repository, source, target):
        self.copied.append((source, target))


@pytest.fixture
def builder(monkeypatch, tmp_path):
    """images.build with the registry, Docker and debootstrap replaced by a record of what ran."""
    calls = []
    state = {"client": FakeClient(), "local": set()}
    monkeypatch.setattr(nodeimage, "mirrors_from_apt", lambda: [MIRROR])
    monkeypatch.setattr(sandbox_registry, "Client", lambda registry, ca_file, timeout=10: state["client"])
    monkeypatch.setattr(sandbox_registry, "trust_on_host", lambda ca, registry: calls.append(("trust", registry)))
    monkeypatch.setattr(images.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(nodeimage, "image_exists", lambda tag: tag in state["local"])
    monkeypatch.setattr(images, "_prepare_root", lambda mirror, workdir, report: calls.append("root") or tmp_path)
    monkeypatch.setattr(images, "_build_one", lambda name, *args: calls.append(("build", name)))
    monkeypatch.setattr(images, "_run", lambda args, what, **kw: calls.append(tuple(args)))
    monkeypatch.setattr(images, "_push", lambda tag: calls.append(("push", tag)))
    monkeypatch.setattr(images, "image_size_mb", lambda tag: 12.5)
    monkeypatch.setattr(nodeimage, "_unmount_below", lambda root: None)

    def run(names, **kwargs):
        return images.build(names, calls.append, tmp_path / "ca.crt", **kwargs)

    return run, calls, state


def test_an_image_the_registry_has_is_neither_built_nor_pushed(builder):
    run, calls, state = builder
    digest = images.recipe_digest("base", "bookworm")
    state["client"] = FakeClient(tags=[digest, "latest"], latest=f"sha256:{digest}")
    results = run(["base"])
    assert [(r.name, r.action) for r in results] == [("base", "present")]
    assert calls == []


def test_latest_is_pointed_at_the_present_digest(builder):
    run, _calls, state = builder
    digest = images.recipe_digest("base", "bookworm")
    state["client"] = FakeClient(tags=[digest, "latest"], latest="sha256:older")
    run(["base"])
    assert state["client"].copied == [(digest, "latest")]


def test_a_missing_image_is_built_once_from_one_root_and_pushed_with_latest(builder):
    run, calls, _state = builder
    results = run(["base", "glusterfs"])
    assert calls.count("root") == 1
    assert ("build", "base") in calls and ("build", "glusterfs") in calls
    tag = images.image_tag("base", "bookworm")
    latest = "10.80.0.2:5000/container-infra/base:latest"
    assert calls.index(("build", "base")) < calls.index(("docker", "tag", tag, latest))
    assert calls.index(("push", tag)) < calls.index(("push", latest))
    assert ("trust", sandbox_registry.REGISTRY) in calls
    assert [(r.name, r.action, r.size_mb) for r in results] == [("base", "built", 12.5), ("glusterfs", "built", 12.5)]


def test_an_image_built_here_but_not_pushed_is_pushed_without_building(builder):
    run, calls, state = builder
    state["local"].add(images.image_tag("base", "bookworm"))
    results = run(["base"])
    assert "root" not in calls and not [c for c in calls if c[0] == "build"]
    assert ("push", images.image_tag("base", "bookworm")) in calls
    assert results[0].action == "pushed"


def test_a_build_holds_the_machines_build_lock_so_a_second_caller_waits(builder, monkeypatch, tmp_path):
    run, _calls, _state = builder
    held = []

    def build_one(name, *args):
        with open(tmp_path / ".images-build.lock", "a") as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                held.append(name)
            else:
                fcntl.flock(other, fcntl.LOCK_UN)

    monkeypatch.setattr(images, "_build_one", build_one)
    run(["base"])
    assert held == ["base"]
    with open(tmp_path / ".images-build.lock", "a") as after:
        fcntl.flock(after, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released once the build is over


def test_force_builds_what_the_registry_has(builder):
    run, _calls, state = builder
    state["client"] = FakeClient(tags=[images.recipe_digest("base", "bookworm")])
    assert run(["base"], force=True)[0].action == "built"


def test_cli_unknown_image_is_one_sentence(monkeypatch, tmp_path):
    monkeypatch.setenv("CONTAINER_INFRA_SANDBOX_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["sandbox", "images", "build", "nope"])
    assert result.exit_code == 1
    assert "no image recipe named nope" in result.output and "Traceback" not in result.output


def test_cli_registry_down_says_to_start_the_sandbox(monkeypatch, tmp_path):
    monkeypatch.setenv("CONTAINER_INFRA_SANDBOX_DIR", str(tmp_path))
    monkeypatch.setattr(nodeimage, "mirrors_from_apt", lambda: [MIRROR])
    sandbox_registry.ensure_tls(tmp_path / "etc" / "registry", ("127.0.0.1",))
    monkeypatch.setattr(sandbox_registry, "REGISTRY", "127.0.0.1:9")
    monkeypatch.setattr(images.build, "__defaults__", (sandbox_registry.REGISTRY, False, True))
    result = CliRunner().invoke(main, ["sandbox", "images", "build", "base"])
    assert result.exit_code == 1
    assert "start the sandbox with `container-infra sandbox up`" in result.output
