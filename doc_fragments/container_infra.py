"""Documentation shared by the toolkit's modules (``extends_documentation_fragment``).

``container_infra``: the connection options, ``container_infra.wait``: the waiting options of the
modules that wait, ``container_infra.no_wait``: the same options where a module accepts but does not
use them. Every module takes all of them (``container_infra.cloud.connection.AUTH_ARGUMENT_SPEC``), so
one ``module_defaults`` group can set them once; tests/unit/test_os_container_infra_docs.py keeps these
in step with that spec. A module that waits for something particular overrides only the description
of ``wait`` in its own DOCUMENTATION.
"""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  cloud:
    description:
      - Name of a cloud in C(clouds.yaml), or a dict holding a whole cloud definition.
      - Without I(cloud) and I(auth), the C(OS_*) environment variables are used, as openstacksdk does.
    type: raw
  auth:
    description:
      - Authentication parameters for the auth plugin (C(auth_url), C(username), C(password),
        C(project_name), C(user_domain_name), C(application_credential_id), ...). Ansible hides it from logs.
    type: dict
  auth_type:
    description:
      - The keystoneauth plugin, for example C(password), C(v3applicationcredential) or C(v3token).
    type: str
  region_name:
    description: The region whose endpoints to use.
    type: str
  interface:
    description: Which kind of endpoint in the service catalog to use.
    type: str
    choices: [public, internal, admin]
    default: public
    aliases: [endpoint_type]
  validate_certs:
    description: Whether to verify the cloud's TLS certificates (by default the cloud's own setting).
    type: bool
    aliases: [verify]
  ca_cert:
    description: A CA bundle to verify the cloud's TLS certificates with.
    type: str
    aliases: [cacert]
  client_cert:
    description: A client certificate to present over TLS.
    type: str
    aliases: [cert]
  client_key:
    description: The key of I(client_cert). Ansible hides it from logs.
    type: str
    aliases: [key]
  api_timeout:
    description:
      - Seconds to wait for one API answer before failing (a request, not the whole run).
      - When left out, the clouds.yaml entry's C(api_timeout), else 120, so that a stalled endpoint fails
        the task instead of hanging the run. At least 1.
    type: int
"""

    WAIT = r"""
options:
  wait:
    description: Wait until what the module changed has finished.
    type: bool
    default: true
  timeout:
    description: Seconds the whole run may wait; at least 1 (C(wait=false) not to wait).
    type: int
    default: 1800
  poll_interval:
    description: The longest pause, in seconds, between two status polls (polls back off up to it).
    type: float
    default: 5.0
"""

    NO_WAIT = r"""
options:
  wait:
    description: Not used (this module has nothing to wait for); accepted like the other modules' options.
    type: bool
    default: true
  timeout:
    description: Not used (this module has nothing to wait for); accepted like the other modules' options.
    type: int
    default: 1800
  poll_interval:
    description: Not used (this module has nothing to wait for); accepted like the other modules' options.
    type: float
    default: 5.0
"""
