"""Compose stacks deployed to a Swarm with their services on the host network (so that they reach the
nodes' HTE and LLN interfaces, as the memo's stacks did) and a chosen logging driver (journald by default).

``render`` takes the stack file the user gives and returns the one the role deploys: every service joins
the external network ``host`` (unless the role is told not to), gets the logging driver where it names none,
and carries a digest of the whole rendered stack as a service label. The role compares that label on the
running services with the digest it would deploy: an unchanged stack is not deployed again (``docker stack
deploy`` itself reports nothing, so a run could not tell), and a changed one is deployed with ``--prune``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any

DIGEST_LABEL = "container_infra.stack.digest"
#: The stack-file name of the external network that is the engine's host network.
HOST_NETWORK = "hostnet"
NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")


class StackError(ValueError):
    """A stack the role cannot deploy; one sentence per problem."""


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def check(compose: Any, name: str, host_network: bool = True) -> list[str]:
    """What is wrong with a stack file for this role, one sentence each."""
    errors = []
    if not NAME.match(str(name or "")):
        errors.append(f"The stack name {name!r} is not one Docker takes; use letters, digits, '_', '.' and '-'.")
    if not isinstance(compose, dict) or not isinstance(compose.get("services"), dict) or not compose["services"]:
        return [*errors, "The stack file has no services mapping; give a Compose file with at least one service."]
    for service, body in compose["services"].items():
        if not isinstance(body, dict) or not body.get("image"):
            errors.append(f"The stack's service {service} names no image; a Swarm stack pulls, it does not build.")
            continue
        if host_network:
            networks = body.get("networks") or []
            if networks and list(networks) != [HOST_NETWORK]:
                errors.append(f"The stack's service {service} joins networks {sorted(networks)}, but a service on "
                              "the host network can join no other; remove them or set "
                              "container_infra_stack_host_network to false.")
            for port in body.get("ports") or []:
                if not (isinstance(port, dict) and port.get("mode") == "host"):
                    errors.append(f"The stack's service {service} publishes {port!r} through the ingress mesh, which "
                                  "a service on the host network cannot use; publish with mode: host or drop it "
                                  "(the service listens on the node's own ports).")
    return errors


def render(compose: dict, name: str, host_network: bool = True, logging: dict | None = None) -> dict:
    """The stack as deployed: host network, logging where a service names none, the digest label."""
    errors = check(compose, name, host_network)
    if errors:
        raise StackError(f"stack {name}: " + " ".join(errors))
    out = copy.deepcopy(compose)
    out.setdefault("version", "3.8")
    for body in out["services"].values():
        if host_network:
            body["networks"] = [HOST_NETWORK]
        if logging and "logging" not in body:
            body["logging"] = copy.deepcopy(logging)
    if host_network:
        out.setdefault("networks", {})[HOST_NETWORK] = {"external": True, "name": "host"}
    stamp = digest(out)
    for body in out["services"].values():
        deploy = body.setdefault("deploy", {})
        labels = deploy.get("labels") or {}
        if isinstance(labels, list):
            labels = dict(item.split("=", 1) if "=" in item else (item, "") for item in labels)
        deploy["labels"] = {**labels, DIGEST_LABEL: stamp}
    return out


def services(rendered: dict, name: str) -> dict[str, str]:
    """The Swarm services the rendered stack makes (``<stack>_<service>``) and the digest each should carry."""
    return {f"{name}_{service}": body["deploy"]["labels"][DIGEST_LABEL]
            for service, body in rendered["services"].items()}


def running(inspect_lines: list[str]) -> dict[str, str]:
    """``<service name> <labels as JSON>`` lines (``docker service inspect --format '{{.Spec.Name}} {{json
    .Spec.Labels}}'``) as service -> digest label ('' for a service without one)."""
    out = {}
    for line in inspect_lines:
        name, _, labels = line.strip().partition(" ")
        if not name:
            continue
        try:
            out[name] = str((json.loads(labels) or {}).get(DIGEST_LABEL, ""))
        except (ValueError, AttributeError):
            out[name] = ""
    return out


def needs_deploy(rendered: dict, name: str, inspect_lines: list[str]) -> bool:
    """Whether the running services differ from the rendered stack's (a service missing, added, or another
    digest)."""
    return running(inspect_lines) != services(rendered, name)
