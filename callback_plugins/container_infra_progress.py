"""Callback plugin: print a waiting task's progress line on every poll.

A task polled with ``until`` shows only "FAILED - RETRYING ... (N retries left)" under the default
callback. The toolkit's waits (os_container_infra_status) return a one-line ``progress`` - status,
status_reason, nodes ACTIVE so far, elapsed time - and this plugin prints it as each retry happens,
so a 20-minute cluster build is never a silent wait, on a terminal or in a Rundeck job log. The last poll
(the one that found the operation settled) prints its line too: a wait that found the cluster already
settled at its first look still says what it found.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: container_infra_progress
type: notification
short_description: Show container-infra's progress lines while tasks wait
description:
  - On each retry of a task whose result has a C(progress) string, print it with the host's name; and
    once more when such a task, polled with C(until), ends.
  - Enable it with C(callbacks_enabled = container_infra_progress) in ansible.cfg (the toolkit's does).
requirements:
  - enabled in ansible.cfg (callbacks_enabled)
"""

from ansible.plugins.callback import CallbackBase  # noqa: E402 (after DOCUMENTATION, as Ansible plugins are written)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "container_infra_progress"
    CALLBACK_NEEDS_ENABLED = True

    def _show(self, result) -> None:
        line = result._result.get("progress")
        if isinstance(line, str) and line:
            self._display.display(f"  [{result._host.get_name()}] {line}", color="cyan")

    def v2_runner_retry(self, result):
        self._show(result)

    def v2_runner_on_ok(self, result):
        # Only a polled task (Ansible counts its attempts): a single look is reported by the task itself.
        if "attempts" in result._result:
            self._show(result)
