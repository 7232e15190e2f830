"""The sandbox's package repository of the emulated NVIDIA driver and toolkit: real .deb packages in flat
repositories shaped as NVIDIA's, signed, which apt itself reads and verifies (file:// URLs, no server)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from container_infra.sandbox import packages
from container_infra.sandbox.layout import Layout
from container_infra.sandbox.supervisor import programs

pytestmark = pytest.mark.skipif(not all(shutil.which(t) for t in ("dpkg-deb", "gpg", "apt-get")),
                                reason="needs dpkg-deb, gpg and apt-get (scripts/host-packages.sh)")


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    layout = Layout(tmp_path_factory.mktemp("sandbox"))
    assert packages.ensure_repository(layout, print) is True
    return layout


def apt(tmp_path: Path, sources: str, *args: str) -> subprocess.CompletedProcess:
    for name in ("etc/apt.conf.d", "etc/preferences.d", "etc/sources.list.d", "lists/partial", "cache"):
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
    (tmp_path / "etc/sources.list").write_text(sources)
    options = [f"-oDir::Etc={tmp_path}/etc", f"-oDir::State::Lists={tmp_path}/lists",
               f"-oDir::Cache={tmp_path}/cache", f"-oDir::Etc::Parts={tmp_path}/etc/apt.conf.d",
               "-oAPT::Sandbox::User=root", "-oDebug::NoLocking=1"]
    return subprocess.run(["apt-get", *options, *args], capture_output=True, text=True)


def test_apt_verifies_both_repositories_and_would_install_the_role_s_packages(repository, tmp_path):
    top = packages.root(repository)
    key = tmp_path / "nvidia.asc"
    key.write_text((top / packages.TOOLKIT_KEY).read_text())
    assert (top / packages.CUDA_DIR / "debian12/x86_64" / packages.CUDA_KEY).read_text() == key.read_text()
    sources = (f"deb [signed-by={key}] file://{top}/{packages.TOOLKIT_DIR.rsplit('/', 1)[0]}/$(ARCH) /\n"
               f"deb [signed-by={key}] file://{top}/{packages.CUDA_DIR}/ubuntu2204/x86_64/ /\n")
    update = apt(tmp_path, sources, "update")
    assert update.returncode == 0 and "W:" not in update.stdout + update.stderr, update.stdout + update.stderr
    plan = apt(tmp_path, sources, "-s", "install", "cuda-drivers", "nvidia-container-toolkit")
    assert plan.returncode == 0, plan.stderr
    installs = sorted(line.split()[1] for line in plan.stdout.splitlines() if line.startswith("Inst "))
    assert installs == ["cuda-drivers", "nvidia-container-toolkit", "nvidia-driver"]


def test_a_tampered_index_or_another_key_is_refused(repository, tmp_path):
    top = tmp_path / "copy"
    shutil.copytree(packages.root(repository), top, symlinks=True)
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    other_key = tmp_path / "other.asc"
    other_key.write_text(packages.ensure_key(other))
    subprocess.run(["gpgconf", "--homedir", str(other), "--kill", "gpg-agent"], capture_output=True)
    directory = f"{top}/{packages.TOOLKIT_DIR}"
    wrong_key = apt(tmp_path / "a", f"deb [signed-by={other_key}] file://{directory}/ /\n", "update")
    assert "NO_PUBKEY" in wrong_key.stdout + wrong_key.stderr or "not signed" in wrong_key.stdout + wrong_key.stderr
    key = tmp_path / "key.asc"
    key.write_text((top / packages.TOOLKIT_KEY).read_text())
    index = Path(directory) / "Packages"
    index.write_text(index.read_text().replace("Depends: python3", "Depends: python3, evil"))
    (Path(directory) / "Packages.gz").unlink()  # else apt takes the intact compressed index
    tampered = apt(tmp_path / "b", f"deb [signed-by={key}] file://{directory}/ /\n", "update")
    assert "Hash Sum mismatch" in tampered.stdout + tampered.stderr or "File has unexpected size" in (
        tampered.stdout + tampered.stderr), tampered.stdout + tampered.stderr


def test_the_packages_hold_the_tools_and_the_runtime_s_config_is_a_conffile(repository, tmp_path):
    directory = packages.root(repository) / packages.TOOLKIT_DIR
    (deb,) = directory.glob("nvidia-container-toolkit_*.deb")
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    for path in ("./usr/bin/nvidia-container-runtime", "./usr/bin/nvidia-container-runtime-hook",
                 "./etc/nvidia-container-runtime/config.toml"):
        assert f" {path}\n" in listing + "\n"
    assert "-rwxr-xr-x root/root" in listing
    subprocess.run(["dpkg-deb", "-e", str(deb), str(tmp_path / "control")], check=True)
    assert (tmp_path / "control" / "conffiles").read_text() == "/etc/nvidia-container-runtime/config.toml\n"
    (driver,) = (packages.root(repository) / packages.CUDA_DIR / "debian12/x86_64").glob("nvidia-driver_*.deb")
    assert "./usr/bin/nvidia-smi" in subprocess.run(["dpkg-deb", "-c", str(driver)], capture_output=True,
                                                    text=True, check=True).stdout


def test_the_tree_is_made_once_per_recipe_and_served_on_the_storage_address_only(repository):
    assert packages.ensure_repository(repository, print) is False
    (program,) = [p for p in programs(repository) if p.name == "packages"]
    assert program.phase == 3
    assert program.command[-4:] == ["--bind", "10.80.0.2", "--directory", str(packages.root(repository))]
    assert packages.URL == "http://10.80.0.2:8480"
