"""The Rundeck project (rundeck/): job files valid and complete, the plugin's command built from them.

Generic over the job files and the playbooks: a new playbook needs a job, and its job is checked the
same way (schema, playbook, options, extra-var keys against the argument_specs of the roles it runs).
No Rundeck server runs here; ``ansible-playbook --syntax-check`` / ``--list-hosts`` check that the
commands the jobs make are accepted, without a cloud.
"""

from __future__ import annotations

import copy
import os
import re
import stat
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from container_infra import rundeck

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin"
JOB_FILES = sorted((REPO / "rundeck" / "jobs").glob("*.yaml"))
JOBS = rundeck.project_jobs()
INSTALL_DIR = "/opt/container-infra"  # where rundeck/project.properties expects the checkout
SANDBOX_SPEC = REPO / "inventories" / "sandbox" / "group_vars" / "all" / "clusters.yml"
# Ansible's own variable for the nodes' sudo password: allowed in the extra vars of playbooks whose roles
# use become (it is Ansible's, so no argument_specs declares it).
BECOME_VARS = {"ansible_become_password"}
SECRET_KEY = "keys/project/container-infra/become-password"

sys.path.insert(0, str(REPO / "tests" / "integration"))
import rundeck_runs  # noqa: E402  (the integration test's command builder, checked here without a cloud)


def repo_globals(**overrides: str) -> dict[str, str]:
    return {"container_infra_dir": str(REPO), "container_infra_bin": str(BIN),
            "container_infra_inventory": str(REPO / "inventories" / "sandbox" / "localhost.yml"),
            "container_infra_nodes": str(REPO / "inventories" / "sandbox" / "sandbox.container_infra.yml"),
            **overrides}


def playbook_of(job: rundeck.Job) -> Path:
    return Path(rundeck.expand(job.step.configuration["ansible-playbook"], {"globals": repo_globals()}))


# --- what a playbook runs and reads ----------------------------------------------------------------------


def _plays(playbook: Path) -> list[tuple[Path, dict]]:
    """The plays of a playbook, imported playbooks expanded, each with the file it is in."""
    out = []
    for play in yaml.safe_load(playbook.read_text()) or []:
        imported = play.get("ansible.builtin.import_playbook") or play.get("import_playbook")
        if imported:
            out += _plays(playbook.parent / imported)
        else:
            out.append((playbook, play))
    return out


def _role_names(tasks) -> set[str]:
    """Roles included or imported by a list of tasks (blocks followed)."""
    names: set[str] = set()
    for task in tasks or []:
        for key in ("block", "rescue", "always"):
            names |= _role_names(task.get(key))
        for key in ("ansible.builtin.include_role", "ansible.builtin.import_role", "include_role", "import_role"):
            if key in task:
                names.add(task[key]["name"])
    return names


def roles_run(playbook: Path) -> set[str]:
    """Every role a playbook runs: its plays' roles and included roles, and the roles those include."""
    todo: set[str] = set()
    for _, play in _plays(playbook):
        todo |= {r if isinstance(r, str) else r.get("role", r.get("name")) for r in play.get("roles", [])}
        for key in ("pre_tasks", "tasks", "post_tasks", "handlers"):
            todo |= _role_names(play.get(key))
    seen: set[str] = set()
    while todo:
        role = todo.pop()
        seen.add(role)
        for tasks_file in (REPO / "roles" / role / "tasks").glob("*.yml"):
            todo |= _role_names(yaml.safe_load(tasks_file.read_text())) - seen
        meta = yaml.safe_load((REPO / "roles" / role / "meta" / "main.yml").read_text()) or {}
        for dep in meta.get("dependencies") or []:
            name = dep if isinstance(dep, str) else dep.get("role", dep.get("name"))
            if name not in seen:
                todo.add(name)
    return seen


def role_arguments(roles: set[str]) -> dict[str, dict]:
    """The variables the roles' argument_specs declare (every entry point), with their specs."""
    out: dict[str, dict] = {}
    for role in sorted(roles):
        specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
        for entry in specs["argument_specs"].values():
            out.update(entry.get("options") or {})
    return out


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _defined(node) -> set[str]:
    """Variables a playbook sets itself: keys of its vars blocks, loop variables."""
    names: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("vars"), dict):
            names |= set(node["vars"])
        if isinstance(node.get("loop_control"), dict) and "loop_var" in node["loop_control"]:
            names.add(node["loop_control"]["loop_var"])
        for value in node.values():
            names |= _defined(value)
    elif isinstance(node, list):
        for value in node:
            names |= _defined(value)
    return names


def playbook_inputs(playbook: Path) -> set[str]:
    """The toolkit's variables (container_infra_*) a playbook's expressions read without setting them:
    its own inputs, such as container_infra_only or container_infra_resize_cluster."""
    files = {path for path, _ in _plays(playbook)}
    inputs: set[str] = set()
    for path in files:
        document = yaml.safe_load(path.read_text())
        expressions = []
        for text in _strings(document):
            expressions += re.findall(r"\{\{(.*?)\}\}", text, flags=re.S)
        for node in _walk(document):
            for key in ("when", "that", "failed_when", "changed_when"):
                value = node.get(key)
                expressions += [value] if isinstance(value, str) else list(value or [])
        read = {name for expression in expressions for name in re.findall(r"\bcontainer_infra_\w+", expression)}
        inputs |= read - _defined(document)
    return inputs


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def uses_become(roles: set[str]) -> bool:
    return any(re.search(r"^\s*become:\s*true", f.read_text(), re.M)
               for role in roles for f in (REPO / "roles" / role / "tasks").glob("*.yml"))


def extra_var_keys(job: rundeck.Job) -> dict[str, str | None]:
    """The extra-var keys a job passes, each with the option whose value it gets whole (or None)."""
    template = yaml.safe_load(job.step.configuration.get("ansible-extra-vars", "")) or {}
    out: dict[str, str | None] = {}
    for key, value in template.items():
        refs = re.findall(r"\$\{option\.([^}]+)\}", yaml.safe_dump(value))
        out[key] = refs[0] if len(refs) == 1 else None
    return out


def undeclared_keys(job: rundeck.Job) -> set[str]:
    """Extra-var keys that neither a role the playbook runs declares, nor the playbook reads itself."""
    playbook = playbook_of(job)
    roles = roles_run(playbook)
    declared = set(role_arguments(roles)) | playbook_inputs(playbook)
    if uses_become(roles):
        declared |= BECOME_VARS
    return set(extra_var_keys(job)) - declared


def runs_on_localhost(playbook: Path) -> bool:
    """Whether a play of the playbook runs on localhost (where a --limit of Rundeck's node names drops it)."""
    return any(play.get("hosts") == "localhost" for _, play in _plays(playbook))


# --- the job files --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", JOB_FILES, ids=lambda p: p.name)
def test_job_file_is_valid_job_yaml_and_loads_into_the_model(path):
    document = yaml.safe_load(path.read_text())
    assert rundeck.schema_errors(document) == []
    (job,) = rundeck.load_jobs(path)
    assert job.group.startswith("container-infra/") and job.uuid
    assert job.step.configuration["ansible-playbook"].endswith(f"/playbooks/{path.stem}.yml"), \
        "a job file is named after its playbook"
    assert job.data["defaultTab"] == "output" and job.loglevel == "INFO", \
        "the log (progress lines) shows first, and DEBUG would add -vvv"


def test_jobs_are_unique_by_uuid_and_by_group_and_name():
    assert len({j.uuid for j in JOBS}) == len(JOBS)
    assert len({j.path for j in JOBS}) == len(JOBS)


def test_every_playbook_a_job_names_exists_and_every_playbook_has_a_job():
    named = {playbook_of(job) for job in JOBS}
    assert all(p.is_file() for p in named), named
    missing = sorted(p.name for p in (REPO / "playbooks").glob("*.yml") if p not in named)
    assert missing == [], f"playbooks without a Rundeck job (add rundeck/jobs/<playbook>.yaml): {missing}"


@pytest.mark.parametrize("job", JOBS, ids=lambda j: j.source.stem)
def test_every_option_is_mapped_into_the_extra_vars_and_every_reference_is_defined(job):
    extra_vars = job.step.configuration.get("ansible-extra-vars", "")
    in_extra_vars = set(re.findall(r"\$\{option\.([^}]+)\}", extra_vars))
    assert in_extra_vars == {o.name for o in job.options}
    refs = job.step.references
    assert {n for s, n in refs if s == "option"} <= {o.name for o in job.options}
    assert {n for s, n in refs if s == "globals"} <= set(rundeck.project_globals())
    assert {s for s, _ in refs} <= {"option", "globals"}


@pytest.mark.parametrize("job", JOBS, ids=lambda j: j.source.stem)
def test_every_extra_var_key_is_declared_by_a_role_the_playbook_runs_or_read_by_the_playbook(job):
    assert undeclared_keys(job) == set()


def test_a_renamed_role_variable_breaks_the_declared_key_check():
    (resize,) = [j for j in JOBS if j.source.stem == "cluster_resize"]
    data = copy.deepcopy(dict(resize.data))
    step = data["sequence"]["commands"][0]["configuration"]
    step["ansible-extra-vars"] = step["ansible-extra-vars"].replace(
        "container_infra_cluster_poll_interval:", "container_infra_cluster_poll_seconds:")
    assert undeclared_keys(rundeck.parse_job(data, resize.source)) == {"container_infra_cluster_poll_seconds"}


def test_the_declared_key_check_sees_roles_that_roles_include_and_the_playbooks_own_inputs():
    create = REPO / "playbooks" / "cluster_create.yml"
    assert {"container_infra_cluster", "container_infra_swarm_stack"} <= roles_run(create)
    assert {"container_infra_only", "container_infra_clusters"} <= playbook_inputs(create)
    assert "container_infra_selected" not in playbook_inputs(create)
    resize = REPO / "playbooks" / "cluster_resize.yml"
    assert {"container_infra_resize_cluster", "container_infra_resize_node_count"} <= playbook_inputs(resize)
    assert "container_infra_nic" in roles_run(resize)


@pytest.mark.parametrize("job", JOBS, ids=lambda j: j.source.stem)
def test_options_offer_the_specs_choices_and_validate_counts(job):
    sandbox_names = [c["name"] for c in yaml.safe_load(SANDBOX_SPEC.read_text())["container_infra_clusters"]]
    arguments = role_arguments(roles_run(playbook_of(job)))
    mapped = {option: key for key, option in extra_var_keys(job).items() if option}
    for option in job.options:
        key = mapped[option.name]
        if option.name == "cluster":
            assert option.enforced and option.required and list(option.values) == sandbox_names
        choices = arguments.get(key, {}).get("choices")
        if choices:
            assert option.enforced and set(option.values) <= set(choices), (option, choices)
        if arguments.get(key, {}).get("type") == "int" or option.name.endswith(("_count", "_interval")):
            assert option.regex, option
            for bad in ("", "x", "-1", "1 2", "3\nfoo: bar", "1.5"):
                assert not re.fullmatch(option.regex, bad), (option.name, bad)
            assert re.fullmatch(option.regex, "3")


@pytest.mark.parametrize("job", JOBS, ids=lambda j: j.source.stem)
def test_secure_options_come_from_key_storage_and_reach_the_playbook_only_in_the_extra_vars(job):
    config = job.step.configuration
    for option in (o for o in job.options if o.secure):
        assert option.value_exposed and option.required and option.storage_path == SECRET_KEY
        assert option.default is None, "a secret's default would be in the job definition"
        reference = f"${{option.{option.name}}}"
        assert [k for k, v in config.items() if reference in v] == ["ansible-extra-vars"]
        # A block scalar: the value arrives verbatim, whatever YAML characters it holds.
        assert re.search(r":\s*\|-\n\s+" + re.escape(reference) + r"\s*$", config["ansible-extra-vars"], re.M)


@pytest.mark.parametrize("job", JOBS, ids=lambda j: j.source.stem)
def test_limit_is_disabled_for_plays_on_localhost_and_is_the_selected_nodes_for_node_jobs(job):
    config = job.step.configuration
    if runs_on_localhost(playbook_of(job)):
        assert config["ansible-disable-limit"] == "true" and not job.node_filter
    else:
        assert config["ansible-disable-limit"] == "false" and job.node_filter
        assert config["ansible-inventory"] == "${globals.container_infra_nodes}"


# --- the command the plugin builds ----------------------------------------------------------------------


def sample_options(job: rundeck.Job, secret: str) -> dict[str, str]:
    samples = {"cluster": "k8s-sandbox", "node_count": "3", "become_password": secret}
    return {o.name: samples.get(o.name, o.default or (o.values[0] if o.values else "1")) for o in job.options}


def test_resize_command_is_exactly_the_plugins():
    (job,) = rundeck.load_jobs(REPO / "rundeck" / "jobs" / "cluster_resize.yaml")
    secret = f"s3cr3t {uuid.uuid4().hex} 'with: \"yaml\" # chars"
    run = rundeck.playbook_run(job, {"cluster": "swarm-sandbox", "node_count": "4"},
                               globals_=rundeck.project_globals(), nodes=["rundeck-server"],
                               key_storage={SECRET_KEY: secret}, environ={"PATH": "/usr/bin"},
                               job_context={"execid": "42", "username": "alice"})
    assert run.argv == ["/opt/container-infra/.venv/bin/ansible-playbook",
                        "/opt/container-infra/playbooks/cluster_resize.yml",
                        "-i", "/opt/container-infra/inventories/sandbox/localhost.yml",
                        "--extra-vars=@{extra-vars-file}"]
    assert run.cwd == "/opt/container-infra"
    assert run.env == {
        "PATH": "/usr/bin", "ANSIBLE_CONFIG": "/opt/container-infra/ansible.cfg",
        "cluster": "swarm-sandbox", "node_count": "4", "poll_interval": "30",
        "RD_JOB_NAME": "Resize a cluster", "RD_JOB_GROUP": "container-infra/clusters",
        "RD_JOB_PROJECT": "container-infra", "RD_JOB_LOGLEVEL": "INFO", "RD_JOB_EXECID": "42",
        "RD_JOB_USERNAME": "alice"}
    assert yaml.safe_load(run.extra_vars) == {
        "container_infra_resize_cluster": "swarm-sandbox", "container_infra_resize_node_count": 4,
        "container_infra_cluster_poll_interval": 30, "ansible_become_password": secret}
    with run:
        path = run.extra_vars_file
        assert run.argv[-1] == f"--extra-vars=@{path}"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert yaml.safe_load(path.read_text())["ansible_become_password"] == secret
    assert not path.exists() and not path.parent.exists()


def test_node_job_limits_to_the_selected_nodes_and_debug_adds_vvv():
    (job,) = rundeck.load_jobs(REPO / "rundeck" / "jobs" / "cluster_configure.yaml")
    run = rundeck.playbook_run(job, {}, globals_=rundeck.project_globals(), nodes=["k8s-a-master-0", "k8s-a-node-1"],
                               key_storage={SECRET_KEY: "x"}, environ={})
    assert run.argv[2:6] == ["-i", "/opt/container-infra/inventories/sandbox/sandbox.container_infra.yml",
                             "-l", "k8s-a-master-0,k8s-a-node-1"]
    data = copy.deepcopy(dict(job.data))
    data["loglevel"] = "DEBUG"
    debug = rundeck.playbook_run(rundeck.parse_job(data), {}, globals_=rundeck.project_globals(),
                                 key_storage={SECRET_KEY: "x"}, environ={})
    assert "-vvv" in debug.argv and "-l" not in debug.argv


@pytest.mark.parametrize("job", JOBS, ids=lambda j: j.source.stem)
def test_a_secure_value_is_never_in_the_command_line_the_environment_or_the_output(job, tmp_path):
    secret = f"rd-secret-{uuid.uuid4().hex}"
    nodes_inventory = tmp_path / "nodes.yml"
    nodes_inventory.write_text(yaml.safe_dump({"all": {"children": {
        "masters": {"hosts": {"n-master-0": {}}}, "workers": {"hosts": {"n-node-0": {}, "n-node-1": {}}},
        "gpu": {"hosts": {"n-node-1": {}}}}}}))
    node_job = not runs_on_localhost(playbook_of(job))
    run = rundeck.playbook_run(job, sample_options(job, secret),
                               globals_=repo_globals(container_infra_nodes=str(nodes_inventory)),
                               nodes=["n-node-1"] if node_job else ["rundeck-server"], tmp_root=str(tmp_path))
    with run:
        for extra in (["--syntax-check"], ["--list-hosts"]):
            done = run.run(timeout=120, extra_args=extra)
            assert done.returncode == 0, run.mask(done.stdout)
            for text in (*run.argv, *run.env.keys(), *run.env.values(), done.stdout, run.describe()):
                assert secret not in text
        hosts = set(re.findall(r"^\s+(n-\S+)$", done.stdout, re.M))
        # --list-hosts: the limit is Rundeck's selection on node jobs; localhost plays still run.
        assert hosts == ({"n-node-1"} if node_job else set())
        if not node_job:
            assert "localhost" in done.stdout
    if any(o.secure for o in job.options):
        assert secret in run.extra_vars and run.secrets == (secret,)


@pytest.mark.parametrize("stem, options", [
    ("cluster_create", {"cluster": "rd-unit", "poll_interval": "3"}),
    ("cluster_resize", {"cluster": "rd-unit", "node_count": "2", "poll_interval": "3"}),
    ("cluster_delete", {"cluster": "rd-unit", "poll_interval": "3"}),
])
def test_the_integration_tests_commands_pass_ansible_playbooks_syntax_check(stem, options, tmp_path):
    inventory = rundeck_runs.spec_inventory(tmp_path, "rd-unit")
    with rundeck_runs.playbook_run(stem, "rd-unit", inventory, options, become_password="pw") as run:
        assert run.argv[0] == str(rundeck_runs.BIN / "ansible-playbook")
        assert run.argv[2:4] == ["-i", str(inventory)] and "-l" not in run.argv
        done = run.run(timeout=120, extra_args=["--syntax-check"])
    assert done.returncode == 0, done.stdout


# --- what is refused ------------------------------------------------------------------------------------


def good_job() -> dict:
    (job,) = [j for j in JOBS if j.source.stem == "cluster_resize"]
    return copy.deepcopy(dict(job.data))


def _set(data: dict, path: str, value) -> dict:
    *parents, last = path.split("/")
    node = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[last] = value
    return data


DOCUMENTED_SHAPES = """
- name: minimal
  description: ''
  loglevel: INFO
  sequence:
    commands:
      - exec: uptime
- name: every documented part
  group: ops/nightly
  uuid: 0b7c1a52-9a51-4c2b-8f6e-3d1f0e9a7c11
  multipleExecutions: true
  timeout: 6h 30m
  retry: {retry: '${option.retries}', delay: 1h}
  loglimit: 100MB
  loglimitAction: truncate
  schedule: {time: {hour: '05', minute: '01', seconds: '0'}, month: '*', year: '*', weekday: {day: MON}}
  nodefilters:
    dispatch: {threadcount: 2, keepgoing: false, excludePrecedence: true, rankOrder: descending}
    filter: 'tags: web !os-family: windows'
  notification:
    onfailure: {recipients: ops@example.org}
    onsuccess:
      plugin: [{type: a-plugin, configuration: {k: v}}]
  plugins: {ExecutionLifecycle: {some-plugin: {}}}
  options:
    retries: {value: '1', regex: '^[0-9]$'}
    hosts: {values: [a, b], multivalued: true, delimiter: ','}
  sequence:
    keepgoing: true
    strategy: step-first
    commands:
      - script: echo @option.retries@
        args: one two
        scriptInterpreter: bash -x
        interpreterArgsQuoted: false
        errorhandler: {exec: 'true', keepgoingOnSuccess: true}
      - scriptfile: /srv/x.sh
      - jobref: {group: ops, name: other, args: -a 1, nodeStep: 'true', nodefilters: {filter: 'name: x'}}
      - nodeStep: false
        type: some-workflow-step
        configuration: {key: value}
"""


def test_the_schema_takes_the_shapes_rundeck_documents():
    assert rundeck.schema_errors(yaml.safe_load(DOCUMENTED_SHAPES)) == []


@pytest.mark.parametrize("path, value", [
    ("nodeFilters", {"filter": "x"}),                                    # a misspelt job key
    ("loglevel", "TRACE"),
    ("group", "/container-infra"),
    ("sequence/commands/0/configuration/ansible-extra-varz", "x: 1"),  # a key the plugin does not read
    ("sequence/commands/0/configuration/ansible-disable-limit", True),   # configuration values are strings
    ("sequence/commands/0/nodeStep", True),                              # the playbook step is a workflow step
    ("options/0/choices", ["a"]),                                       # Rundeck's key is values
    ("options/0/storagePath", "keys/x"),                                # a storage path on a plain option
    ("uuid", "not-a-uuid"),
])
def test_a_job_rundeck_would_not_take_is_refused(path, value):
    data = _set(good_job(), path, value)
    assert rundeck.schema_errors([data])
    with pytest.raises(rundeck.JobError, match="not valid job YAML"):
        rundeck.parse_job(data)


def test_a_secure_option_cannot_be_multivalued():
    data = _set(_set(good_job(), "options/3/multivalued", True), "options/3/delimiter", ",")
    assert any("should not be valid" in e for e in rundeck.schema_errors([data]))


def test_a_job_without_a_playbook_or_with_an_option_twice_is_refused():
    data = good_job()
    del data["sequence"]["commands"][0]["configuration"]["ansible-playbook"]
    with pytest.raises(rundeck.JobError, match="ansible-playbook"):
        rundeck.parse_job(data)
    data = good_job()
    data["options"].append(copy.deepcopy(data["options"][0]))
    with pytest.raises(rundeck.JobError, match="option twice"):
        rundeck.parse_job(data)


@pytest.mark.parametrize("given, message", [
    ({"cluster": "nope", "node_count": "2"}, "is not one of"),
    ({"cluster": "k8s-sandbox", "node_count": "-1"}, "does not match"),
    ({"cluster": "k8s-sandbox"}, "node_count is required"),
    ({"cluster": "k8s-sandbox", "node_count": "2", "colour": "red"}, "has no option colour"),
])
def test_option_values_rundeck_would_refuse_are_refused(given, message):
    job = rundeck.parse_job(good_job())
    with pytest.raises(rundeck.JobError, match=message):
        rundeck.playbook_run(job, given, globals_=rundeck.project_globals(), key_storage={SECRET_KEY: "x"})


def test_a_reference_without_a_value_is_refused_not_passed_on_as_written():
    data = good_job()
    data["sequence"]["commands"][0]["configuration"]["ansible-extra-vars"] += "container_infra_x: ${option.nothere}\n"
    with pytest.raises(rundeck.JobError, match=r"\$\{option.nothere\}"):
        rundeck.playbook_run(rundeck.parse_job(data), {"cluster": "k8s-sandbox", "node_count": "1"},
                             globals_=rundeck.project_globals(), key_storage={SECRET_KEY: "x"})
    with pytest.raises(rundeck.JobError, match=r"\$\{globals.container_infra_bin\}"):
        rundeck.playbook_run(rundeck.parse_job(good_job()), {"cluster": "k8s-sandbox", "node_count": "1"},
                             globals_={"container_infra_dir": "/x", "container_infra_inventory": "/y"},
                             key_storage={SECRET_KEY: "x"})


def test_a_secret_that_would_change_the_extra_vars_is_refused_without_being_shown():
    job = rundeck.parse_job(good_job())
    secret = "line one\nansible_user: root"
    with pytest.raises(rundeck.JobError) as refused:
        rundeck.playbook_run(job, {"cluster": "k8s-sandbox", "node_count": "1"}, globals_=rundeck.project_globals(),
                             key_storage={SECRET_KEY: secret})
    assert "root" not in str(refused.value) and "line one" not in str(refused.value)


def test_preview_masks_secure_values(capsys):
    code = rundeck.main([str(REPO / "rundeck" / "jobs" / "cluster_resize.yaml"), "-o", "cluster=k8s-sandbox",
                         "-o", "node_count=2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "ansible_become_password: |-\n#     ********" in out
    assert "'--extra-vars=@{extra-vars-file}'" in out and "container_infra_resize_node_count: 2" in out


# --- the project ----------------------------------------------------------------------------------------


def test_project_properties_point_at_this_checkout_and_the_dynamic_inventory():
    props = rundeck.project_properties()
    assert props["project.name"] == "container-infra"
    assert props["resources.source.1.type"] == "com.batix.rundeck.plugins.AnsibleResourceModelSourceFactory"
    inventory = props["resources.source.1.config.ansible-inventory"]
    assert inventory.endswith(".container_infra.yml")
    assert yaml.safe_load((REPO / inventory.removeprefix(INSTALL_DIR + "/")).read_text())["plugin"] == "container_infra"
    assert props["resources.source.1.config.ansible-gather-facts"] == "false"
    for key, value in props.items():
        if value.startswith(INSTALL_DIR + "/") and not value.startswith(INSTALL_DIR + "/.venv"):
            assert (REPO / value.removeprefix(INSTALL_DIR + "/")).exists(), (key, value)
    assert rundeck.project_globals()["container_infra_nodes"] == inventory
