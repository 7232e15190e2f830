"""os_container_infra_config: what `openstack coe cluster config` does, as an idempotent module
(:mod:`container_infra.credentials` builds and reads the files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from container_infra import magnum as mg
from container_infra.cloud.errors import CloudError, explain
from container_infra.cloud.module import ModuleFailure
from container_infra.credentials import (
    KUBECONFIG,
    PRIVATE_MODE,
    PUBLIC_MODE,
    SWARM_FILES,
    build_kubeconfig,
    cert_still_good,
    current_state,
    docker_env,
    env_script,
    file_modes,
    fingerprint,
    make_dir,
    make_key_and_csr,
    repair_modes,
    write_file,
)

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "cluster": {"type": "str", "required": True, "aliases": ["name"]},
    "dest": {"type": "path", "required": True, "aliases": ["dir"]},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "force": {"type": "bool", "default": False},
    "key_size": {"type": "int", "default": 2048},
    "renew_before_days": {"type": "int", "default": 1},
}


def run(module, cloud) -> dict[str, Any]:
    params = module.params
    dest = Path(params["dest"]).expanduser()
    name = params["cluster"]
    if params["key_size"] < 2048:
        raise ModuleFailure(f"key_size must be 2048 or more, not {params['key_size']}")
    magnum = cloud.magnum()

    if params["state"] == "absent":
        present = [p for p in [dest / KUBECONFIG, *(dest / n for n in SWARM_FILES)] if p.exists()]
        if present and not module.check_mode:
            for path in present:
                path.unlink()
        return {"changed": bool(present), "removed": [str(p) for p in present],
                "diff": {"before": {"files": [str(p) for p in present]}, "after": {"files": []}}}

    brief = mg.find_cluster(magnum, name)
    if brief is None:
        raise CloudError(f"writing the credentials of cluster {name} failed: there is no such cluster in this "
                         "project; check the name (os_container_infra state: query lists it)")
    cluster = mg.get_cluster(magnum, brief["uuid"])
    if not cluster.get("api_address"):
        raise CloudError(
            f"writing the credentials of cluster {name} failed: it has no API address yet (status "
            f"{cluster.get('status')}); wait until it is CREATE_COMPLETE (os_container_infra waits), then run again")
    try:
        template = mg.info(magnum.cluster_templates.get(cluster["cluster_template_id"]))
    except Exception as exc:
        raise explain(exc, "reading", f"the template of cluster {name}") from exc
    coe = template.get("coe") or "kubernetes"
    tls = not template.get("tls_disabled")
    api_address = cluster["api_address"]
    # A Docker API (tcp://...:2376) is a Swarm whatever the COE says: Magnum from 2024.1 accepts only
    # "kubernetes" for new templates, so a swarm-mode driver named by the template's `driver` keeps it.
    swarm = coe in ("swarm", "swarm-mode") or str(api_address).startswith("tcp://")

    ca_pem = None
    if tls:
        try:
            ca_pem = mg.info(magnum.certificates.get(cluster["uuid"])).get("pem", "").encode()
        except Exception as exc:
            raise explain(exc, "reading", f"the CA certificate of cluster {name}") from exc

    have = current_state(dest, swarm, tls)
    up_to_date = (
        not params["force"] and have["complete"] and have["server"] == api_address
        and (not tls or (have["ca"] == ca_pem and have["cert"] is not None
                         and cert_still_good(have["cert"], ca_pem, params["renew_before_days"])))
    )
    files = [str(dest / n) for n in ((SWARM_FILES if tls else ("env.sh",)) if swarm else (KUBECONFIG,))]
    env = docker_env(api_address, dest, tls) if swarm else {"KUBECONFIG": str(dest / KUBECONFIG)}
    result: dict[str, Any] = {
        "changed": not up_to_date,
        "coe": coe,
        "dest": str(dest),
        "files": files,
        "env": env,
        "api_address": api_address,
        "ca_fingerprint": fingerprint(ca_pem),
        "diff": {"before": {"server": have["server"], "ca_fingerprint": fingerprint(have["ca"]),
                            "files_present": have["complete"]},
                 "after": {"server": api_address, "ca_fingerprint": fingerprint(ca_pem), "files_present": True}},
    }
    if swarm:
        result["kubeconfig"] = None
    else:
        result["kubeconfig"] = str(dest / KUBECONFIG)
    # A mode changed since the files were written (a key made world-readable, the directory opened) is
    # put back even when the content is current.
    modes = file_modes(dest, swarm, tls)
    repaired = repair_modes(modes, apply=up_to_date and not module.check_mode)
    if repaired:
        result["changed"] = True
        result["modes_repaired"] = repaired
        result["diff"]["before"]["modes_wrong"] = repaired
    if up_to_date or module.check_mode:
        return result

    cert_pem = key_pem = None
    if tls:
        key_pem, csr_pem = make_key_and_csr(params["key_size"], "admin", None if swarm else "system:masters")
        try:
            signed = magnum.certificates.create(cluster_uuid=cluster["uuid"], csr=csr_pem.decode())
        except Exception as exc:
            raise explain(exc, "signing", f"a client certificate for cluster {name}") from exc
        cert_pem = mg.info(signed).get("pem", "").encode()
    make_dir(dest)
    if swarm:
        if tls:
            write_file(dest / "ca.pem", ca_pem, PUBLIC_MODE)
            write_file(dest / "cert.pem", cert_pem, PUBLIC_MODE)
            write_file(dest / "key.pem", key_pem, PRIVATE_MODE)
        write_file(dest / "env.sh", env_script(env), PUBLIC_MODE)
    else:
        config = build_kubeconfig(cluster["name"], api_address, ca_pem, cert_pem, key_pem)
        write_file(dest / KUBECONFIG, yaml.safe_dump(config, default_flow_style=False).encode(), PRIVATE_MODE)
    return result

