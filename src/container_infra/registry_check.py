"""Whether a registry holds an image: ``HEAD /v2/<repository>/manifests/<tag or digest>`` from the control
host, before a job that runs it is submitted (a missing image is one sentence, not tasks that never start).

A registry that asks for a token (``WWW-Authenticate: Bearer``) gets an anonymous one first, as Docker does.
The registry's CA is the file given (the sandbox's: ``container_infra.sandbox.registry.ca_path``), else the
system's trust store. A reference must name its registry (``container_infra.image_reference``): a bare ``debian``
is refused, not looked up in a public registry.
"""

from __future__ import annotations

import re

import requests

from container_infra import image_reference

MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])


def split_reference(image: str) -> tuple[str, str, str]:
    """``registry``, ``repository`` and tag or digest of an image reference (Docker's rules: the first
    component is a registry when it has a '.' or ':' or is localhost); a name without a registry is not read as
    a public registry's but refused: ImageReferenceError (a ValueError), its message one sentence."""
    return image_reference.split(image)


def _bearer(challenge: str, repository: str, verify, timeout: float) -> str | None:
    fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    if "realm" not in fields:
        return None
    params = {"service": fields.get("service", ""), "scope": fields.get("scope") or f"repository:{repository}:pull"}
    answer = requests.get(fields["realm"], params=params, verify=verify, timeout=timeout)
    answer.raise_for_status()
    body = answer.json()
    return body.get("token") or body.get("access_token")


def image_error(image: str, ca_file: str | None = None, timeout: float = 15) -> str | None:
    """None when the registry has the image, else one sentence saying what is missing or unreachable (or that
    the reference names no registry)."""
    try:
        registry, repository, reference = split_reference(image)
    except image_reference.ImageReferenceError as error:
        return str(error)
    url = f"https://{registry}/v2/{repository}/manifests/{reference}"
    verify = ca_file or True
    headers = {"Accept": MANIFEST_TYPES}
    try:
        answer = requests.head(url, headers=headers, verify=verify, timeout=timeout)
        if answer.status_code == 401 and answer.headers.get("WWW-Authenticate", "").startswith("Bearer"):
            token = _bearer(answer.headers["WWW-Authenticate"], repository, verify, timeout)
            if token:
                answer = requests.head(url, headers={**headers, "Authorization": f"Bearer {token}"},
                                       verify=verify, timeout=timeout)
    except requests.RequestException as error:
        return (f"The registry {registry} could not be asked for the image {image} ({type(error).__name__}); check "
                "that it is reachable from here and that --registry-ca names its CA.")
    if answer.status_code == 200:
        return None
    if answer.status_code in (404, 401, 403):
        return (f"The image {image} is not in the registry {registry} (HTTP {answer.status_code} for "
                f"{repository}:{reference}); push it there or name an image it has.")
    return (f"The registry {registry} answered HTTP {answer.status_code} for the image {image}; check the registry "
            "and try again.")
