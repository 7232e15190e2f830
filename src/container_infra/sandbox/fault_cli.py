"""``container-infra sandbox fault ...``: drive the sandbox's fault proxy from the shell.

The group object is ``fault``; the toolkit's CLI registers it under ``sandbox``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from container_infra.sandbox.faults import DEFAULT_ADMIN_URL, FaultClient, FaultProxyError

_META_KEY = "container_infra.sandbox.fault_client"
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")


def _client(ctx: click.Context) -> FaultClient:
    return ctx.meta[_META_KEY]


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def _describe(rule: dict[str, Any]) -> str:
    what = f"HTTP {rule['status']}" if rule["action"] == "status" else "connection reset"
    scope = "until cleared" if not rule["count"] else f"next {rule['count']} request(s)"
    after = ", after the service answered" if rule.get("when") == "after" else ""
    service = "every service" if rule["service"] == "*" else rule["service"]
    method = "any method" if rule["method"] == "*" else rule["method"]
    return f"fault {rule['id']}: {what} for {method} {rule['path']} on {service} ({scope}{after})"


def _latency_line(latency: dict[str, int]) -> str:
    if not latency:
        return "latency: none"
    parts = [f"{'every service' if s == '*' else s} +{ms} ms" for s, ms in sorted(latency.items())]
    return "latency: " + ", ".join(parts)


class _FaultGroup(click.Group):
    """Turns the client's errors into one ``Error: ...`` line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FaultProxyError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_FaultGroup)
@click.option(
    "--admin-url",
    default=DEFAULT_ADMIN_URL,
    show_default=True,
    envvar="CONTAINER_INFRA_FAULT_ADMIN_URL",
    help="The fault proxy's admin API.",
)
@click.pass_context
def fault(ctx: click.Context, admin_url: str) -> None:
    """Inject errors, connection resets and latency into the sandbox cloud's public endpoints,
    and count the API calls made through them."""
    client = FaultClient(admin_url)
    ctx.meta[_META_KEY] = client
    ctx.call_on_close(client.close)


@fault.command("add")
@click.option("--service", default="*", show_default=True, help="Catalog service type, or * for all.")
@click.option("--method", default="*", show_default=True, help="HTTP method (or POST,PUT), or * for all.")
@click.option(
    "--path", default="*", show_default=True, help="Glob on the request path, e.g. '/v1/clusters*'."
)
@click.option("--status", type=click.IntRange(400, 599), help="Answer this HTTP error code (e.g. 503).")
@click.option("--reset", is_flag=True, help="Abort the TCP connection instead, without a response.")
@click.option(
    "--count",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Next N requests; 0 = until cleared.",
)
@click.option("--message", help="The error message in the OpenStack-shaped body.")
@click.option("--after", is_flag=True, help="Let the service handle the request, then fault its answer.")
@click.option("--retry-after", type=click.IntRange(min=0), help="Send a Retry-After header (seconds).")
@click.option("--agent", default="*", show_default=True,
              help="Only requests whose User-Agent matches this glob (one client among many).")
@json_option
@click.pass_context
def add(
    ctx: click.Context,
    service: str,
    method: str,
    path: str,
    status: int | None,
    reset: bool,
    count: int,
    message: str | None,
    after: bool,
    retry_after: int | None,
    agent: str,
    as_json: bool,
) -> None:
    """Add a fault rule (matched in creation order; the first match wins)."""
    if (status is None) == (not reset):
        raise click.UsageError("give either --status CODE or --reset (one of them)")
    rule = _client(ctx).add_fault(
        service=service,
        method=method,
        path=path,
        status=status,
        reset=reset,
        count=count,
        message=message,
        when="after" if after else "before",
        retry_after=retry_after,
        agent=agent,
    )
    if as_json:
        _emit_json(rule)
    else:
        click.echo("added " + _describe(rule))


@fault.command("list")
@click.option("--expired", is_flag=True, help="Also show rules that expired recently.")
@json_option
@click.pass_context
def list_(ctx: click.Context, expired: bool, as_json: bool) -> None:
    """List the active fault rules, with remaining uses and hits, and the latency."""
    client = _client(ctx)
    rules = client.list_faults()
    old = client.list_faults(expired=True) if expired else []
    latency = client.latency()
    if as_json:
        data: dict[str, Any] = {"faults": rules, "latency": latency}
        if expired:
            data["expired"] = old
        _emit_json(data)
        return
    shown = [(r, "") for r in rules] + [(r, "expired") for r in old]
    if shown:
        rows = [
            (
                r["id"],
                r["service"],
                r["method"],
                r["path"],
                r["status"] if r["action"] == "status" else "reset",
                r["when"],
                state or ("-" if r["remaining"] is None else r["remaining"]),
                r["hits"],
                r.get("message") or "",
            )
            for r, state in shown
        ]
        click.echo(
            _table(("ID", "SERVICE", "METHOD", "PATH", "FAULT", "WHEN", "LEFT", "HITS", "MESSAGE"), rows)
        )
    else:
        click.echo("no fault rules")
    click.echo(_latency_line(latency))


@fault.command("clear")
@click.argument("rule_id", metavar="[ID]", type=int, required=False)
@json_option
@click.pass_context
def clear(ctx: click.Context, rule_id: int | None, as_json: bool) -> None:
    """Remove one fault rule, or all of them."""
    client = _client(ctx)
    if rule_id is None:
        cleared = client.clear_faults()
        if as_json:
            _emit_json({"cleared": cleared})
        else:
            click.echo(f"cleared {cleared} fault rule(s)")
        return
    rule = client.remove_fault(rule_id, missing_ok=True)
    if rule is None:
        raise click.ClickException(
            f"there is no active fault rule with id {rule_id} (it may have expired); "
            "see `container-infra sandbox fault list`"
        )
    if as_json:
        _emit_json(rule)
    else:
        click.echo("removed " + _describe(rule))


@fault.command("latency")
@click.argument("ms", type=click.IntRange(0, 600_000))
@click.option("--service", default="*", show_default=True, help="Catalog service type, or * for all.")
@json_option
@click.pass_context
def latency(ctx: click.Context, ms: int, service: str, as_json: bool) -> None:
    """Add MS milliseconds to every request (0 clears); --service '*' replaces per-service values."""
    now = _client(ctx).set_latency(ms, service=service)
    if as_json:
        _emit_json({"latency": now})
    else:
        click.echo(_latency_line(now))


@fault.command("counts")
@click.option("--reset", is_flag=True, help="Reset the counters after printing them.")
@json_option
@click.pass_context
def counts(ctx: click.Context, reset: bool, as_json: bool) -> None:
    """Requests per service and method that went through the proxy (faulted ones included)."""
    client = _client(ctx)
    data = client.reset_counts() if reset else client.counts()
    if as_json:
        _emit_json(data)
        return
    seen = {m for c in data.values() for m in c["by_method"]}
    methods = [m for m in _METHOD_ORDER if m in seen] + sorted(seen - set(_METHOD_ORDER))
    rows = [
        (name, c["total"], c.get("faulted", 0), *(c["by_method"].get(m, 0) for m in methods))
        for name, c in sorted(data.items())
    ]
    click.echo(_table(("SERVICE", "TOTAL", "FAULTED", *methods), rows))
    if reset:
        click.echo("counters reset")
