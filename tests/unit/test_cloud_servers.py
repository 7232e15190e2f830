"""The test-server helper's listing: a page that openstacksdk takes for an endless pagination loop (Nova
moving servers from build requests into their cell) is listed again; other errors are not hidden."""

from __future__ import annotations

from types import SimpleNamespace

import cloud_servers as servers
import pytest
from openstack.exceptions import SDKException


class FlakyCompute:
    def __init__(self, failures: list[Exception]):
        self.failures = failures
        self.calls = []

    def servers(self, **query):
        self.calls.append(query)
        if self.failures:
            raise self.failures.pop(0)
        return iter([SimpleNamespace(name="t-1"), SimpleNamespace(name="t-10"), SimpleNamespace(name="other-t-1")])


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(servers.time, "sleep", lambda seconds: None)


def test_a_pagination_loop_is_listed_again_and_names_are_matched_by_prefix():
    compute = FlakyCompute([SDKException("Endless pagination loop detected, aborting")] * 2)
    listed = servers.servers_named(SimpleNamespace(compute=compute), "t-1")
    assert [s.name for s in listed] == ["t-1", "t-10"]
    assert len(compute.calls) == 3
    assert compute.calls[0] == {"name": "^t-1", "limit": servers.PAGE}


def test_other_errors_and_a_lasting_loop_are_raised():
    compute = FlakyCompute([SDKException("Quota exceeded")])
    with pytest.raises(SDKException, match="Quota"):
        servers.servers_named(SimpleNamespace(compute=compute), "t")
    assert len(compute.calls) == 1
    compute = FlakyCompute([SDKException("Endless pagination loop detected")] * 5)
    with pytest.raises(SDKException, match="pagination"):
        servers.servers_named(SimpleNamespace(compute=compute), "t", attempts=5)
    assert len(compute.calls) == 5


def test_no_attempt_is_a_bad_argument_not_an_empty_listing():
    compute = FlakyCompute([])
    with pytest.raises(ValueError, match="attempts must be 1 or more, not 0"):
        servers.servers_named(SimpleNamespace(compute=compute), "t", attempts=0)
    assert compute.calls == []
