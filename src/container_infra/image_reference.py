"""Image references as the Docker engine reads them, less its one default: the registry must be named.

Docker reads the first component of a name as the registry's host when the name has a '/' after it and the
component has a '.' or a ':' (a port), is ``localhost``, or has an upper-case letter (distribution's reference
grammar, ``splitDockerDomain``); any other name it sends to a public registry of its own choosing. The toolkit
refuses such a name instead (one sentence), so every image comes from the registry or mirror the site names:
``container_infra_image_registry`` (``host[:port][/path]``), under which the roles' default images are built
(``<registry>/<repository>:<tag>``).

The node module ``container_infra_registry_image`` carries its own copy of ``split`` (it runs on the node with the
standard library only); the unit tests hold the two to the same answers.
"""

from __future__ import annotations

import re

# The variable naming the site's registry or mirror, shared by the roles that run images.
REGISTRY_VARIABLE = "container_infra_image_registry"

# distribution/reference: a domain is a host (a DNS name, an IPv4 address or a bracketed IPv6 one) with an
# optional port; a path component is lower-case letters and digits with single separators.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REGISTRY = re.compile(rf"^(?P<host>{_HOST})(?::[0-9]+)?(?:/{_PATH_COMPONENT})*$")


class ImageReferenceError(ValueError):
    """An image reference the toolkit does not pull; the message is one sentence saying what to give."""


def is_registry_host(component: str) -> bool:
    """Whether Docker reads a name's first component as a registry host (rather than a public registry's path)."""
    return "." in component or ":" in component or component == "localhost" or component != component.lower()


def no_registry(image: str, what: str = "The image") -> str:
    return (f"{what} {image} names no registry; give it as <registry host>/<repository>:<tag>, from the registry "
            "the nodes pull from.")


def split(image: str) -> tuple[str, str, str]:
    """``registry``, ``repository`` and tag or digest (``latest`` when neither is given) of an image reference;
    ImageReferenceError when its first component is not a registry host."""
    name, reference = image, "latest"
    if "@" in image:
        name, reference = image.split("@", 1)
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        # A tag beside a digest is ignored by the engine, which pulls the digest.
        name, tag = name.rsplit(":", 1)
        reference = reference if "@" in image else tag
    first, _, rest = name.partition("/")
    if not rest or not is_registry_host(first):
        raise ImageReferenceError(no_registry(image))
    return first, rest, reference


def names_registry(image: str) -> bool:
    try:
        split(image)
    except ImageReferenceError:
        return False
    return True


def registry_error(registry: str, variable: str = REGISTRY_VARIABLE) -> str | None:
    """None when ``registry`` is a registry or mirror as ``host[:port][/path]`` Docker reads as one, else the
    sentence saying what to give."""
    match = REGISTRY.match(registry.rstrip("/")) if isinstance(registry, str) else None
    if match and is_registry_host(registry.split("/", 1)[0]):
        return None
    return (f"{variable} {registry!r} is not a registry or mirror as host[:port][/path] that Docker reads as one (no "
            "scheme, a host with a dot or a port, or localhost); give one such as registry.example.org:5000/mirror.")


def registry_missing(*image_variables: str) -> str:
    """The sentence for images that are needed when neither their variables nor the registry is set."""
    names = " and ".join([", ".join(image_variables[:-1]), image_variables[-1]] if len(image_variables) > 1
                         else image_variables)
    what = "a full image reference" if len(image_variables) == 1 else "full image references"
    return (f"{REGISTRY_VARIABLE} is not set: name the registry or mirror the nodes pull images from "
            f"(host[:port][/path]), or set {names} to {what}.")


def under(registry: str, repository_tag: str) -> str:
    """``<registry>/<repository>:<tag>``, or '' when no registry is named."""
    registry = (registry or "").strip().rstrip("/")
    return f"{registry}/{repository_tag}" if registry else ""
