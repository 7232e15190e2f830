"""The ``container-infra`` command."""

from __future__ import annotations

import subprocess
import sys
import time

import click

from container_infra.job_cli import job
from container_infra.sandbox import install as installer
from container_infra.sandbox import manager, nodeimage
from container_infra.sandbox.fault_cli import fault
from container_infra.sandbox.images_cli import images
from container_infra.sandbox.layout import Layout
from container_infra.sandbox.seed import SeedError


def _report(message: str) -> None:
    click.echo(f"  {message}", err=True)


@click.group()
@click.version_option(package_name="container-infra")
def main() -> None:
    """Turn an OpenStack cloud's bare metal into container clusters."""


@main.group()
@click.pass_context
def sandbox(ctx: click.Context) -> None:
    """The embedded sandbox cloud: real OpenStack services on 127.0.0.1, emulated hardware."""
    ctx.obj = Layout.default()


@sandbox.command()
@click.pass_obj
def up(layout: Layout) -> None:
    """Install (once), start and seed the sandbox; safe to run again."""
    click.echo(f"sandbox: bringing up the cloud in {layout.root}", err=True)
    started = time.monotonic()
    try:
        timings = manager.up(layout, _report)
    except (manager.SandboxError, SeedError, RuntimeError, subprocess.CalledProcessError) as error:
        raise click.ClickException(str(error)) from error
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items())
    click.echo(f"sandbox: up in {time.monotonic() - started:.1f} s ({phases})", err=True)
    click.echo("sandbox: try `openstack --os-cloud sandbox coe cluster template list`", err=True)


@sandbox.command()
@click.pass_obj
def install(layout: Layout) -> None:
    """Install the sandbox's Debian packages and services without starting anything (``up`` does this too)."""
    installer.install_debian_packages(_report)
    installer.ensure_venv(layout, _report)
    installer.ensure_nova_driver_shim(layout)
    click.echo(f"sandbox: installed in {layout.venv}", err=True)


@sandbox.command()
@click.pass_obj
def down(layout: Layout) -> None:
    """Stop every process of the sandbox (its state is kept for the next up)."""
    strays = manager.down(layout)
    if strays:
        click.echo(f"sandbox: stopped stray processes {strays}", err=True)
    click.echo("sandbox: down", err=True)


@sandbox.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@click.pass_obj
def status(layout: Layout, as_json: bool) -> None:
    """Show each service's state and URL; exits 1 unless every service is running."""
    import json

    services = manager.status(layout)
    if as_json:
        click.echo(json.dumps([service.__dict__ for service in services], indent=2))
    else:
        width = max(len(service.name) for service in services)
        for service in services:
            click.echo(f"{service.name:<{width}}  {service.state:<8}  {service.url:<36}  {service.detail}")
    if any(service.state != "RUNNING" for service in services):
        sys.exit(1)


@sandbox.command()
@click.argument("service")
@click.option("-n", "--lines", default=50, show_default=True, help="How many lines from the end.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing as the log grows.")
@click.pass_obj
def logs(layout: Layout, service: str, lines: int, follow: bool) -> None:
    """Show a service's log."""
    try:
        path = manager.log_path(layout, service)
    except manager.SandboxError as error:
        raise click.ClickException(str(error)) from error
    if not path.exists():
        raise click.ClickException(f"{service} has no log yet at {path}; run `container-infra sandbox up` first")
    command = ["tail", "-n", str(lines)] + (["-F"] if follow else []) + [str(path)]
    sys.exit(subprocess.call(command))


@sandbox.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def reset(layout: Layout, yes: bool) -> None:
    """Stop the sandbox and wipe its state (databases, configuration, logs); keeps the installed services."""
    if not yes:
        click.confirm(f"Wipe every resource of the sandbox in {layout.root}?", abort=True)
    try:
        manager.reset(layout)
    except manager.SandboxError as error:
        raise click.ClickException(str(error)) from error
    click.echo("sandbox: reset; the next `up` starts from an empty cloud", err=True)


@sandbox.group()
def image() -> None:
    """The node image the sandbox's Docker-backed servers boot."""


@image.command("build")
@click.option("--force", is_flag=True, help="Build again even if the image for this recipe exists.")
def image_build(force: bool) -> None:
    """Build the node image (debootstrap + docker import) unless its recipe's image exists."""
    try:
        tag, seconds = nodeimage.build(_report, force=force)
    except (RuntimeError, subprocess.CalledProcessError) as error:
        raise click.ClickException(str(error)) from error
    if seconds is None:
        click.echo(f"sandbox: node image {tag} is up to date", err=True)
    else:
        click.echo(f"sandbox: built node image {tag} in {seconds:.1f} s", err=True)
    click.echo(tag)


sandbox.add_command(fault)
sandbox.add_command(images)
main.add_command(job)


if __name__ == "__main__":
    main()
