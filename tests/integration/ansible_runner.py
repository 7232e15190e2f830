"""Run one of the toolkit's modules the way an operator does: `ansible localhost -m <module>`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin"


def ansible_module(module: str, args: dict, *, check: bool = False, diff: bool = False, timeout: int = 600) -> dict:
    """The module's result (``failed``/``msg`` on failure), through the json stdout callback."""
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_INVENTORY_ENABLED="host_list",
               ANSIBLE_LOCALHOST_WARNING="0")
    command = [str(BIN / "ansible"), "localhost", "-M", str(REPO / "library"), "-m", module, "-a", json.dumps(args)]
    if check:
        command.append("--check")
    if diff:
        command.append("--diff")
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    try:
        report = json.loads(done.stdout[done.stdout.index("{"):])
    except ValueError:
        raise AssertionError(
            f"ansible gave no JSON (rc {done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}") from None
    result = report["plays"][0]["tasks"][0]["hosts"]["localhost"]
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
