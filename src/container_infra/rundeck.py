"""Rundeck job definitions (``rundeck/jobs/*.yaml``) and the ``ansible-playbook`` run Rundeck makes of them.

A job file is Rundeck's job YAML (a list of jobs). :func:`load_jobs` checks it against
``rundeck/schema/job.schema.json`` (written from Rundeck's documented job YAML format, with the keys the
Ansible plugin's playbook workflow step reads) and turns it into :class:`Job`. :func:`playbook_run`
builds, from a job, option values, the project's globals and the nodes Rundeck selected, the command
the plugin's step ``com.batix.rundeck.plugins.AnsiblePlaybookWorkflowStep`` starts, modelled on the
plugin's source (rundeck-plugins/ansible-plugin, AnsiblePlaybookWorkflowStep, AnsibleRunnerContextBuilder
and AnsibleRunner, as of commit 7826d9b):

* ``${option.NAME}``, ``${globals.NAME}`` and ``${job.NAME}`` references in the step's configuration
  are replaced by their values; a reference to something without a value stays as written in Rundeck,
  and is an error here (it would reach the playbook as ``${option.NAME}``);
* argv: ``<ansible-binaries-dir-path>/ansible-playbook <playbook> -i <inventory> [-l <node>,<node>]
  [-vvv] --extra-vars=@<file> [--user=..] [--timeout=..] [--become ..] <ansible-extra-param split>``;
  ``-l`` carries the names of the job's nodes unless ``ansible-disable-limit`` is true, ``-vvv`` comes
  with log level DEBUG;
* the extra vars (``ansible-extra-vars``, expanded) go into a temporary file, never onto argv;
* environment: Rundeck's own, ``ANSIBLE_CONFIG`` from ``ansible-config-file-path``, every option
  that is *not* secure under its own name, and the job context as ``RD_JOB_*``;
* working directory: ``ansible-base-dir-path``.

Secure options: their values reach the playbook only through the extra-vars file. The plugin leaves
them out of the environment; this module writes the file 0600 in a 0700 directory of its own (the
plugin uses ``File.createTempFile`` in Rundeck's tmp dir, whose mode follows the umask: give Rundeck a
private ``framework.tmp.dir``) and removes both when the run ends. Nothing here prints a secure value:
:meth:`PlaybookRun.describe` masks them.

``python -m container_infra.rundeck rundeck/jobs/cluster_resize.yaml -o cluster=k8s-sandbox -o
node_count=3`` previews a job's command (argv, the environment it adds, the extra vars, masked).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

PLAYBOOK_STEP = "com.batix.rundeck.plugins.AnsiblePlaybookWorkflowStep"
REPO = Path(__file__).resolve().parents[2]
PROJECT_DIR = REPO / "rundeck"
SCHEMA_FILE = PROJECT_DIR / "schema" / "job.schema.json"
MASK = "********"

# ${option.NAME}, ${globals.NAME}, ${job.NAME}: Rundeck's data references (context.key).
_REFERENCE = re.compile(r"\$\{([A-Za-z0-9_-]+)\.([^}\s]+)\}")


class JobError(ValueError):
    """A job definition Rundeck would refuse, or a run it would make wrongly; one sentence."""


def _bool(value: Any) -> bool:
    return value is True or value == "true"


@dataclass(frozen=True)
class Option:
    """A job option (Rundeck's option map)."""

    name: str
    description: str = ""
    default: str | None = None
    values: tuple[str, ...] = ()
    required: bool = False
    enforced: bool = False
    regex: str | None = None
    secure: bool = False
    value_exposed: bool = False
    storage_path: str | None = None
    multivalued: bool = False
    delimiter: str | None = None

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Option:
        return cls(
            name=data["name"], description=data.get("description", ""), default=data.get("value"),
            values=tuple(data.get("values", ())), required=_bool(data.get("required")),
            enforced=_bool(data.get("enforced")), regex=data.get("regex"), secure=_bool(data.get("secure")),
            value_exposed=_bool(data.get("valueExposed")), storage_path=data.get("storagePath"),
            multivalued=_bool(data.get("multivalued")), delimiter=data.get("delimiter"))

    @property
    def in_data_context(self) -> bool:
        """Whether ``${option.NAME}`` sees the value: a secure option only when its value is exposed."""
        return not self.secure or self.value_exposed

    def check(self, value: str) -> None:
        """Refuse a value as Rundeck does when the job is started (choices, regex)."""
        parts = value.split(self.delimiter) if self.multivalued and self.delimiter else [value]
        for part in parts:
            if self.enforced and self.values and part not in self.values:
                shown = MASK if self.secure else repr(part)
                raise JobError(f"option {self.name}: {shown} is not one of {', '.join(self.values)}")
            # Rundeck matches the whole value (Java's String.matches).
            if self.regex and value and not re.fullmatch(self.regex, part):
                shown = "the value" if self.secure else repr(part)
                raise JobError(f"option {self.name}: {shown} does not match {self.regex}")


@dataclass(frozen=True)
class PlaybookStep:
    """An Ansible playbook workflow step: its configuration, keys as the plugin names them."""

    configuration: Mapping[str, str]
    description: str = ""

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.configuration.get(key, default)

    @property
    def references(self) -> set[tuple[str, str]]:
        """Every (context, name) the configuration refers to, e.g. ("option", "cluster")."""
        return {m.groups() for value in self.configuration.values() for m in _REFERENCE.finditer(value)}


@dataclass(frozen=True)
class Job:
    """One job of a job file: what Rundeck shows and asks, and its playbook steps."""

    name: str
    group: str
    uuid: str | None
    description: str
    loglevel: str
    options: tuple[Option, ...]
    steps: tuple[PlaybookStep, ...]
    node_filter: str | None
    data: Mapping[str, Any] = field(repr=False, compare=False)
    source: Path | None = field(default=None, compare=False)

    @property
    def path(self) -> str:
        return f"{self.group}/{self.name}" if self.group else self.name

    def option(self, name: str) -> Option:
        for option in self.options:
            if option.name == name:
                return option
        raise KeyError(name)

    @property
    def step(self) -> PlaybookStep:
        """The job's one playbook step (the toolkit's jobs each run one playbook)."""
        if len(self.steps) != 1:
            raise JobError(f"job {self.path}: {len(self.steps)} playbook steps, where one is expected")
        return self.steps[0]

    def with_choices(self, option: str, values: Iterable[str]) -> Job:
        """The same job with another list of choices for one option (an operator's own cluster names)."""
        data = copy.deepcopy(dict(self.data))
        for entry in data.get("options", []):
            if entry["name"] == option:
                entry["values"] = list(values)
        return parse_job(data, self.source)


@cache
def schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


def schema_errors(document: Any) -> list[str]:
    """What makes a job file's content invalid: one line per problem, with where it is."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}" for error in errors]


def parse_job(data: Mapping[str, Any], source: Path | None = None) -> Job:
    """One job map, checked against the schema and turned into a :class:`Job`."""
    errors = schema_errors([data])
    where = f"{source}: " if source else ""
    if errors:
        raise JobError(f"{where}job {data.get('name', '?')!r} is not valid job YAML: {'; '.join(errors)}")
    raw_options = data.get("options", [])
    if isinstance(raw_options, Mapping):  # the older map form, name -> definition
        raw_options = [{"name": name, **body} for name, body in raw_options.items()]
    options = tuple(Option.from_data(entry) for entry in raw_options)
    names = [o.name for o in options]
    if len(set(names)) != len(names):
        raise JobError(f"{where}job {data['name']!r} declares an option twice: {names}")
    steps = []
    for command in data["sequence"]["commands"]:
        if command.get("type") != PLAYBOOK_STEP:
            raise JobError(f"{where}job {data['name']!r}: only {PLAYBOOK_STEP} steps are modelled, not {command}")
        steps.append(PlaybookStep(dict(command["configuration"]), command.get("description", "")))
    nodefilters = data.get("nodefilters") or {}
    return Job(name=data["name"], group=data.get("group", ""), uuid=data.get("uuid"),
               description=data.get("description", ""), loglevel=data.get("loglevel", "INFO"),
               options=options, steps=tuple(steps), node_filter=nodefilters.get("filter"), data=data, source=source)


def load_jobs(path: Path) -> list[Job]:
    """The jobs of one job file (Rundeck's job YAML: a list of job maps)."""
    document = yaml.safe_load(Path(path).read_text())
    if not isinstance(document, list):
        raise JobError(f"{path}: a job file is a list of jobs")
    return [parse_job(entry, Path(path)) for entry in document]


def project_jobs(project_dir: Path = PROJECT_DIR) -> list[Job]:
    """Every job of the project's job files (``jobs/*.yaml``)."""
    return [job for path in sorted((Path(project_dir) / "jobs").glob("*.yaml")) for job in load_jobs(path)]


def project_properties(project_dir: Path = PROJECT_DIR) -> dict[str, str]:
    """``project.properties`` as a dict (Java properties: key=value lines, # comments)."""
    out: dict[str, str] = {}
    for line in (Path(project_dir) / "project.properties").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def project_globals(project_dir: Path = PROJECT_DIR) -> dict[str, str]:
    """The project's global variables (``project.globals.NAME``), as ``${globals.NAME}`` sees them."""
    prefix = "project.globals."
    return {k[len(prefix):]: v for k, v in project_properties(project_dir).items() if k.startswith(prefix)}


def option_values(job: Job, given: Mapping[str, str], key_storage: Mapping[str, str] | None = None) -> dict[str, str]:
    """The values Rundeck starts the job with: given, else from key storage (secure), else the default."""
    unknown = set(given) - {o.name for o in job.options}
    if unknown:
        raise JobError(f"job {job.path} has no option {', '.join(sorted(unknown))}")
    values: dict[str, str] = {}
    for option in job.options:
        value = given.get(option.name)
        if value is None and option.storage_path and key_storage is not None:
            value = key_storage.get(option.storage_path)
        if value is None:
            value = option.default
        if value is None or value == "":
            if option.required:
                raise JobError(f"job {job.path}: option {option.name} is required")
            continue
        option.check(value)
        values[option.name] = value
    return values


def expand(text: str, context: Mapping[str, Mapping[str, str]]) -> str:
    """Rundeck's data references replaced; one without a value is left as written, as Rundeck does."""

    def value(match: re.Match) -> str:
        scope, name = match.groups()
        found = context.get(scope, {}).get(name)
        return match.group(0) if found is None else found

    return _REFERENCE.sub(value, text)


def _split_args(text: str) -> list[str]:
    """``ansible-extra-param`` split into arguments, quotes removed (the plugin's tokenizer)."""
    return shlex.split(text)


@dataclass
class PlaybookRun:
    """One run of a job's playbook step: argv, environment, working directory and the extra-vars file.

    Use as a context manager: entering writes the extra-vars file (0600, in a 0700 directory), leaving
    removes it, as the plugin removes its temporary files when the step ends.
    """

    argv: list[str]
    env: dict[str, str]
    cwd: str
    extra_vars: str
    secrets: tuple[str, ...]
    added_env: dict[str, str]
    tmp_root: str | None = None
    extra_vars_file: Path | None = None
    _tmp: str | None = None

    def __enter__(self) -> PlaybookRun:
        self._tmp = tempfile.mkdtemp(prefix="ansible-rundeck-", dir=self.tmp_root)
        if self.extra_vars:
            fd, name = tempfile.mkstemp(prefix="ansible-runner", suffix="extra-vars", dir=self._tmp)
            with os.fdopen(fd, "w") as handle:  # mkstemp makes it 0600
                handle.write(self.extra_vars)
            self.extra_vars_file = Path(name)
            self.argv = [f"--extra-vars=@{name}" if a == "--extra-vars=@{extra-vars-file}" else a for a in self.argv]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
        self.extra_vars_file = None
        self._tmp = None

    def run(self, timeout: float | None = None, extra_args: Iterable[str] = ()) -> subprocess.CompletedProcess:
        """Start the command (inside ``with``); stdout and stderr together, as Rundeck's log shows them."""
        if self.extra_vars and self.extra_vars_file is None:
            raise RuntimeError("PlaybookRun.run() is for inside `with run:` (the extra-vars file exists there)")
        return subprocess.run([*self.argv, *extra_args], cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def leaks(self, text: str) -> bool:
        """Whether a secure option's value appears in the text."""
        return any(secret in text for secret in self.secrets)

    def describe(self) -> str:
        """The command for a person to read: argv, what it adds to the environment, the extra vars masked."""
        lines = [f"cd {shlex.quote(self.cwd)}"]
        lines += [f"{k}={shlex.quote(v)}" for k, v in sorted(self.added_env.items())]
        lines.append(shlex.join(self.argv))
        if self.extra_vars:
            lines.append("# extra vars (the file --extra-vars=@ names; secure values masked):")
            lines += ["#   " + line for line in self.mask(self.extra_vars).splitlines()]
        return self.mask("\n".join(lines))


def _check_extra_vars(job: Job, template: str, rendered: str, secure_values: Mapping[str, str]) -> None:
    """The rendered extra vars parse to the template's keys, and each secure value arrives intact.

    An option value that breaks the YAML (a newline, ``: ``) would change which variables the playbook
    gets; this refuses it without printing the value.
    """
    placeholder = _REFERENCE.sub("x", template)
    try:
        expected = yaml.safe_load(placeholder) or {}
        got = yaml.safe_load(rendered) or {}
    except yaml.YAMLError as error:
        raise JobError(f"job {job.path}: the extra vars are not YAML once the options are in "
                       f"({type(error).__name__})") from None
    if not isinstance(expected, dict) or not isinstance(got, dict) or set(expected) != set(got):
        raise JobError(f"job {job.path}: an option value changes the extra vars' keys "
                       f"(expected {sorted(expected) if isinstance(expected, dict) else expected})")
    for key, value in (yaml.safe_load(template) or {}).items():
        match = _REFERENCE.fullmatch(str(value).strip()) if isinstance(value, str) else None
        secure = match is not None and match.group(1) == "option" and match.group(2) in secure_values
        if secure and got[key] != secure_values[match.group(2)]:
            raise JobError(f"job {job.path}: secure option {match.group(2)} does not reach {key} unchanged "
                           "(a value with a line break?)")


def playbook_run(job: Job, options: Mapping[str, str], *, globals_: Mapping[str, str] | None = None,
                 nodes: Iterable[str] = (), job_context: Mapping[str, str] | None = None,
                 environ: Mapping[str, str] | None = None, key_storage: Mapping[str, str] | None = None,
                 tmp_root: str | None = None) -> PlaybookRun:
    """What the Ansible plugin's playbook workflow step runs for this job, options, globals and nodes."""
    step = job.step
    values = option_values(job, options, key_storage)
    exposed = {o.name: values[o.name] for o in job.options if o.name in values and o.in_data_context}
    secure_values = {o.name: values[o.name] for o in job.options if o.secure and o.name in values}
    context = {
        "option": exposed,
        "globals": dict(globals_ if globals_ is not None else project_globals()),
        "job": {"name": job.name, "group": job.group, "project": "container-infra", "loglevel": job.loglevel,
                **(job_context or {})},
    }
    # Judged on the definition, not on the expanded text (which holds the values, secure ones too).
    unresolved = sorted({f"${{{scope}.{name}}}" for scope, name in step.references
                         if name not in context.get(scope, {})})
    if unresolved:
        raise JobError(f"job {job.path}: {', '.join(unresolved)} would reach ansible-playbook as written "
                       "(no such option, global or value)")
    config = {key: expand(value, context) for key, value in step.configuration.items()}

    binaries = config.get("ansible-binaries-dir-path")
    argv = [str(Path(binaries) / "ansible-playbook") if binaries else "ansible-playbook", config["ansible-playbook"]]
    if config.get("ansible-inventory"):
        argv += ["-i", config["ansible-inventory"]]
    limit = ",".join(nodes) or config.get("ansible-limit", "")
    if limit and config.get("ansible-disable-limit", "false") != "true":
        argv += ["-l", limit]
    if job.loglevel == "DEBUG":
        argv.append("-vvv")
    extra_vars = config.get("ansible-extra-vars", "")
    if extra_vars:
        _check_extra_vars(job, step.configuration["ansible-extra-vars"], extra_vars, secure_values)
        argv.append("--extra-vars=@{extra-vars-file}")
    for unsupported in ("ansible-ssh-key-storage-path", "ansible-ssh-password-storage-path", "ansible-vault-path",
                        "ansible-vault-storage-path", "ansible-encrypt-extra-vars", "ansible-inventory-inline"):
        if config.get(unsupported) not in (None, "", "false"):
            raise JobError(f"job {job.path}: {unsupported} is not modelled here")
    if config.get("ansible-ssh-user"):
        argv.append(f"--user={config['ansible-ssh-user']}")
    if config.get("ansible-ssh-timeout"):
        argv.append(f"--timeout={config['ansible-ssh-timeout']}")
    if config.get("ansible-become") == "true":
        argv.append("--become")
    if config.get("ansible-become-method"):
        argv.append(f"--become-method={config['ansible-become-method']}")
    if config.get("ansible-become-user"):
        argv.append(f"--become-user={config['ansible-become-user']}")
    if config.get("ansible-extra-param"):
        argv += _split_args(config["ansible-extra-param"])

    added: dict[str, str] = {}
    if config.get("ansible-config-file-path"):
        added["ANSIBLE_CONFIG"] = config["ansible-config-file-path"]
    # Options as environment variables, the secure ones left out; then the job context as RD_JOB_*.
    added.update({o.name: values[o.name] for o in job.options if o.name in values and not o.secure})
    added.update({f"RD_JOB_{k.upper()}": v for k, v in context["job"].items()})
    env = {**(os.environ if environ is None else environ), **added}
    cwd = config.get("ansible-base-dir-path") or os.getcwd()
    return PlaybookRun(argv=argv, env=env, cwd=cwd, extra_vars=extra_vars, secrets=tuple(secure_values.values()),
                       added_env=added, tmp_root=tmp_root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m container_infra.rundeck",
                                     description="Preview the ansible-playbook command a Rundeck job runs.")
    parser.add_argument("job_file", type=Path)
    parser.add_argument("-j", "--job", help="the job's name, when the file has several")
    parser.add_argument("-o", "--option", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("-g", "--global", dest="globals_", action="append", default=[], metavar="NAME=VALUE",
                        help="a project global (default: rundeck/project.properties)")
    parser.add_argument("-n", "--node", action="append", default=[], help="a node Rundeck selected")
    args = parser.parse_args(argv)
    try:
        jobs = [j for j in load_jobs(args.job_file) if args.job in (None, j.name)]
        if len(jobs) != 1:
            raise JobError(f"{args.job_file}: {len(jobs)} jobs match; name one with --job")
        job = jobs[0]
        given = dict(item.split("=", 1) for item in args.option)
        # Secure options are never typed here: a placeholder stands for the value key storage gives.
        storage = {o.storage_path: MASK for o in job.options if o.secure and o.storage_path}
        globals_ = {**project_globals(), **dict(item.split("=", 1) for item in args.globals_)}
        print(playbook_run(job, given, globals_=globals_, nodes=args.node, key_storage=storage).describe())
    except (JobError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
