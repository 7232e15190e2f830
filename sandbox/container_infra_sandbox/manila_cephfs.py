"""Manila share driver that answers as the CephFS native driver does, backed by local directories.

``share_driver = container_infra_sandbox.manila_cephfs.CephFSNativeEmulatedDriver``

What a client sees is what ``manila.share.drivers.cephfs.driver.CephFSDriver`` with the native
(``CEPHFS``) protocol helper returns on a real cloud:

* shares of protocol CEPHFS only; any other protocol fails in the driver with the real driver's
  "Share protocol X is not supported." (the share goes to ``error``);
* one export location ``<mon>,<mon>,<mon>:/volumes/_nogroup/<instance id>/<instance id>``
  (``/volumes/<share group id>/...`` inside a share group), ``is_admin_only`` false, no metadata
  (the API therefore shows ``preferred`` false, as it does for CephFS), and the share metadata
  ``__mount_options = fs=<filesystem name>``;
* access rules of type ``cephx`` only, levels rw and ro; the rule becomes active and carries an
  ``access_key`` that looks like a Ceph key and is the same for a cephx user on every share (one
  keyring per emulated cluster); ip/user/cert rules, Manila's own Ceph identity, ``admin`` and a
  cephx user that another project already holds go to ``error`` with the same user message the real
  driver leaves;
* extend and shrink (shrinking below the bytes in use refuses with ShareShrinkingPossibleDataLoss),
  snapshots and shares from snapshots, capabilities with vendor Ceph, storage_protocol CEPHFS and a
  single pool ``cephfs``.

The "cluster" is a directory (option ``sandbox_share_root`` of the backend section): one directory
per share instance, snapshots under ``.snapshots/`` and the cephx keyring plus share sizes in
``.cephfs-sandbox.json``. The driver's own options are read from the backend section; the real
driver's ``cephfs_auth_id``, ``cephfs_filesystem_name`` and ``cephfs_volume_mode`` work as there.
"""

import base64
import contextlib
import json
import os
import shutil
import string
import struct
import threading
import time

from manila import exception
from manila.common import constants
from manila.i18n import _
from manila.message import api as message_api
from manila.message import message_field
from manila.share import driver
from manila.share.drivers.cephfs import driver as cephfs_driver
from oslo_config import cfg
from oslo_log import log
from oslo_utils import units

LOG = log.getLogger(__name__)

sandbox_opts = [
    cfg.StrOpt(
        "sandbox_share_root",
        default="$state_path/shares",
        help="Directory that stands in for the CephFS file system: one sub-directory per share.",
    ),
    cfg.ListOpt(
        "sandbox_mon_addrs",
        default=["mon1:6789", "mon2:6789", "mon3:6789"],
        help="Ceph monitor addresses written into export locations.",
    ),
    cfg.IntOpt(
        "sandbox_total_capacity_gb",
        default=102400,
        min=1,
        help="Size the emulated cluster reports; shares are thin, so only their sizes count.",
    ),
]

CONF = cfg.CONF
# Registered in DEFAULT as well, as the in-tree drivers do, so oslo-config tooling can see them.
CONF.register_opts(sandbox_opts)

CEPHX_ACCESS_TYPE = cephfs_driver.CEPHX_ACCESS_TYPE
STATE_FILE = ".cephfs-sandbox.json"
SNAPSHOT_DIR = ".snapshots"


def new_cephx_key():
    """A key in Ceph's own encoding: type, creation time, length, 16 random bytes, base64."""
    now = time.time()
    header = struct.pack("<HIIH", 1, int(now), int((now % 1) * 1e9), 16)
    return base64.b64encode(header + os.urandom(16)).decode("ascii")


class CephFSNativeEmulatedDriver(driver.ShareDriver):
    """CephFS native protocol, emulated on a local directory (driver_handles_share_servers False)."""

    def __init__(self, *args, **kwargs):
        # False: like the real driver, this back end never handles share servers.
        super().__init__(False, *args, **kwargs)
        self.configuration.append_config_values(cephfs_driver.cephfs_opts)
        self.configuration.append_config_values(sandbox_opts)
        self.backend_name = self.configuration.safe_get("share_backend_name") or "CephFS"
        self.message_api = message_api.API()
        # manila-share runs drivers in green threads; one lock keeps the state file consistent.
        self._lock = threading.Lock()
        self.ipv6_implemented = True

    # --- paths and state ---------------------------------------------------------------------------

    @property
    def _root(self):
        return self.configuration.safe_get("sandbox_share_root")

    @property
    def volname(self):
        return self.configuration.safe_get("cephfs_filesystem_name") or "cephfs"

    def _share_dir(self, share_instance_id):
        return os.path.join(self._root, share_instance_id)

    def _snapshot_dir(self, share_instance_id, snapshot_id):
        return os.path.join(self._root, SNAPSHOT_DIR, share_instance_id, snapshot_id)

    def _load(self):
        try:
            with open(os.path.join(self._root, STATE_FILE)) as f:
                return json.load(f)
        except FileNotFoundError:
            return {"shares": {}, "auth": {}}

    def _save(self, state):
        # Write-then-rename so a crash never leaves a half-written keyring.
        path = os.path.join(self._root, STATE_FILE)
        with open(path + ".tmp", "w") as f:
            json.dump(state, f, indent=1, sort_keys=True)
        os.replace(path + ".tmp", path)

    @contextlib.contextmanager
    def _state(self):
        with self._lock:
            state = self._load()
            yield state
            self._save(state)

    # --- setup and capabilities --------------------------------------------------------------------

    def do_setup(self, context):
        os.makedirs(os.path.join(self._root, SNAPSHOT_DIR), exist_ok=True)

    def check_for_setup_error(self):
        if not os.access(self._root, os.W_OK):
            raise exception.ShareBackendException(msg=_("%s is not writable.") % self._root)

    def get_configured_ip_versions(self):
        return [4]

    def _update_share_stats(self, data=None):
        total = self.configuration.safe_get("sandbox_total_capacity_gb")
        allocated = sum(s["size"] for s in self._load()["shares"].values())
        reserved = self.configuration.safe_get("reserved_share_percentage")
        pool = {
            "pool_name": "cephfs",
            "total_capacity_gb": total,
            "free_capacity_gb": max(total - allocated, 0),
            "allocated_capacity_gb": allocated,
            "qos": "False",
            "reserved_percentage": reserved,
            "reserved_snapshot_percentage": self.configuration.safe_get("reserved_share_from_snapshot_percentage")
            or reserved,
            "reserved_share_extend_percentage": self.configuration.safe_get("reserved_share_extend_percentage")
            or reserved,
            "dedupe": [False],
            "compression": [False],
            "thin_provisioning": [True],
        }
        # The same keys and values as CephFSDriver._update_share_stats.
        super()._update_share_stats(
            {
                "vendor_name": "Ceph",
                "driver_version": "1.0",
                "share_backend_name": self.backend_name,
                "storage_protocol": "CEPHFS",
                "pools": [pool],
                "total_capacity_gb": pool["total_capacity_gb"],
                "free_capacity_gb": pool["free_capacity_gb"],
                "allocated_capacity_gb": allocated,
                "snapshot_support": True,
                "create_share_from_snapshot_support": True,
            }
        )

    def get_backend_info(self, context):
        # A change here makes manila-share call ensure_shares at start-up (new monitors, new name).
        return {
            "cephfs_ensure_all_shares_salt": self.configuration.safe_get("cephfs_ensure_all_shares_salt"),
            "cephfs_filesystem_name": self.volname,
            "sandbox_mon_addrs": ",".join(self.configuration.safe_get("sandbox_mon_addrs")),
        }

    # --- shares ------------------------------------------------------------------------------------

    def _export_locations(self, share):
        group = share.get("share_group_id") or "_nogroup"
        path = f"/volumes/{group}/{share['id']}/{share['id']}"
        mons = ",".join(self.configuration.safe_get("sandbox_mon_addrs"))
        # Exactly NativeProtocolHelper.get_export_locations: no "preferred" in the metadata.
        return {"path": f"{mons}:{path}", "is_admin_only": False, "metadata": {}}

    def get_optional_share_creation_data(self, share, share_server=None):
        return {"metadata": {"__mount_options": f"fs={self.volname}"}}

    def _check_protocol(self, share):
        requested = share["share_proto"].upper()
        if requested != "CEPHFS":
            raise exception.ShareBackendException(msg=_("Share protocol %s is not supported.") % requested)

    def _make_share_dir(self, share, source=None):
        path = self._share_dir(share["id"])
        if source:
            shutil.copytree(source, path, symlinks=True)
        else:
            os.makedirs(path, exist_ok=True)
        os.chmod(path, int(self.configuration.safe_get("cephfs_volume_mode"), 8))
        with self._state() as state:
            state["shares"][share["id"]] = {"size": share["size"], "project_id": share["project_id"]}

    def create_share(self, context, share, share_server=None):
        self._check_protocol(share)
        self._make_share_dir(share)
        return self._export_locations(share)

    def create_share_from_snapshot(self, context, share, snapshot, share_server=None, parent_share=None):
        self._check_protocol(share)
        source = self._snapshot_dir(snapshot["share_instance_id"], snapshot["snapshot_id"])
        if not os.path.isdir(source):
            raise exception.ShareBackendException(msg=_("Snapshot %s does not exist.") % snapshot["id"])
        self._make_share_dir(share, source=source)
        # A copy is synchronous here, so the share is available at once (the real driver answers
        # "creating_from_snapshot" and polls the clone); the manager wants this model-update form.
        return {"status": constants.STATUS_AVAILABLE, "export_locations": [self._export_locations(share)]}

    def delete_share(self, context, share, share_server=None):
        # Idempotent like the real driver: a share already gone is not an error.
        shutil.rmtree(self._share_dir(share["id"]), ignore_errors=True)
        shutil.rmtree(os.path.join(self._root, SNAPSHOT_DIR, share["id"]), ignore_errors=True)
        with self._state() as state:
            state["shares"].pop(share["id"], None)

    def ensure_shares(self, context, shares):
        updates = {}
        for share in shares:
            if os.path.isdir(self._share_dir(share["id"])):
                updates[share["id"]] = {
                    "export_locations": self._export_locations(share),
                    "metadata": self.get_optional_share_creation_data(share)["metadata"],
                    # Keys live in the keyring; the real driver does not re-apply either.
                    "reapply_access_rules": False,
                }
            else:
                LOG.error("Share instance %s has no directory in %s", share["id"], self._root)
                updates[share["id"]] = {"status": constants.STATUS_ERROR}
        return updates

    def _used_bytes(self, share_id):
        total = 0
        for dirpath, _dirs, files in os.walk(self._share_dir(share_id)):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(dirpath, name)).st_size
        return total

    def _resize(self, share, new_size):
        with self._state() as state:
            state["shares"].setdefault(share["id"], {"project_id": share["project_id"]})["size"] = new_size

    def extend_share(self, share, new_size, share_server=None):
        self._resize(share, new_size)

    def shrink_share(self, share, new_size, share_server=None):
        # Ceph refuses a quota below the bytes already stored ("would be lesser than"), which the
        # real driver turns into this exception; Manila then keeps the share at its old size.
        if self._used_bytes(share["id"]) > new_size * units.Gi:
            raise exception.ShareShrinkingPossibleDataLoss(share_id=share["id"])
        self._resize(share, new_size)

    # --- snapshots ---------------------------------------------------------------------------------

    def create_snapshot(self, context, snapshot, share_server=None):
        target = self._snapshot_dir(snapshot["share_instance_id"], snapshot["snapshot_id"])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copytree(self._share_dir(snapshot["share_instance_id"]), target, symlinks=True)
        return {"provider_location": snapshot["snapshot_id"]}

    def delete_snapshot(self, context, snapshot, share_server=None):
        shutil.rmtree(self._snapshot_dir(snapshot["share_instance_id"], snapshot["snapshot_id"]), ignore_errors=True)

    # --- access ------------------------------------------------------------------------------------

    @staticmethod
    def _held_elsewhere(state, project_id):
        """cephx IDs that currently have access to a share of another project."""
        return {
            auth_id
            for record in state["shares"].values()
            if record.get("project_id") != project_id
            for auth_id in record.get("access", {})
        }

    def _refusal(self, share, rule, holders):
        """Why Ceph or the real driver would refuse this rule, as (message detail, reason), or None."""
        if rule["access_type"] != CEPHX_ACCESS_TYPE:
            return message_field.Detail.UNSUPPORTED_CLIENT_ACCESS, f"access type {rule['access_type']}"
        if rule.get("access_level") not in (constants.ACCESS_LEVEL_RW, constants.ACCESS_LEVEL_RO):
            return message_field.Detail.UNSUPPORTED_CLIENT_ACCESS, f"access level {rule.get('access_level')}"
        auth_id = rule["access_to"] or ""
        # The API checks these from microversion 2.13 on; repeated because Ceph refuses them too.
        if not auth_id or "." in auth_id or not set(auth_id) <= set(string.printable):
            return message_field.Detail.FORBIDDEN_CLIENT_ACCESS, f"invalid Ceph ID {auth_id!r}"
        if auth_id == self.configuration.safe_get("cephfs_auth_id"):
            return message_field.Detail.FORBIDDEN_CLIENT_ACCESS, (
                f"Ceph authentication ID {auth_id} must be different than the one the Manila service uses."
            )
        if auth_id == cephfs_driver.CEPH_DEFAULT_AUTH_ID:
            # Ceph's volumes module: the ID exists and was not created by it.
            return message_field.Detail.FORBIDDEN_CLIENT_ACCESS, (
                f"auth ID: {auth_id} exists and not created by mgr plugin. Not allowed to modify"
            )
        if auth_id in holders:
            # Ceph's volumes module ties an auth ID to the tenant that first authorized it.
            return message_field.Detail.FORBIDDEN_CLIENT_ACCESS, f"auth ID: {auth_id} is already in use"
        return None

    def update_access(self, context, share, access_rules, add_rules, delete_rules, update_rules, share_server=None):
        updates = {}
        with self._state() as state:
            keyring = state["auth"]
            grants = (
                state["shares"]
                .setdefault(share["id"], {"size": share["size"], "project_id": share["project_id"]})
                .setdefault("access", {})
            )
            if not (add_rules or delete_rules):
                # Recovery mode, as in the real helper: the full list is the truth.
                add_rules = access_rules
                wanted = {r["access_to"] for r in access_rules}
                delete_rules = [{"access_to": a, "access_type": CEPHX_ACCESS_TYPE} for a in grants if a not in wanted]
            for rule in delete_rules:
                if rule["access_type"] == CEPHX_ACCESS_TYPE:
                    grants.pop(rule["access_to"], None)
            held_elsewhere = self._held_elsewhere(state, share["project_id"])
            for rule in add_rules:
                refusal = self._refusal(share, rule, held_elsewhere)
                if refusal:
                    detail, reason = refusal
                    self.message_api.create(
                        context,
                        message_field.Action.UPDATE_ACCESS_RULES,
                        share["project_id"],
                        resource_type=message_field.Resource.SHARE,
                        resource_id=share["share_id"],
                        detail=detail,
                    )
                    LOG.error(
                        "Failed to provide %(level)s access to %(to)s (Rule ID: %(id)s): %(reason)s. "
                        "Setting rule to 'error' state.",
                        {
                            "level": rule["access_level"],
                            "to": rule["access_to"],
                            "id": rule["access_id"],
                            "reason": reason,
                        },
                    )
                    updates[rule["access_id"]] = {"state": constants.STATUS_ERROR}
                    continue
                entry = keyring.setdefault(
                    rule["access_to"], {"key": new_cephx_key(), "project_id": share["project_id"]}
                )
                grants[rule["access_to"]] = rule["access_level"]
                updates[rule["access_id"]] = {"access_key": entry["key"]}
            for rule in update_rules or []:
                if rule["access_to"] in grants:
                    grants[rule["access_to"]] = rule["access_level"]
        return updates
