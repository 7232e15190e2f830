"""OpenStack's ids: the one UUID pattern the toolkit uses to tell an id from a name."""

from __future__ import annotations

import re

#: A UUID as OpenStack writes it; Magnum also takes one without dashes, so the dashes are optional.
UUID_TEXT = r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}"
UUID = re.compile(rf"^{UUID_TEXT}$", re.IGNORECASE)


def is_uuid(text: str | None) -> bool:
    """Whether ``text`` is an id rather than a name."""
    return bool(text) and bool(UUID.match(str(text)))
