#!/usr/bin/env bash
# Debian packages the toolkit and its sandbox need on the machine that runs them. Installs only
# what is missing, so a second run costs nothing.
set -euo pipefail
need=()
command -v make >/dev/null || need+=(make)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
[ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)
command -v ssh >/dev/null || need+=(openssh-client)
command -v ip >/dev/null || need+=(iproute2)
# The sandbox's Docker-backed nodes: a Docker engine, and debootstrap to build their image.
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
# The sandbox's image registry (the nodes pull the images the toolkit's roles run from it).
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
# The monitoring role's tests: promtool checks the rendered configuration and rules, and the node exporter
# (run on 127.0.0.1 by a test) lists the metrics the Grafana dashboard may use.
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-node-exporter >/dev/null || need+=(prometheus-node-exporter)
# The sandbox's package repository of the emulated NVIDIA driver and toolkit: dpkg-deb builds, gpg signs.
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v gpg >/dev/null || need+=(gpg)
command -v gpgconf >/dev/null || need+=(gpgconf)
# The sandbox's storage: a single-node Ceph, its CLI and FUSE client, and Manila's rados binding.
for pkg in ceph-mon ceph-mgr ceph-osd ceph-mds ceph-common ceph-fuse python3-rados; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
echo "installing Debian packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts these daemons on install; the sandbox runs its own, on loopback, with its own data.
for service in mariadb rabbitmq-server docker-registry prometheus prometheus-node-exporter; do $SUDO service "$service" stop >/dev/null 2>&1 || true; done
# rabbitmq-server's install scripts leave an epmd of their own on every address (:4369); the sandbox's
# RabbitMQ runs its own epmd on loopback.
if [[ " ${need[*]} " == *" rabbitmq-server "* ]]; then $SUDO epmd -kill >/dev/null 2>&1 || true; fi
