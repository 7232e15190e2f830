"""``container-infra sandbox images ...``: build the images the toolkit's roles run and push them to the
sandbox's registry (``container_infra.sandbox.images``).

The group object is ``images``; the toolkit's CLI registers it under ``sandbox``.
"""

from __future__ import annotations

import json
import subprocess

import click

from container_infra.sandbox.layout import Layout


def _report(message: str) -> None:
    click.echo(f"  {message}", err=True)


@click.group()
def images() -> None:
    """Images for the toolkit's roles, built from Debian packages, in the sandbox's registry."""


@images.command("build")
@click.argument("names", nargs=-1)
@click.option("--force", is_flag=True, help="Build and push again even if the registry has the recipe's image.")
@click.pass_obj
def images_build(layout: Layout, names: tuple[str, ...], force: bool) -> None:
    """Build NAMES (default: every recipe) and push them to the sandbox's registry, unless it has them."""
    from container_infra.sandbox import images as builder
    from container_infra.sandbox import registry

    try:
        results = builder.build(names, _report, registry.ca_path(layout), force=force)
    except (RuntimeError, subprocess.CalledProcessError, OSError) as error:
        raise click.ClickException(str(error)) from error
    for result in results:
        if result.action == "present":
            click.echo(f"sandbox: {result.tag} is in the registry already", err=True)
        else:
            size = "" if result.size_mb is None else f", {result.size_mb:.0f} MB"
            click.echo(f"sandbox: {result.action} {result.tag} in {result.seconds:.1f} s{size}", err=True)
        click.echo(result.tag)


@images.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@click.pass_obj
def images_list(layout: Layout, as_json: bool) -> None:
    """Each recipe, its tag for this machine's Debian suite, and whether the registry holds it."""
    from container_infra.sandbox import images as builder
    from container_infra.sandbox import registry

    try:
        rows = builder.status(registry.ca_path(layout))
    except RuntimeError as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    states = {True: "pushed", False: "missing", None: "registry down"}
    width = max(len(row["name"]) for row in rows)
    for row in rows:
        click.echo(f"{row['name']:<{width}}  {states[row['in_registry']]:<13}  {row['tag']}  ({row['description']})")
