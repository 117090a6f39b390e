"""The cluster spec (`cluster.yaml`): pydantic models, their checks, and `load_spec`.

Every check raises a `SpecFault` that names the field and says how to fix it; `load_spec`
turns those (and pydantic's own errors) into `file:line: field: problem — fix` messages.
Models can also be built directly (`ClusterSpec.model_validate(data)`) with the same checks.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from specfile.errors import SpecError, SpecFault, SpecFaults, SpecProblem

DEFAULT_RAY_VERSION = "2.60.0"
DEFAULT_TORCH_VERSION = "2.13.0"
# 580 is NVIDIA's long-term branch, the first for both Hopper and Blackwell; Ubuntu's archive
# and the RHEL 9 module streams carry it, and on Debian 12 the nvidia_driver role takes it from
# NVIDIA's CUDA repository (Debian's own branch, 535, stays available by asking for it).
DEFAULT_DRIVER_BRANCH = "580"
# Where the agents' gateways listen on every node (clients outside the cluster reach it).
DEFAULT_INGRESS_PORT = 8300
# The GCS store's Redis (ray.gcs_storage: redis): off Redis's own 6379, which Ray's GCS takes.
DEFAULT_REDIS_PORT = 6390

# Characters a POSIX shell gives a meaning to. Names end up in shell commands, file names and
# Ray labels on the nodes, so they are refused outright rather than quoted everywhere.
SHELL_METACHARACTERS = frozenset(";&|$`<>()'\"\\*?[]{}!~# \t\n\r")

_CLUSTER_NAME = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_LABEL_KEY = re.compile(r"[A-Za-z0-9_.-]+\Z")
_SSH_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_HOSTNAME_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_VERSION = re.compile(r"\d+(?:\.\d+)+(?:[.-]?(?:a|b|rc|dev|post)\d*)*(?:\+[A-Za-z0-9.]+)?\Z")
_DRIVER_BRANCH = re.compile(r"\d+(?:-[a-z]+)*\Z")
_VENV_PATH = re.compile(r"/[A-Za-z0-9._+@/-]*\Z")
_JUMP_HOST = re.compile(r"(?:(?P<user>[^@]+)@)?(?P<host>\[[^\]]*\]|[^:\[\]]+)(?::(?P<port>\d+))?\Z")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
MAX_NAME_LENGTH = 63
# Groups of the rendered inventory, and Ansible's own.
RESERVED_NODE_NAMES = frozenset(
    {"all", "ungrouped", "mcp_cluster", "mcp_head", "mcp_workers", "mcp_gpu", "mcp_gcs_redis"}
)


# --- field checks -------------------------------------------------------------------------


def _refuse_shell_metacharacters(value: str, what: str) -> None:
    bad = sorted({char for char in value if char in SHELL_METACHARACTERS})
    if bad:
        shown = ", ".join(repr(char) for char in bad)
        raise SpecFault(
            f"{what} {value!r} contains the shell metacharacter{'s' if len(bad) > 1 else ''} "
            f"{shown}",
            "use only letters, digits, '.', '_' and '-'",
        )


def check_cluster_name(value: str) -> str:
    _refuse_shell_metacharacters(value, "cluster name")
    if not _CLUSTER_NAME.match(value) or len(value) > MAX_NAME_LENGTH:
        raise SpecFault(
            f"cluster name {value!r} is not allowed",
            f"use lowercase letters, digits and '-', starting with a letter or digit, "
            f"at most {MAX_NAME_LENGTH} characters (e.g. 'lab')",
        )
    return value


def check_node_name(value: str) -> str:
    _refuse_shell_metacharacters(value, "node name")
    if value in RESERVED_NODE_NAMES:
        raise SpecFault(
            f"node name {value!r} is the name of an inventory group",
            "choose another name (Ansible cannot tell a host and a group of one name apart)",
        )
    if not _NODE_NAME.match(value) or len(value) > MAX_NAME_LENGTH:
        raise SpecFault(
            f"node name {value!r} is not allowed",
            "use letters, digits, '.', '_' and '-', starting with a letter or digit, "
            f"at most {MAX_NAME_LENGTH} characters (e.g. 'node1')",
        )
    return value


def check_address(value: str) -> str:
    """An IPv4/IPv6 address or an RFC 1123 hostname."""
    if _is_ip_address(value) or _is_hostname(value):
        return value
    if value.startswith("[") and value.endswith("]"):
        raise SpecFault(f"address {value!r} has brackets", "write an IPv6 address without [ ]")
    raise SpecFault(
        f"{value!r} is not an IP address or hostname",
        "use an IPv4 address (10.0.0.1), an IPv6 address (fd00::1) "
        "or a hostname (gpu1.lab: letters, digits, '-' and '.')",
    )


def _is_ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_hostname(value: str) -> bool:
    if not value or len(value) > 253:
        return False
    labels = value.split(".")
    # An all-numeric last label is a mistyped IPv4 address (10.0.0.300), not a hostname.
    if labels[-1].isdigit():
        return False
    return all(_HOSTNAME_LABEL.match(label) for label in labels)


def address_identity(address: str) -> str:
    """A key under which two spellings of one address compare equal (fd00::1 == FD00:0::1)."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address.lower()


def check_network(value: str) -> str:
    """An IPv4/IPv6 network in CIDR notation, written without host bits."""
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError:
        pass
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise SpecFault(
            f"{value!r} is not a network in CIDR notation",
            "write it as address/prefix, e.g. 10.0.0.0/24 or fd00::/64",
        ) from None
    raise SpecFault(f"{value!r} has host bits set", f"write the network: {network}")


def check_version(value: Any) -> Any:
    # Before str coercion: YAML reads 2.60 as the float 2.6, which would silently change it.
    if isinstance(value, float):
        raise SpecFault(
            f"version {value!r} was read as a number",
            f'put it in quotes, e.g. "{DEFAULT_RAY_VERSION}"',
        )
    return value


def check_version_text(value: str) -> str:
    if not _VERSION.match(value):
        raise SpecFault(
            f"{value!r} does not look like a version",
            f'write a release number such as "{DEFAULT_RAY_VERSION}"',
        )
    return value


def check_driver_branch(value: str) -> str:
    if not _DRIVER_BRANCH.match(value):
        raise SpecFault(
            f"{value!r} is not an NVIDIA driver branch",
            f'use the branch number, e.g. "{DEFAULT_DRIVER_BRANCH}" (or "550-server")',
        )
    return value


def check_url(value: str) -> str:
    parts = urlsplit(value)
    try:
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
    well_formed = (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and port_ok
        and not _CONTROL_CHARACTERS.search(value)
        and not any(char in value for char in " \"'<>\\`")
    )
    if not well_formed:
        raise SpecFault(
            f"{value!r} is not an http(s) URL",
            "write it as http://host[:port][/path] or https://...",
        )
    return value


def check_venv_path(value: str) -> str:
    if not _VENV_PATH.match(value) or "/../" in f"{value}/" or value == "/":
        raise SpecFault(
            f"{value!r} is not a usable virtualenv path",
            "use an absolute path of letters, digits and ._+@-/, e.g. /opt/mcp/venv",
        )
    return value


def check_ssh_user(value: str) -> str:
    _refuse_shell_metacharacters(value, "user")
    if not _SSH_USER.match(value) or len(value) > 32:
        raise SpecFault(
            f"user {value!r} is not a valid login name",
            "use letters, digits, '.', '_' and '-' (at most 32 characters)",
        )
    return value


def check_label_key(value: str) -> str:
    if ":" in value:
        raise SpecFault(
            f"label key {value!r} contains ':'",
            "separate key and value with ': ' (a space after the colon), e.g. {rack: a}",
        )
    if not _LABEL_KEY.match(value):
        raise SpecFault(
            f"label key {value!r} is not allowed",
            "use letters, digits, '_', '.' and '-' in label keys",
        )
    return value


def parse_gpu(value: Any) -> bool | Literal["auto"]:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("auto", "true", "false"):
        lowered = value.lower()
        return "auto" if lowered == "auto" else lowered == "true"
    raise SpecFault(
        f"{value!r} is not allowed",
        "use auto (detect NVIDIA GPUs at deploy time), true or false",
    )


def local_path(value: str, info: ValidationInfo) -> str:
    """Expand `~`; a relative path is taken from the spec file's directory."""
    if not value or _CONTROL_CHARACTERS.search(value):
        raise SpecFault(f"{value!r} is not a usable path", "give a file path on this machine")
    expanded = os.path.expanduser(value)
    base_dir = (info.context or {}).get("base_dir")
    if base_dir is not None and not os.path.isabs(expanded):
        expanded = os.path.abspath(os.path.join(base_dir, expanded))
    return expanded


@dataclass(frozen=True)
class JumpHost:
    user: str | None
    host: str  # an IPv6 address without its brackets
    port: int | None


def split_jump_host(value: str) -> JumpHost | None:
    """The parts of `[user@]host[:port]`, or None if `value` does not have that shape."""
    match = _JUMP_HOST.match(value)
    if not match:
        return None
    host = match.group("host")
    port = match.group("port")
    return JumpHost(
        user=match.group("user"),
        host=host[1:-1] if host.startswith("[") else host,
        port=int(port) if port is not None else None,
    )


def check_jump_host(value: str) -> str:
    """`[user@]host[:port]`, as ssh's ProxyJump takes it (IPv6 in brackets)."""
    jump = split_jump_host(value)
    fix = "write it as [user@]host[:port], e.g. admin@bastion.lab:22 or [fd00::1]:22"
    if jump is None:
        raise SpecFault(f"{value!r} is not a jump host", fix)
    if jump.user is not None:
        check_ssh_user(jump.user)
    check_address(jump.host)
    if jump.port is not None and not 0 < jump.port < 65536:
        raise SpecFault(f"port {jump.port} is out of range", "use a port from 1 to 65535")
    return value


# --- models -------------------------------------------------------------------------------


def _none_to_empty_mapping(value: Any) -> Any:
    return {} if value is None else value


# `ray:` with every line under it commented out is YAML null: take it as "all defaults".
EMPTY_IS_DEFAULT = BeforeValidator(_none_to_empty_mapping)
Port = Annotated[int, Field(strict=True, ge=1, le=65535)]
Version = Annotated[str, BeforeValidator(check_version), AfterValidator(check_version_text)]
Url = Annotated[str, AfterValidator(check_url)]
Network = Annotated[str, AfterValidator(check_network)]
LabelKey = Annotated[str, AfterValidator(check_label_key)]
GpuSetting = Annotated[bool | Literal["auto"], PlainValidator(parse_gpu)]
Role = Literal["head", "worker"]
StrictBool = Annotated[bool, Field(strict=True)]


class _SpecModel(BaseModel):
    # Numbers become strings where text is expected (`rack: 3`, `driver_branch: 550`).
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class SshSpec(_SpecModel):
    """How Ansible reaches the nodes. Host keys are always checked strictly."""

    user: Annotated[str, AfterValidator(check_ssh_user)] = "ansible"
    key: str = Field(default="~/.ssh/id_ed25519", validate_default=True)
    port: Port = 22
    jump_host: Annotated[str, AfterValidator(check_jump_host)] | None = None
    known_hosts: str | None = None

    @field_validator("key", "known_hosts")
    @classmethod
    def _expand_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else local_path(value, info)


class NodeSpec(_SpecModel):
    """One machine of the cluster."""

    name: Annotated[str, AfterValidator(check_node_name)]
    address: Annotated[str, AfterValidator(check_address)]
    role: Role = "worker"
    gpu: GpuSetting = "auto"
    labels: Annotated[dict[LabelKey, str], EMPTY_IS_DEFAULT] = Field(default_factory=dict)


class RaySpec(_SpecModel):
    """Ray version and the ports it listens on (they must not collide)."""

    version: Version = DEFAULT_RAY_VERSION
    port: Port = 6379
    dashboard: StrictBool = True
    dashboard_port: Port = 8265
    dashboard_expose: StrictBool = False
    client_port: Port = 10001
    node_manager_port: Port = 6380
    object_manager_port: Port = 6381
    min_worker_port: Port = 10002
    max_worker_port: Port = 10999
    allowed_networks: list[Network] = Field(default_factory=list)
    # Where the head's GCS keeps the cluster's state: rocksdb on the head's disk (survives a
    # head restart), redis on another node (survives replacing the head machine), memory.
    gcs_storage: Literal["rocksdb", "redis", "memory"] = "rocksdb"
    redis_node: Annotated[str, AfterValidator(check_node_name)] | None = None
    redis_port: Port = DEFAULT_REDIS_PORT

    def fixed_ports(self) -> dict[str, int]:
        """The single-port settings in use, by field name (the worker range excluded)."""
        ports = {
            "port": self.port,
            "dashboard_port": self.dashboard_port,
            "client_port": self.client_port,
            "node_manager_port": self.node_manager_port,
            "object_manager_port": self.object_manager_port,
        }
        # Only a Redis that runs takes its port from the others.
        if self.gcs_storage == "redis":
            ports["redis_port"] = self.redis_port
        return ports

    @model_validator(mode="after")
    def _ports_do_not_collide(self) -> RaySpec:
        faults = list(_ray_port_faults(self))
        if faults:
            raise SpecFaults(faults)
        return self


class PythonSpec(_SpecModel):
    """The virtualenv on every node and where its packages come from."""

    venv: Annotated[str, AfterValidator(check_venv_path)] = "/opt/mcp/venv"
    torch_version: Version = DEFAULT_TORCH_VERSION
    torch_variant: Literal["auto", "cpu", "cuda"] = "auto"
    wheelhouse: Url | None = None
    index_url: Url | None = None

    @model_validator(mode="after")
    def _one_package_source(self) -> PythonSpec:
        if self.wheelhouse and self.index_url:
            raise SpecFault(
                "wheelhouse and index_url are both set",
                "keep one: wheelhouse for air-gapped installs, index_url for a private index",
                path=("index_url",),
                related=("wheelhouse",),
            )
        return self


class NvidiaSpec(_SpecModel):
    driver_branch: Annotated[
        str, BeforeValidator(check_version), AfterValidator(check_driver_branch)
    ] = DEFAULT_DRIVER_BRANCH


class IngressSpec(_SpecModel):
    """The agents' gateways: the port clients outside the cluster reach, and from where."""

    port: Port = DEFAULT_INGRESS_PORT
    allowed_networks: list[Network] = Field(default_factory=list)


class ClusterSpec(_SpecModel):
    """A whole cluster: `load_spec("cluster.yaml")` gives one."""

    SPEC_REFERENCE: ClassVar[str] = "docs/spec.md"
    name: Annotated[str, AfterValidator(check_cluster_name)]
    ssh: Annotated[SshSpec, EMPTY_IS_DEFAULT] = Field(default_factory=SshSpec)
    nodes: list[NodeSpec] = Field(min_length=1)
    ray: Annotated[RaySpec, EMPTY_IS_DEFAULT] = Field(default_factory=RaySpec)
    python: Annotated[PythonSpec, EMPTY_IS_DEFAULT] = Field(default_factory=PythonSpec)
    apt_proxy: Url | None = None
    nvidia: Annotated[NvidiaSpec, EMPTY_IS_DEFAULT] = Field(default_factory=NvidiaSpec)
    ingress: Annotated[IngressSpec, EMPTY_IS_DEFAULT] = Field(default_factory=IngressSpec)

    @property
    def head(self) -> NodeSpec:
        return next(node for node in self.nodes if node.role == "head")

    @property
    def workers(self) -> list[NodeSpec]:
        return [node for node in self.nodes if node.role == "worker"]

    @model_validator(mode="after")
    def _nodes_and_ports_are_consistent(self) -> ClusterSpec:
        faults = [
            *_node_faults(self.nodes),
            *_ssh_port_faults(self),
            *_ingress_port_faults(self),
            *_redis_faults(self),
        ]
        if faults:
            raise SpecFaults(faults)
        return self


def _redis_faults(spec: ClusterSpec) -> Iterator[SpecFault]:
    ray = spec.ray
    node = ray.redis_node
    if ray.gcs_storage != "redis":
        if node is not None:
            yield SpecFault(
                f"redis_node is set but gcs_storage is {ray.gcs_storage}",
                "set 'gcs_storage: redis' to keep the GCS state in Redis on that node, "
                "or remove redis_node",
                path=("ray", "redis_node"),
            )
        return
    if node is None:
        yield SpecFault(
            "gcs_storage is redis but no redis_node says where Redis runs",
            "set ray.redis_node to the name of a worker node",
            path=("ray", "gcs_storage"),
        )
        return
    names = {candidate.name: candidate for candidate in spec.nodes}
    if node not in names:
        yield SpecFault(
            f"redis_node {node!r} is not a node of nodes:",
            f"use the name of one of them: {', '.join(sorted(names))}",
            path=("ray", "redis_node"),
        )
    elif names[node].role == "head":
        yield SpecFault(
            f"redis_node {node!r} is the head: the GCS state would share the head's fate",
            "put Redis on a worker node (a new head then finds the state there), "
            "or use 'gcs_storage: rocksdb' to keep it on the head's disk",
            path=("ray", "redis_node"),
        )


def _ingress_port_faults(spec: ClusterSpec) -> Iterator[SpecFault]:
    port = spec.ingress.port
    taken = {value: f"ray.{field}" for field, value in spec.ray.fixed_ports().items()}
    if spec.ray.min_worker_port <= port <= spec.ray.max_worker_port:
        taken[port] = "ray's worker ports (min_worker_port to max_worker_port)"
    if port in taken:
        yield SpecFault(
            f"port {port} is already used by {taken[port]}",
            f"choose another ingress port (the default is {DEFAULT_INGRESS_PORT})",
            path=("ingress", "port"),
        )


def _ray_port_faults(ray: RaySpec) -> Iterator[SpecFault]:
    # A collision is reported on the field the spec sets, not on a default it never wrote.
    explicit = ray.model_fields_set
    seen: dict[int, str] = {}
    for field, port in ray.fixed_ports().items():
        other = seen.setdefault(port, field)
        if other == field:
            continue
        blamed, kept = (
            (field, other) if field in explicit or other not in explicit else (other, field)
        )
        yield SpecFault(
            f"port {port} is already used by ray.{kept}",
            "give each Ray port its own number",
            path=(blamed,),
            related=(kept,),
            after="" if kept in explicit else " (its default)",
        )
    low, high = ray.min_worker_port, ray.max_worker_port
    if low > high:
        yield SpecFault(
            f"min_worker_port {low} is above max_worker_port {high}",
            "swap them, or lower min_worker_port",
            path=("min_worker_port",),
        )
        return
    for field, port in ray.fixed_ports().items():
        if low <= port <= high:
            blamed = field if field in explicit else "min_worker_port"
            yield SpecFault(
                f"ray.{field} {port} lies inside the worker port range {low}..{high}",
                "move it outside min_worker_port..max_worker_port, or narrow that range",
                path=(blamed,),
            )


def _ssh_port_faults(spec: ClusterSpec) -> Iterator[SpecFault]:
    ray = spec.ray
    ssh_port = spec.ssh.port
    ssh_explicit = "port" in spec.ssh.model_fields_set
    for field, port in ray.fixed_ports().items():
        if port == ssh_port:
            blamed_ray = field in ray.model_fields_set or not ssh_explicit
            yield SpecFault(
                f"ray.{field} and ssh.port are both {port}",
                "give Ray a port that sshd does not listen on",
                path=("ray", field) if blamed_ray else ("ssh", "port"),
            )
    if ray.min_worker_port <= ssh_port <= ray.max_worker_port:
        yield SpecFault(
            f"the worker port range {ray.min_worker_port}..{ray.max_worker_port} "
            f"includes the SSH port {ssh_port}",
            "move the range away from the SSH port",
            path=("ray", "min_worker_port"),
        )


def _node_faults(nodes: list[NodeSpec]) -> Iterator[SpecFault]:
    heads = [index for index, node in enumerate(nodes) if node.role == "head"]
    if not heads:
        yield SpecFault(
            "no node has role: head", "set 'role: head' on exactly one node", path=("nodes",)
        )
    for index in heads[1:]:
        yield SpecFault(
            f"a second head node (node {nodes[heads[0]].name!r}",
            "set 'role: worker' on all nodes but one",
            path=("nodes", index, "role"),
            related=("nodes", heads[0], "role"),
            after=" is the head already)",
        )
    yield from _duplicate_names(nodes)
    yield from _duplicate_addresses(nodes)


def _duplicate_names(nodes: list[NodeSpec]) -> Iterator[SpecFault]:
    first_index: dict[str, int] = {}
    for index, node in enumerate(nodes):
        first = first_index.setdefault(node.name, index)
        if first != index:
            yield SpecFault(
                f"duplicate node name {node.name!r} (also used",
                "give each node its own name",
                path=("nodes", index, "name"),
                related=("nodes", first, "name"),
                after=")",
            )


def _duplicate_addresses(nodes: list[NodeSpec]) -> Iterator[SpecFault]:
    first_index: dict[str, int] = {}
    for index, node in enumerate(nodes):
        first = first_index.setdefault(address_identity(node.address), index)
        if first != index:
            yield SpecFault(
                f"duplicate address {node.address} (node {nodes[first].name!r}",
                "give each node its own address",
                path=("nodes", index, "address"),
                related=("nodes", first, "address"),
                after=" has it)",
            )


# --- loading ------------------------------------------------------------------------------


def load_spec(path: str | os.PathLike[str]) -> ClusterSpec:
    """Read, parse and check a spec file. Raises SpecError (a UsageError: exit 2) with
    `file:line: field: problem — fix` for anything wrong, including bad YAML."""
    spec_path = Path(path)
    source = os.fspath(path)
    text = _read_spec_text(spec_path, source)
    return parse_spec(text, source=source, base_dir=spec_path.parent)


def parse_spec(
    text: str, source: str = "cluster.yaml", base_dir: str | os.PathLike[str] | None = None
) -> ClusterSpec:
    """Check spec `text`; `source` names it in messages, relative paths start at `base_dir`."""
    from specfile.messages import problems_from_validation_error
    from specfile.yamlmap import parse_yaml

    document = parse_yaml(text, source)
    if not isinstance(document.data, dict):
        raise SpecError(source, [_not_a_mapping_problem(document.data)])
    context = {"base_dir": os.fspath(base_dir) if base_dir is not None else None}
    try:
        return ClusterSpec.model_validate(document.data, context=context)
    except ValidationError as error:
        raise SpecError(
            source, problems_from_validation_error(error, document, ClusterSpec)
        ) from None


def _not_a_mapping_problem(data: object) -> SpecProblem:
    fix = "start with 'name: <cluster name>' and a 'nodes:' list (mcpctl init writes an example)"
    if data is None:
        return SpecProblem("the spec is empty", fix, line=1)
    return SpecProblem("the spec must be a mapping of fields at the top level", fix, line=1)


def _read_spec_text(path: Path, source: str) -> str:
    def problem(message: str, fix: str, line: int | None = None) -> SpecError:
        return SpecError(source, [SpecProblem(message, fix, line=line)])

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise problem(
            "no such file",
            "write one with 'mcpctl init --head ADDRESS', or point -f / $MCP_SPEC at your spec",
        ) from None
    except IsADirectoryError:
        raise problem("is a directory, not a spec file", "pass the path of the YAML file") from None
    except OSError as error:
        raise problem(
            f"cannot read it: {error.strerror}", "check the path and its permissions"
        ) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise problem("is not UTF-8 text", "save the file as UTF-8", line) from None
