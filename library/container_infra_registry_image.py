#!/usr/bin/python
# Copyright: container-infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module container_infra_registry_image: fail unless every image is in its registry.

Runs ON THE NODE (which reaches the registry and trusts its CA through /etc/docker/certs.d), standard library
only. It asks the registry's v2 API for each image's manifest before anything is deployed, so a missing image
is one sentence instead of a service whose tasks never start.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: container_infra_registry_image
short_description: Check that images are in their registries (v2 API) before they are deployed
description:
  - For each image of O(images), a C(HEAD /v2/<repository>/manifests/<tag or digest>) to its registry over
    HTTPS (an anonymous token is fetched where the registry asks for one), trusting the CA in
    C(<certs_d>/<registry>/ca.crt) when there is one, as the Docker engine does.
  - Fails with one sentence per image the registry lacks or that could not be asked.
  - An image must name its registry (its first component a host, as Docker reads one - with a C(.) or a port, or
    C(localhost)); a name without one (C(debian), C(user/app:1)) is refused with one sentence, not looked up in
    a public registry.
  - Changes nothing; supports check mode.
version_added: "0.1.0"
author: container-infra
options:
  images:
    description: The image references, each naming its registry (C(host[:port]/repository:tag) or
      C(host[:port]/repository@digest)).
    type: list
    elements: str
    required: true
  certs_d:
    description: The Docker engine's per-registry CA directory.
    type: path
    default: /etc/docker/certs.d
  timeout:
    description: Seconds one request may take.
    type: int
    default: 15
"""

EXAMPLES = r"""
- name: The monitoring images are in the registry
  container_infra_registry_image:
    images:
      - 10.80.0.2:5000/container-infra/node-exporter:latest
"""

RETURN = r"""
images:
  description: Per image, C(image), C(registry), C(repository), C(reference) and C(present).
  type: list
  returned: always
"""

import json  # noqa: E402
import os  # noqa: E402
import ssl  # noqa: E402
import urllib.error  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

ACCEPT = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
])


def parse(image: str) -> tuple[str, str, str]:
    """(registry, repository, tag or digest) of an image reference, as the Docker engine reads it; ValueError (one
    sentence) when its first component is not a registry host, which Docker would send to a public registry.

    The same answers as container_infra.image_reference.split (this module runs on the node, standard library
    only)."""
    name, reference = image, "latest"
    if "@" in image:
        name, reference = image.split("@", 1)
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        # A tag beside a digest is ignored by the engine, which pulls the digest.
        name, tag = name.rsplit(":", 1)
        reference = reference if "@" in image else tag
    first, _, rest = name.partition("/")
    if not rest or not ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        raise ValueError(f"The image {image} names no registry; give it as <registry host>/<repository>:<tag>, "
                         "from the registry the nodes pull from.")
    return first, rest, reference


def context(certs_d: str, registry: str) -> ssl.SSLContext:
    ca = os.path.join(certs_d, registry, "ca.crt")
    return ssl.create_default_context(cafile=ca if os.path.exists(ca) else None)


def _token(challenge: str, repository: str, ctx: ssl.SSLContext, timeout: int) -> str | None:
    """An anonymous pull token from a Bearer challenge (realm, service), None when there is no such challenge."""
    if not challenge.lower().startswith("bearer "):
        return None
    fields = dict(part.split("=", 1) for part in challenge[7:].split(",") if "=" in part)
    fields = {key.strip(): value.strip().strip('"') for key, value in fields.items()}
    if not fields.get("realm", "").startswith("https://"):
        return None
    query = urllib.parse.urlencode({"service": fields.get("service", ""), "scope": f"repository:{repository}:pull"})
    # The realm is an https URL (checked above), not a file: or other scheme.
    with urllib.request.urlopen(f"{fields['realm']}?{query}", context=ctx, timeout=timeout) as answer:  # noqa: S310
        body = json.load(answer)
    return body.get("token") or body.get("access_token")


def present(registry: str, repository: str, reference: str, ctx: ssl.SSLContext, timeout: int) -> bool:
    url = f"https://{registry}/v2/{repository}/manifests/{reference}"
    headers = {"Accept": ACCEPT}
    for _attempt in range(2):
        request = urllib.request.Request(url, method="HEAD", headers=headers)
        try:
            with urllib.request.urlopen(request, context=ctx, timeout=timeout):  # noqa: S310 (https, built above)
                return True
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return False
            token = _token(exc.headers.get("WWW-Authenticate", ""), repository, ctx, timeout) \
                if exc.code == 401 and "Authorization" not in headers else None
            if token is None:
                raise
            headers = {**headers, "Authorization": f"Bearer {token}"}
    return False


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "images": {"type": "list", "elements": "str", "required": True},
            "certs_d": {"type": "path", "default": "/etc/docker/certs.d"},
            "timeout": {"type": "int", "default": 15},
        },
        supports_check_mode=True,
    )
    reports, errors = [], []
    for image in module.params["images"]:
        try:
            registry, repository, reference = parse(image)
        except ValueError as exc:
            errors.append(str(exc))
            reports.append({"image": image, "registry": None, "repository": None, "reference": None,
                            "present": False})
            continue
        report = {"image": image, "registry": registry, "repository": repository, "reference": reference,
                  "present": False}
        try:
            report["present"] = present(registry, repository, reference,
                                        context(module.params["certs_d"], registry), module.params["timeout"])
            if not report["present"]:
                errors.append(f"The image {image} is not in the registry {registry} (no manifest {reference} of "
                              f"{repository}); push it there (the sandbox's: container-infra sandbox images build) "
                              "or name an image the registry has.")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            errors.append(f"The registry {registry} of the image {image} could not be asked ({exc}); check that "
                          "the node reaches it and trusts its certificate, or name another image.")
        reports.append(report)
    if errors:
        module.fail_json(msg=" ".join(errors), images=reports)
    module.exit_json(changed=False, images=reports)


if __name__ == "__main__":
    main()
