"""The tests' one way to run Ansible: the toolkit's venv (found once, here), the project's ansible.cfg,
results read through the ansible.posix.json callback. Unit and integration tests import it (pytest puts
tests/ on the path for tests/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: The venv's bin: the tests run with the toolkit's interpreter (.venv/bin/pytest), whose neighbours are
#: ansible, ansible-playbook, molecule and openstack.
BIN = Path(sys.executable).parent


def ansible_env(*, json_results: bool = True, **extra: str) -> dict[str, str]:
    """The environment of an Ansible command: ansible.cfg, no colours, the venv first on PATH and (unless
    ``json_results`` is false) the json callback on stdout."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if json_results:
        env.update(ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    env.update(extra)
    return env


def report_of(stdout: str) -> dict:
    """The json callback's report (whatever Ansible printed before it is skipped)."""
    return json.loads(stdout[stdout.index("{"):])


def host_results(stdout: str, host: str = "localhost") -> list[dict]:
    """Each task's result for ``host``, in order (``_task`` names the task)."""
    out = []
    for play in report_of(stdout)["plays"]:
        for task in play["tasks"]:
            result = dict(task["hosts"].get(host, {}))
            result["_task"] = task["task"]["name"]
            out.append(result)
    return out


def run(command: list[str], *, timeout: int = 600, **extra_env: str) -> subprocess.CompletedProcess:
    """An Ansible command from the repository's root, its report in JSON on stdout."""
    return subprocess.run(command, cwd=REPO, env=ansible_env(**extra_env), capture_output=True, text=True,
                          timeout=timeout)


def ansible_module(module: str, args: dict, *, check: bool = False, diff: bool = False, timeout: int = 600,
                   interpreter: bool = False) -> dict:
    """``ansible localhost -m <module>`` as an operator runs it: the module's result (``failed``/``msg`` on
    failure). ``interpreter``: run the module with the venv's python, as the cluster role's plays do."""
    command = [str(BIN / "ansible"), "localhost", "-M", str(REPO / "library"), "-m", module, "-a", json.dumps(args)]
    if interpreter:
        command += ["-e", f"ansible_python_interpreter={sys.executable}"]
    if check:
        command.append("--check")
    if diff:
        command.append("--diff")
    done = run(command, timeout=timeout, ANSIBLE_INVENTORY_ENABLED="host_list")
    try:
        result = host_results(done.stdout)[0]
        del result["_task"]
    except (ValueError, KeyError, IndexError):
        raise AssertionError(
            f"ansible gave no result (rc {done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}") from None
    assert "Traceback" not in result.get("msg", ""), result["msg"]
    return result


def assert_one_clear_sentence(result: dict, *expected: str) -> None:
    """Failed, with a one-line message holding the expected words, and no traceback anywhere."""
    assert result.get("failed"), result
    message = result["msg"]
    assert "\n" not in message, message
    for words in expected:
        assert words in message, message
    dumped = json.dumps(result)
    assert "Traceback" not in dumped, dumped[:3000]
    # ansible-core 2.19 puts an "exception" summary in every failed result; it must hold no traceback.
    assert "module_stderr" not in result, dumped[:3000]
    assert "(most recent call last)" not in str(result.get("exception", "")), dumped[:3000]
