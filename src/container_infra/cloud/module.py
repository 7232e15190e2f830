"""Glue that keeps each Ansible module thin: build the AnsibleModule, the Cloud, run, report.

A module's ``main()`` is::

    def main():
        run_module(ARGUMENT_SPEC, container_infra.modules.os_thing.run)

where ``run(module, cloud) -> dict`` returns the result (``changed``, the resource, and ``diff``
with ``before``/``after`` when the module computed one).  A CloudError, or any client exception,
becomes ``fail_json(msg=<one sentence>)`` with no traceback.
"""

from __future__ import annotations

import copy
import traceback
from collections.abc import Callable
from typing import Any

from container_infra.cloud.connection import AUTH_ARGUMENT_SPEC, Cloud, cloud_secrets
from container_infra.cloud.errors import CloudError, explain


def argument_spec(own: dict[str, dict[str, Any]], *, auth: bool = True) -> dict[str, dict[str, Any]]:
    """The module's own options plus the shared auth/wait options (own ones win)."""
    spec = copy.deepcopy(AUTH_ARGUMENT_SPEC) if auth else {}
    spec.update(copy.deepcopy(own))
    return spec


def build_module(spec: dict[str, dict[str, Any]], supports_check_mode: bool = True, module_class=None, **kwargs):
    """The AnsibleModule (apart from run_module so tests can build one).

    Pass the library file's own ``AnsibleModule`` as ``module_class``: the copy AnsiballZ ships with the
    module is the one that holds the task's parameters."""
    if module_class is None:
        from ansible.module_utils.basic import AnsibleModule as module_class

    return module_class(argument_spec=spec, supports_check_mode=supports_check_mode, **kwargs)


def diff(before: Any, after: Any) -> dict[str, Any]:
    """Ansible's diff structure."""
    return {"before": before if before is not None else {}, "after": after if after is not None else {}}


class ModuleFailure(Exception):
    """Raised by runners for a bad parameter found before any cloud call (message: one sentence)."""

    def __init__(self, message: str, **extra: Any):
        super().__init__(message)
        self.extra = extra


#: Result keys Ansible takes as the task's outcome; a module's data never uses them.
RESERVED_RESULT_KEYS = frozenset({"failed", "skipped", "unreachable", "rc"})


def check_common(params: dict[str, Any]) -> None:
    """Refuse a shared wait or connection option no module can honour, before any cloud call."""
    for name, meaning in (("timeout", "it bounds the whole wait; use wait: false not to wait"),
                          ("api_timeout", "it bounds one API request; leave it out for the clouds.yaml "
                                          "entry's or the default of 120 s")):
        value = params.get(name)
        if value is not None and value < 1:
            raise ModuleFailure(f"{name} must be 1 or more seconds, not {value} ({meaning})")
    if params.get("poll_interval") is not None and params["poll_interval"] <= 0:
        raise ModuleFailure(f"poll_interval must be more than 0 seconds, not {params['poll_interval']}")


def run_module(
    own_spec: dict[str, dict[str, Any]],
    runner: Callable[[Any, Cloud | None], dict[str, Any]],
    supports_check_mode: bool = True,
    *,
    needs_cloud: bool = True,
    operation: str = "running",
    resource: Callable[[dict[str, Any]], str] | str = "the module",
    module_class=None,
    **module_kwargs: Any,
) -> None:
    """Build the module and the Cloud, call ``runner(module, cloud)``, exit or fail in one sentence.

    Library files pass ``module_class=AnsibleModule`` (imported there, so that AnsiballZ bundles it)."""
    module = build_module(argument_spec(own_spec, auth=needs_cloud), supports_check_mode, module_class,
                          **module_kwargs)
    if needs_cloud:
        # An inline cloud definition (a dict in `cloud`) holds secrets that `cloud`, being usually a
        # plain name, cannot be marked no_log for: they are hidden like a no_log option's values in
        # everything the module returns (its message and its invocation shown at -vvv and above).
        module.no_log_values.update(cloud_secrets(module.params.get("cloud")))
    cloud = None
    failure: dict[str, Any] | None = None
    try:
        if needs_cloud:
            check_common(module.params)
            cloud = Cloud.from_params(module.params)
        result = runner(module, cloud)
    except ModuleFailure as exc:
        failure = {"msg": str(exc), **exc.extra}
    except CloudError as exc:
        failure = {"msg": str(exc), **(getattr(exc, "result", None) or {})}
    except Exception as exc:
        what = resource(module.params) if callable(resource) else resource
        failure = {"msg": str(explain(exc, operation, what)), "exception_class": type(exc).__name__}
        if module._verbosity >= 3:
            failure["debug_traceback"] = traceback.format_exc()
    finally:
        if cloud is not None:
            cloud.close()
    if failure is not None:
        # Failing outside the except block: ansible-core records the active exception's traceback
        # in the result otherwise, and the operator is owed one sentence, not a stack.
        module.fail_json(**failure)
    reserved = sorted(RESERVED_RESULT_KEYS & set(result))
    if reserved:
        # Ansible reads these keys as the task's own outcome, not as the module's data.
        module.fail_json(msg=f"the module returned {', '.join(reserved)}, which Ansible reserves for the task's "
                             "own outcome; this is a bug in the module: report it")
    if cloud is not None:
        result.setdefault("api_calls", cloud.api_calls.total)
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)
