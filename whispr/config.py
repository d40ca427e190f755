"""A node's configuration: one frozen, typed :class:`Settings`, read once at start.

Why this shape:

- **Environment first.** Containers and Kubernetes configure processes with
  environment variables, so every setting has one, ``WHISPR_<FIELD>`` (for
  example ``WHISPR_PORT``). A TOML file (``--config PATH`` or
  ``$WHISPR_CONFIG``) suits a person running a node by hand; where both set a
  value, the environment wins, so an operator can override one value of a
  shared file without editing it.
- **Fail at start, naming the culprit.** A bad value is a
  :class:`ConfigError` that names the variable (``WHISPR_PORT``) or the file
  key, says what was expected and what was found, before anything is
  started. A node that starts with a half-understood configuration fails
  later, in a worse place.
- **Frozen.** Settings are read by every service of the node, from several
  tasks; an immutable value needs no locking and cannot drift. Use
  :meth:`Settings.with_overrides` (validated like everything else) to derive
  a changed copy, e.g. for a command-line flag or a test.
- **Embedded by default** (docs/design.md, section 8): with nothing set, a node runs
  on a local SQLite file and an in-process broker; setting
  ``WHISPR_DATABASE_URL`` and ``WHISPR_REDIS_URL`` switches to PostgreSQL and
  Redis.

An empty environment variable counts as not set, because Kubernetes and
shells make empty values easily (``WHISPR_REDIS_URL=`` means "no Redis").
Lists (``WHISPR_ALLOWED_ORIGINS``) are comma-separated in the environment and
arrays in TOML.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import socket
import sys
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

import jwt
import msgspec

from actors.stream import POSITION_CHECK_S
from whispr.gc_policy import DEFAULT_THRESHOLDS

__all__ = [
    "CONFIG_ENV_VAR",
    "DEV_JWT_SECRET",
    "ENV_PREFIX",
    "ConfigError",
    "Settings",
    "env_var",
    "is_loopback",
    "load_settings",
    "log_format_from_env",
    "unknown_variables",
]

ENV_PREFIX: Final = "WHISPR_"
CONFIG_ENV_VAR: Final = "WHISPR_CONFIG"

#: Used when ``WHISPR_JWT_SECRET`` is not set, so that ``whispr serve`` runs
#: with no configuration. Anyone can forge tokens for a node using it: the
#: node logs a warning at start (:meth:`Settings.startup_warnings`).
DEV_JWT_SECRET: Final = "whispr-development-secret-do-not-use-in-production"

LogFormat = Literal["console", "json"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
Compression = Literal["off", "deflate"]
ModerationPolicy = Literal["fail_open", "fail_closed"]
AbuseResponse = Literal["record", "throttle", "report", "disconnect"]
JwtAlgorithm = Literal[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "EdDSA"
]

_ASYMMETRIC_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "EdDSA"}
)
# Fields whose values must never be echoed in an error message or a repr.
_SECRET_FIELDS: Final = frozenset(
    {"jwt_secret", "database_url", "redis_url", "grpc_tokens", "sibling_token"}
)
# Fields whose values are case-insensitive words: normalised to lower case.
_LOWERCASE_FIELDS: Final = frozenset(
    {"log_format", "log_level", "compression", "moderation_policy"}
    | {f"abuse_{pattern}_response" for pattern in ("duplicates", "creations", "joins", "refusals")}
)

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=86400)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
NodeName = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$", max_length=128)
]


class ConfigError(ValueError):
    """A configuration value is missing, malformed or inconsistent.

    ``variable`` names what to fix: the environment variable
    (``WHISPR_PORT``), the key of the TOML file, or ``--config``.
    """

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable
        self.message = message


def env_var(field_name: str) -> str:
    """The environment variable that sets ``field_name`` (``port`` -> ``WHISPR_PORT``)."""
    return ENV_PREFIX + field_name.upper()


def _default_node_name() -> str:
    # Unique per process on a machine, and readable in logs and presence
    # metas; Kubernetes sets WHISPR_NODE_NAME to the pod's name instead.
    host = socket.gethostname().split(".", 1)[0] or "node"
    return f"{host}-{os.getpid()}"


def _is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _default_log_format() -> LogFormat:
    # A person at a terminal reads colours and columns; a log collector
    # (anything that is not a terminal) parses one JSON object per line.
    stream = sys.stderr
    return "console" if stream is not None and stream.isatty() else "json"


def log_format_from_env(env: Mapping[str, str]) -> LogFormat:
    """The log format ``env`` asks for, for a message written before the settings could be
    read (a configuration error): ``WHISPR_LOG_FORMAT`` when it is valid, else the default."""
    raw = env.get(env_var("log_format"), "").strip().lower()
    return "json" if raw == "json" else "console" if raw == "console" else _default_log_format()


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything a node is told at start. Defaults follow docs/design.md, sections 7 and 8.

    Build one with :func:`load_settings` (environment and file, validated).
    Constructing ``Settings(...)`` directly checks only the rules that join
    several fields (:meth:`__post_init__`); prefer :meth:`with_overrides`,
    which validates each value, to change a loaded instance.
    """

    node_name: NodeName = msgspec.field(default_factory=_default_node_name)
    """This node's name in logs, presence and the cluster; unique per process."""
    host: NonEmpty = "127.0.0.1"
    """Interface for WebSocket/HTTP and gRPC; ``0.0.0.0`` in a container."""
    port: Port = 4000
    """WebSocket and HTTP (health, readiness, metrics) port; 0 picks a free one."""
    database_url: str | None = None
    """PostgreSQL DSN; None runs on the embedded SQLite store."""
    sqlite_path: NonEmpty = "whispr.db"
    """The embedded store's file, used when ``database_url`` is None."""
    store_breaker_failures: Positive = 5
    """Consecutive outage-type failures of the store (unreachable, too slow) that open its
    circuit breaker; refusals of input never count."""
    store_breaker_open_s: Seconds = 30.0
    """How long the store's open breaker refuses calls at once before trial calls."""
    store_breaker_trials: Positive = 3
    """Successful trial calls that close the store's half-open breaker."""
    audit_retention_days: Annotated[int, msgspec.Meta(ge=0, le=36_500)] = 90
    """Days audit records are kept in the store before the retention job deletes them;
    0 keeps them forever (see :mod:`whispr.audit.retention`)."""
    redis_url: str | None = None
    """Redis URL for cross-node pub/sub; None uses the in-process broker."""
    redis_prefix: NonEmpty = "whispr"
    """Prefix of every Redis key and channel: nodes sharing a prefix form one cluster."""
    jwt_secret: NonEmpty = DEV_JWT_SECRET
    """HMAC secret for HS* tokens; the built-in default is for development only."""
    jwt_algorithm: JwtAlgorithm = "HS256"
    """The one algorithm accepted; never taken from the token itself."""
    jwt_public_key: str | None = None
    """PEM public key for RS*/ES*/EdDSA tokens signed by the auth service; checked at start."""
    jwt_jwks_url: str | None = None
    """The auth service's JWKS (``https://auth.example/.well-known/jwks.json``): the keys of
    RS*/ES*/EdDSA tokens, chosen by each token's ``kid``; instead of ``jwt_public_key``."""
    jwt_jwks_cache_s: Seconds = 300.0
    """How long the JWKS is kept before it is fetched again."""
    jwt_jwks_cooldown_s: Seconds = 30.0
    """Least time between two fetches of the JWKS caused by a token whose ``kid`` is unknown (a
    rotated key): at most one such fetch per period, however many such tokens arrive."""
    jwt_issuer: str | None = None
    """When set, every token must carry this ``iss`` claim."""
    jwt_audience: str | None = None
    """When set, every token must carry this ``aud`` claim (or a list holding it)."""
    allow_dev_secret: bool = False
    """Start on a non-loopback ``host`` with the built-in development secret anyway (for a
    throwaway demo): without it such a node refuses to start."""
    allowed_origins: tuple[str, ...] = ()
    """Origins allowed to open a WebSocket (``https://app.example``); empty: any."""
    max_content_bytes: Positive = 10_000
    """Largest message content accepted, in bytes of UTF-8."""
    rate_limit_per_minute: Positive = 100
    """Messages one user may send per minute, across devices."""
    max_connections_per_ip: Positive = 10
    """Concurrent WebSockets from one client address."""
    gc_thresholds: tuple[Positive, Positive, Positive] = DEFAULT_THRESHOLDS
    """The cyclic garbage collector's thresholds (``gc.set_threshold``), set once the node is
    up; see :mod:`whispr.gc_policy` for why they are higher than CPython's (700, 10, 10)."""
    listen_backlog: Positive = 4096
    """Connections the kernel holds before the node accepts them (capped by the kernel's
    ``net.core.somaxconn``). When a node restarts, its clients reconnect to the others all at
    once; a connection that finds the queue full waits for the client's SYN retry (1 s, then
    3 s...)."""
    heartbeat_interval_s: Seconds = 30.0
    """How often clients are expected to send a heartbeat."""
    heartbeat_timeout_s: Seconds = 90.0
    """A connection silent this long is closed."""
    max_frame_bytes: Positive = 65_536
    """Largest WebSocket message accepted; larger ones close the connection with 1009."""
    outbound_buffer_bytes: Positive = 1_048_576
    """Bytes waiting to be sent to a client that does not read before it is closed (1013)."""
    inbound_credits: Positive = 32
    """Client messages taken ahead of their handling before the socket stops being read."""
    position_check_s: Seconds = POSITION_CHECK_S
    """How often the node checks the conversations its clients follow against the store: the
    longest a member waits for a committed message whose live event was lost (its node died
    between commit and publish, or Redis was away) when no later message reveals it."""
    grpc_port: Port = 50051
    """gRPC port for sibling services; 0 disables the gRPC server."""
    http_port: Port = 4080
    """HTTP API port (``/api/v1``, its OpenAPI document and documentation page); 0 disables
    it. A port of its own rather than the gateway's: the WebSocket hot path stays on the
    ``websockets`` server untouched, and browsers open a WebSocket across origins anyway."""
    http_max_body_bytes: Positive = 1_048_576
    """Largest HTTP API request body accepted; a larger one is refused with 413."""
    grpc_tokens: tuple[str, ...] = ()
    """Callers of the gRPC API as ``service=token`` pairs; a call must bear one token."""
    grpc_tls_cert: str | None = None
    """PEM certificate chain of the gRPC server; with ``grpc_tls_key``, serves TLS."""
    grpc_tls_key: str | None = None
    """PEM private key of the gRPC server."""
    grpc_tls_client_ca: str | None = None
    """PEM CA bundle: when set, callers must present a client certificate it signed (mTLS)."""
    user_service_url: str | None = None
    """The user service (``host:port``): is a user active, checked at connect."""
    notification_service_url: str | None = None
    """The notification service: pushes for members with no connected device."""
    media_service_url: str | None = None
    """The media service: attachment references validated before a media message."""
    moderation_service_url: str | None = None
    """The moderation service: content checked before a message is accepted."""
    sibling_token: str | None = None
    """Bearer token this node presents to sibling services."""
    sibling_tls_ca: str | None = None
    """PEM CA bundle to verify sibling services over TLS; None: plaintext (inside the mesh)."""
    sibling_deadline_s: Seconds = 2.0
    """Deadline of one call to a sibling service, retries included."""
    sibling_breaker_failures: Positive = 5
    """Consecutive failures of a sibling that open its circuit breaker."""
    sibling_breaker_open_s: Seconds = 30.0
    """How long an open breaker refuses calls before letting trial calls through."""
    sibling_breaker_trials: Positive = 3
    """Successful trial calls that close a half-open breaker."""
    user_active_cache_s: Seconds = 10.0
    """How long a user service answer (active or not) is reused."""
    moderation_policy: ModerationPolicy = "fail_open"
    """When moderation cannot answer: ``fail_open`` accepts, ``fail_closed`` refuses."""
    log_format: LogFormat = msgspec.field(default_factory=_default_log_format)
    """``console`` for people, ``json`` for collectors; json when stderr is no TTY."""
    log_level: LogLevel = "info"
    """Least severe level logged, for the node and the libraries it uses."""
    shutdown_deadline_s: Seconds = 25.0
    """On SIGTERM, time allowed to drain and stop the tree before exiting anyway."""
    compression: Compression = "off"
    """WebSocket per-message compression; deflate costs memory per connection."""
    chaos_hooks: bool = False
    """Test only: SIGUSR1 crashes one random conversation actor, SIGUSR2 one random connection
    actor (:mod:`whispr.chaos_hooks`), for the chaos run. Off, the signals are logged and
    ignored. Refused unless ``host`` is a loopback address."""

    # -- per-event rate limits and suspicious activity (whispr/gateway/limits.py, abuse.py) --
    rate_limit_edit_per_minute: Positive = 60
    """Edits, deletions and pins one user may make per minute, across devices."""
    rate_limit_react_per_minute: Positive = 120
    """Reactions one user may add or remove per minute, across devices."""
    rate_limit_typing_per_minute: Positive = 120
    """``typing_start`` and ``typing_stop`` events one user may send per minute."""
    rate_limit_join_per_minute: Positive = 300
    """Conversation joins one user may make per minute (a reconnect rejoins them all)."""
    rate_limit_create_conversation_per_minute: Positive = 20
    """Conversations one user may create per minute."""
    rate_limit_bundle_fetch_per_minute: Positive = 60
    """Key bundle fetches one user may make per minute (the budget is kept for them)."""
    typing_timeout_s: Seconds = 6.0
    """A ``typing_start`` not renewed within this time ends: members get ``typing`` false."""
    abuse_window_s: Seconds = 60.0
    """The window over which the suspicious patterns below are counted."""
    abuse_duplicates: Positive = 5
    """Distinct conversations the same content may be sent to within the window; one more
    is suspicious."""
    abuse_creations: Positive = 10
    """Conversations one user may create within the window before it is suspicious."""
    abuse_joins: Positive = 150
    """Conversation joins within the window before it is suspicious."""
    abuse_refusals: Positive = 20
    """Refused actions (rate limits, rights) within the window before it is suspicious."""
    abuse_duplicates_response: AbuseResponse = "throttle"
    """What the node does when content is sent to too many conversations: ``record`` (the
    audit record alone), ``throttle``, ``report`` (to the moderation service), ``disconnect``."""
    abuse_creations_response: AbuseResponse = "throttle"
    """The response to a conversation creation flood (as for duplicates)."""
    abuse_joins_response: AbuseResponse = "throttle"
    """The response to a join flood (as for duplicates)."""
    abuse_refusals_response: AbuseResponse = "disconnect"
    """The response to repeated refused actions (as for duplicates)."""
    abuse_throttle_s: Seconds = 60.0
    """How long a throttled user's limited events are all refused (``rate_limited``)."""

    def __post_init__(self) -> None:
        """Check the rules that involve several fields (each field is checked on load)."""
        if self.heartbeat_timeout_s <= self.heartbeat_interval_s:
            raise ConfigError(
                env_var("heartbeat_timeout_s"),
                f"must be greater than WHISPR_HEARTBEAT_INTERVAL_S "
                f"({self.heartbeat_interval_s:g}), got {self.heartbeat_timeout_s:g}",
            )
        if self.jwt_algorithm in _ASYMMETRIC_ALGORITHMS:
            if not self.jwt_public_key and not self.jwt_jwks_url:
                raise ConfigError(
                    env_var("jwt_public_key"),
                    f"is required when WHISPR_JWT_ALGORITHM is {self.jwt_algorithm} "
                    "(the PEM public key of the token issuer), unless WHISPR_JWT_JWKS_URL is set",
                )
            if self.jwt_public_key:
                _check_public_key(self.jwt_public_key, self.jwt_algorithm)
        elif self.jwt_jwks_url:
            raise ConfigError(
                env_var("jwt_jwks_url"),
                f"needs an asymmetric WHISPR_JWT_ALGORITHM (RS256, ES256...), not "
                f"{self.jwt_algorithm}: a JWKS publishes public keys",
            )
        if (self.grpc_tls_cert is None) != (self.grpc_tls_key is None):
            raise ConfigError(
                env_var("grpc_tls_key" if self.grpc_tls_cert else "grpc_tls_cert"),
                "WHISPR_GRPC_TLS_CERT and WHISPR_GRPC_TLS_KEY are set together",
            )
        if self.grpc_tls_client_ca is not None and self.grpc_tls_cert is None:
            raise ConfigError(
                env_var("grpc_tls_client_ca"),
                "mTLS needs the server's own certificate: set WHISPR_GRPC_TLS_CERT and _KEY",
            )
        if self.chaos_hooks and not _is_loopback(self.host):
            raise ConfigError(
                env_var("chaos_hooks"),
                f"is for tests on one machine: WHISPR_HOST must be a loopback address, "
                f"got {self.host!r}",
            )
        if self.grpc_port and self.port and self.grpc_port == self.port:
            raise ConfigError(
                env_var("grpc_port"),
                f"must differ from WHISPR_PORT (both are {self.port})",
            )
        for other in ("port", "grpc_port"):
            if self.http_port and self.http_port == getattr(self, other):
                raise ConfigError(
                    env_var("http_port"),
                    f"must differ from {env_var(other)} (both are {self.http_port})",
                )

    def __repr__(self) -> str:
        """Like the default, with secrets (and URLs, which may hold passwords) masked."""
        parts = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            shown = "'***'" if name in _SECRET_FIELDS and value is not None else repr(value)
            parts.append(f"{name}={shown}")
        return f"Settings({', '.join(parts)})"

    __str__ = __repr__

    @property
    def embedded_store(self) -> bool:
        """True when the node runs on SQLite rather than PostgreSQL."""
        return self.database_url is None

    @property
    def in_process_broker(self) -> bool:
        """True when the node broadcasts in-process rather than through Redis."""
        return self.redis_url is None

    @property
    def uses_dev_jwt_secret(self) -> bool:
        """True when tokens are checked with the public development secret."""
        return self.jwt_algorithm not in _ASYMMETRIC_ALGORITHMS and (
            self.jwt_secret == DEV_JWT_SECRET
        )

    def check_exposure(self) -> None:
        """Refuse to serve tokens anyone can forge to anyone who can reach the node.

        A node on a non-loopback ``host`` (its gateway, ``/metrics`` and gRPC all listen
        there) with the built-in development secret accepts tokens anybody can sign, for any
        user. Unless ``allow_dev_secret`` says the operator knows, that is an error at start.

        Raises:
            ConfigError: naming WHISPR_JWT_SECRET and what to do.
        """
        if self.uses_dev_jwt_secret and not self.allow_dev_secret and not is_loopback(self.host):
            raise ConfigError(
                env_var("jwt_secret"),
                f"is not set, and the node would listen on {self.host} (WHISPR_HOST), not "
                "loopback: anyone who reaches it could forge tokens with the built-in "
                "development secret. Set WHISPR_JWT_SECRET (or WHISPR_JWT_ALGORITHM with "
                "WHISPR_JWT_PUBLIC_KEY or WHISPR_JWT_JWKS_URL), or WHISPR_ALLOW_DEV_SECRET=1 "
                "for a throwaway node",
            )

    def startup_warnings(self, env: Mapping[str, str] | None = None) -> list[str]:
        """What an operator must hear about at start: unsafe but allowed settings, and
        ``WHISPR_*`` variables that set nothing (misspelt ones, with a suggestion); ``env``
        is the environment (``os.environ`` when None)."""
        warnings: list[str] = unknown_variables(os.environ if env is None else env)
        if self.uses_dev_jwt_secret:
            warnings.append(
                "WHISPR_JWT_SECRET is not set: tokens are checked with the built-in "
                "development secret, so anyone can forge them. Set WHISPR_JWT_SECRET "
                "before exposing this node."
            )
        elif (
            self.jwt_algorithm not in _ASYMMETRIC_ALGORITHMS and len(self.jwt_secret.encode()) < 32
        ):
            warnings.append(
                f"WHISPR_JWT_SECRET is shorter than 32 bytes: weak for {self.jwt_algorithm}."
            )
        return warnings

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied, each validated as on load.

        Raises:
            ConfigError: a value is invalid, or names no setting.
        """
        values = msgspec.structs.asdict(self)
        for name, raw in changes.items():
            if name not in values:
                raise ConfigError(name, _unknown_key_message(name))
            values[name] = _convert(name, raw, variable=name)
        return _build(values)


_FIELDS: Final = {info.name: info for info in msgspec.structs.fields(Settings)}

#: ``WHISPR_*`` variables that are not settings, read by the tools around the node.
_TOOL_VARIABLES: Final = frozenset(
    {
        CONFIG_ENV_VAR,
        "WHISPR_REQUIRE_SERVICES",
        "WHISPR_SERVICES_FIX_AUTH",
        "WHISPR_TEST_DATABASE_URL",
        "WHISPR_TEST_REDIS_URL",
        "WHISPR_BENCH_DATABASE_URL",
        "WHISPR_BENCH_REDIS_URL",
        "WHISPR_PHOENIX_JS",
    }
)


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """A warning for each ``WHISPR_*`` variable of ``env`` that sets nothing, with the
    closest setting's variable when one is close (a typo is the usual cause)."""
    known = {env_var(name) for name in _FIELDS}
    warnings = []
    for variable in sorted(env):
        if not variable.startswith(ENV_PREFIX) or variable in known | _TOOL_VARIABLES:
            continue
        close = difflib.get_close_matches(variable, sorted(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        warnings.append(f"{variable} is not a setting and is ignored{hint}")
    return warnings


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) reaches only this machine: every address it
    resolves to is a loopback one. An unresolvable name counts as not loopback."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(address).split("%", 1)[0]).is_loopback for address in addresses
    )


def _check_public_key(pem: str, algorithm: str) -> None:
    """Raise a one-line :class:`ConfigError` unless ``pem`` is a public key for ``algorithm``."""
    variable = env_var("jwt_public_key")
    if "PRIVATE KEY" in pem:
        raise ConfigError(variable, "is a private key; give the issuer's public key")
    try:
        jwt.get_algorithm_by_name(algorithm).prepare_key(pem)
    except (ValueError, TypeError, jwt.InvalidKeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            variable, f"is not a PEM public key usable with {algorithm}: {first}"
        ) from None


# Fields that default to None ("not configured"): an empty value means None.
_OPTIONAL_FIELDS: Final = frozenset(name for name, info in _FIELDS.items() if info.default is None)


def _unknown_key_message(name: str) -> str:
    close = difflib.get_close_matches(name, list(_FIELDS), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"is not a setting{hint}; settings are: {', '.join(_FIELDS)}"


def _expectation(tp: Any) -> str:
    """What a value of type ``tp`` looks like, in words for an error message."""
    meta: msgspec.Meta | None = None
    if get_origin(tp) is Annotated:
        tp, *extras = get_args(tp)
        meta = next((extra for extra in extras if isinstance(extra, msgspec.Meta)), None)
    if get_origin(tp) in (Union, type(int | None)):
        inner = [arg for arg in get_args(tp) if arg is not type(None)]
        return _expectation(inner[0]) + " (or empty for none)"
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(arg) for arg in get_args(tp))
    if get_origin(tp) is tuple:
        items = get_args(tp)
        if len(items) == 2 and items[1] is Ellipsis:
            return "a list of strings (comma-separated in the environment)"
        each = " and ".join(sorted({_expectation(item) for item in items}))
        return f"{len(items)} values, each {each} (comma-separated in the environment)"
    words = {int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))
    bounds: list[str] = []
    if meta is not None:
        if meta.ge is not None:
            bounds.append(f">= {meta.ge}")
        if meta.gt is not None:
            bounds.append(f"> {meta.gt}")
        if meta.le is not None:
            bounds.append(f"<= {meta.le}")
        if meta.min_length:
            words = "a non-empty string"
        if meta.pattern is not None:
            bounds.append(f"matching {meta.pattern}")
    return " ".join([words, " and ".join(bounds)]).strip()


def _describe(value: object, name: str) -> str:
    return "(hidden)" if name in _SECRET_FIELDS else repr(value)


def _check_url(schemes: tuple[str, ...], what: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        parts = urlsplit(value)
        if parts.scheme not in schemes:
            return f"must be a {what} URL ({' or '.join(s + '://' for s in schemes)}...)"
        if parts.scheme != "unix" and not parts.hostname and not parts.path:
            return f"must name a host: {what} URL without a host"
        return None

    return check


def _check_origin(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        return f"each origin must look like https://host[:port], got {value!r}"
    return None


# Checks beyond the type: return a message when the value is wrong.
_EXTRA_CHECKS: Final[dict[str, Callable[[str], str | None]]] = {
    "database_url": _check_url(("postgresql", "postgres"), "PostgreSQL"),
    "redis_url": _check_url(("redis", "rediss", "unix"), "Redis"),
    "jwt_jwks_url": _check_url(("https", "http"), "JWKS"),
}


def _convert(name: str, raw: object, *, variable: str) -> Any:
    """``raw`` (an environment string or a TOML value) as the type of field ``name``."""
    info = _FIELDS[name]
    value = raw
    if isinstance(value, str):
        value = value.strip()
        if name in _LOWERCASE_FIELDS:
            value = value.lower()
        if get_origin(info.type) is tuple:
            value = [item.strip() for item in value.split(",") if item.strip()]
    if value == "" and name in _OPTIONAL_FIELDS:
        return None
    try:
        converted = msgspec.convert(value, info.type, strict=False)
    except msgspec.ValidationError:
        expected = _expectation(info.type)
        raise ConfigError(variable, f"expected {expected}, got {_describe(raw, name)}") from None
    if name == "grpc_tokens":
        for pair in converted:
            caller, _, token = pair.partition("=")
            if not caller.strip() or not token.strip():
                raise ConfigError(variable, "each entry must look like service=token")
    if name == "allowed_origins":
        for origin in converted:
            problem = _check_origin(origin)
            if problem:
                raise ConfigError(variable, problem)
    check = _EXTRA_CHECKS.get(name)
    if check is not None and converted is not None:
        problem = check(converted)
        if problem:
            raise ConfigError(variable, problem)
    return converted


def _build(values: Mapping[str, Any]) -> Settings:
    # Direct construction: every value has been converted and checked by
    # _convert already, and __post_init__ checks the cross-field rules.
    return Settings(**values)


def _read_file(path: Path, variable: str) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(variable, f"configuration file {str(path)!r} not found") from None
    except OSError as exc:
        raise ConfigError(variable, f"cannot read {str(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(variable, f"{str(path)!r} is not valid TOML: {exc}") from None
    # A [whispr] table is accepted too, so the settings can share a file.
    section = data.get("whispr", data)
    if not isinstance(section, dict):
        raise ConfigError(variable, f"{str(path)!r}: [whispr] must be a table")
    return section


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Read the settings: defaults, then the TOML file, then ``WHISPR_*`` variables.

    Args:
        path: a TOML file (the ``--config`` flag); when None, ``$WHISPR_CONFIG``
            if set, else no file.
        env: the environment to read (``os.environ`` when None); tests pass
            their own.

    Raises:
        ConfigError: naming the variable, file key or file that is wrong.
    """
    environ = os.environ if env is None else env
    values: dict[str, Any] = {}

    file_variable = "--config"
    if path is None and environ.get(CONFIG_ENV_VAR, "").strip():
        path = environ[CONFIG_ENV_VAR].strip()
        file_variable = CONFIG_ENV_VAR
    if path is not None:
        file_path = Path(path)
        for key, raw in _read_file(file_path, file_variable).items():
            if key not in _FIELDS:
                raise ConfigError(f"{key} (in {file_path})", _unknown_key_message(key))
            converted = _convert(key, raw, variable=f"{key} (in {file_path})")
            if converted is not None:
                values[key] = converted

    for name in _FIELDS:
        variable = env_var(name)
        raw_env = environ.get(variable)
        if raw_env is None or raw_env.strip() == "":
            continue
        values[name] = _convert(name, raw_env, variable=variable)

    return _build(values)
