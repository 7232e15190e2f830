"""WSGI application factories for gunicorn, one per API service.

Each service's own WSGI module parses ``sys.argv`` with oslo.config, where gunicorn's arguments
would be rejected, and looks for its configuration in /etc by default. A factory points both at the
sandbox's generated configuration first, then imports the service's own entry point unchanged.

gunicorn calls them as ``container_infra_sandbox.wsgi_apps:keystone()``.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path


def _etc(service: str) -> Path:
    return Path(os.environ["CONTAINER_INFRA_SANDBOX_DIR"]) / "etc" / service


def _load(service: str, prog: str, config_files: list[str], module: str, env_prefix: str,
          env_files: list[str] | None = None):
    """Point argv and the service's OS_*_CONFIG_* variables at the sandbox's files, then import.

    ``env_files`` is the list the service's own loader reads, where it differs from what oslo.config
    should parse (Nova's loader wants its paste file in the list, oslo.config must not get it).
    """
    etc = _etc(service)
    paths = [str(etc / name) for name in config_files]
    sys.argv = [prog] + [arg for path in paths for arg in ("--config-file", path)]
    os.environ[f"OS_{env_prefix}_CONFIG_DIR"] = str(etc)
    os.environ[f"OS_{env_prefix}_CONFIG_FILES"] = ";".join(env_files or config_files)
    return importlib.import_module(module).application


def keystone():
    etc = _etc("keystone")
    os.environ["OS_KEYSTONE_CONFIG_DIR"] = str(etc)
    os.environ["OS_KEYSTONE_CONFIG_FILES"] = "keystone.conf"
    sys.argv = ["keystone-wsgi-public"]
    return importlib.import_module("keystone.wsgi.api").application


def glance():
    return _load("glance", "glance-api", ["glance-api.conf"], "glance.wsgi.api", "GLANCE")


def placement():
    return _load("placement", "placement-api", ["placement.conf"], "placement.wsgi.api", "PLACEMENT")


def nova():
    return _load("nova", "nova-api", ["nova.conf"], "nova.wsgi.osapi_compute", "NOVA",
                 env_files=["api-paste.ini", "nova.conf"])


def neutron():
    return _load("neutron", "neutron-api", ["neutron.conf"], "neutron.wsgi.api", "NEUTRON")


def heat():
    return _load("heat", "heat-api", ["heat.conf"], "heat.wsgi.api", "HEAT")


def manila():
    return _load("manila", "manila-api", ["manila.conf"], "manila.wsgi.api", "MANILA")


def magnum():
    etc = _etc("magnum")
    sys.argv = ["magnum-api", "--config-file", str(etc / "magnum.conf")]
    from magnum.api import app

    return app.build_wsgi_app()
