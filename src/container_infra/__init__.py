"""container-infra: OpenStack bare metal to container clusters, with Ansible."""
