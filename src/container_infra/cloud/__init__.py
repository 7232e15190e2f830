"""The shared base of the toolkit: one authenticated session for openstacksdk and the service clients
(:mod:`.connection`), one place turning client exceptions into a sentence (:mod:`.errors`), the one
waiter (:mod:`.waiter`), bulk REST calls to Nova and Neutron (:mod:`.rest`), the one UUID pattern
(:mod:`.ids`) and the glue that keeps each Ansible module thin (:mod:`.module`)."""

from container_infra.cloud.connection import AUTH_ARGUMENT_SPEC, Cloud
from container_infra.cloud.errors import CloudError, explain
from container_infra.cloud.waiter import wait_for

__all__ = ["AUTH_ARGUMENT_SPEC", "Cloud", "CloudError", "explain", "wait_for"]
