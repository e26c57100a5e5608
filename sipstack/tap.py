# -*- test-case-name: tests.test_tap -*-
"""
C{twistd sip}: a SIP registrar and stateful proxy server.

The plugin (C{twisted/plugins/sipstack_plugin.py}) names this module lazily,
so C{twistd --help} imports nothing of sipstack.  L{Options} reads the
command line and an optional TOML file (C{--config}); the command line wins
over the file, the file over the defaults.  L{makeService} builds the
server with L{build_server}:

  - a L{SIPStack} in proxy mode (a registrar and proxy is not a user agent
    for the dialogs it sees) listening as C{--listen} says;
  - a L{Registrar} over the location store (SQLite in the data directory
    by default), with digest authentication when C{--users} is given;
  - a L{Proxy} (RFC 3261 section 16) over the registrar's bindings, with
    the same authentication, record-routing on its TLS side a name its
    TLS certificate names (L{ProxySettings.tls_name}, from L{_tls_name});
  - the stack's request handler, a L{ServerCore}: REGISTER to the
    registrar, everything else to the proxy.

With no options at all it listens on UDP and TCP port 5060 and TLS port
5061 of 127.0.0.1, keeps bindings in C{./var/location.sqlite3}, and makes a
self-signed certificate in C{./var} on the first start.

Garbage collection (C{--gc}): a SIP server keeps many objects alive for a
while (bindings, transactions, dialogs), and CPython's collector, with its
default thresholds, walks the young ones every 700 allocations and all of
them ever more often as they pile up: at a few thousand requests a second
that was a third of the CPU and full collections of over half a second,
long enough for UDP clients to retransmit.  So C{makeService} sets larger
thresholds (L{GC_THRESHOLDS}: a young collection every 50,000 allocations
rather than every 700; memory in reference cycles waits a little longer to
be freed) and, once the reactor runs, moves everything made at start-up
(modules, classes, configuration) out of the collector's sight with
C{gc.freeze()}.  C{--gc default} keeps CPython's settings.
"""

from __future__ import annotations

import gc
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from twisted.logger import Logger
from twisted.python import usage

from sipstack.config import StackConfig, TLSPolicy
from sipstack.services.digest import ALGORITHMS, Authenticator, Users, UsersFileError, load_users
from sipstack.services.location import LocationStore, LocationStoreService, MemoryLocationStore
from sipstack.services.location_sqlite import SQLiteLocationStore
from sipstack.services.proxy import Proxy, ProxySettings
from sipstack.services.registrar import Registrar, RegistrarPolicy, canonical_host
from sipstack.services.server import OrderedMultiService, ServerCore, SIPStackService, build_core
from sipstack.stack import SIPStack
from sipstack.transport.certificates import ensure_certificate
from sipstack.transport.descriptions import ListenerDescription, parse_listener
from sipstack.transport.identity import sip_identities

__all__ = [
    "DEFAULT_LISTEN",
    "GC_THRESHOLDS",
    "ServerConfig",
    "Options",
    "SIPServer",
    "build_server",
    "makeService",
    "tune_gc",
]

#: The listeners of a server started with no C{--listen}: loopback only, so
#: that a first start exposes nothing.
DEFAULT_LISTEN: Final = ("udp:5060:interface=127.0.0.1", "tcp:5060:interface=127.0.0.1", "tls:5061:interface=127.0.0.1")

#: The collector thresholds C{twistd sip} runs with (C{gc.set_threshold}):
#: see the module description.
GC_THRESHOLDS: Final = (50_000, 20, 100)

_DEFAULTS: Final[Mapping[str, Any]] = {
    "gc": "tuned",
    "digest-algorithms": "SHA-256,MD5",
    "data-dir": "var",
    "tls-policy": TLSPolicy.OPPORTUNISTIC.value,
    "min-expires": 60,
    "max-expires": 7200,
    "max-bindings": 16,
    "grace": 8.0,
}
#: Options whose value is a file or directory: relative ones in a
#: configuration file are relative to that file.
_PATH_OPTIONS: Final = frozenset({"data-dir", "users", "certificate", "private-key"})
_INTEGER_OPTIONS: Final = frozenset({"default-expires", "min-expires", "max-expires", "max-bindings"})
_SECRET_FILE: Final = "digest-secret"

_log = Logger()


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """
    Everything a server is built from, checked (L{Options} makes one).

    @ivar listen: listener descriptions; a C{tls:} one without C{certKey}
        gets the certificate below.
    @ivar domains: the SIP domains served; empty for every domain.
    @ivar data_dir: where the location database, the generated certificate
        and the nonce secret live.
    @ivar users: the users for digest authentication, or L{None} for none.
    @ivar realm: the authentication realm.
    @ivar digest_algorithms: the digest algorithms offered, in order.
    @ivar location: C{"memory"} or C{"sqlite:PATH"}.
    @ivar tls_policy: how the stack uses TLS for what it sends.
    @ivar certificate: the PEM certificate (chain) for TLS listeners, or
        L{None} for a self-signed one made in C{data_dir}.
    @ivar private_key: its key (L{None}: in the certificate file).
    @ivar policy: the registrar's expiry and domain rules.
    @ivar grace: seconds the stack may take to finish its transactions when
        the server stops.
    @ivar gc_thresholds: the garbage collector thresholds of the server
        process, and whether to freeze what start-up made (L{tune_gc});
        L{None} to keep CPython's settings.
    """

    listen: tuple[str, ...] = DEFAULT_LISTEN
    domains: tuple[str, ...] = ()
    data_dir: str = "var"
    users: Users | None = None
    realm: str = "sipstack"
    digest_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    location: str = "sqlite:var/location.sqlite3"
    tls_policy: TLSPolicy = TLSPolicy.OPPORTUNISTIC
    certificate: str | None = None
    private_key: str | None = None
    policy: RegistrarPolicy = field(default_factory=RegistrarPolicy)
    grace: float = 8.0
    gc_thresholds: tuple[int, int, int] | None = GC_THRESHOLDS

    @property
    def server_name(self) -> str:
        """The name a generated certificate is made for: the first domain, else C{localhost}."""
        return self.domains[0].strip("[]") if self.domains else "localhost"


def _escape(path: str) -> str:
    """A path as a value of a listener description (colons and backslashes escaped)."""
    return path.replace("\\", "\\\\").replace(":", "\\:")


def _check_listener(description: str) -> ListenerDescription:
    """
    Parse a listener description (a C{tls:} one may lack its certificate
    until L{build_server} gives it one).

    @raise ValueError: malformed.
    """
    probe = description
    if description.lower().startswith("tls:") and "certKey=" not in description:
        probe += ":certKey=placeholder.pem"
    return parse_listener(probe)


def _check_location(text: str) -> str:
    if text == "memory":
        return text
    kind, colon, rest = text.partition(":")
    if kind == "sqlite" and colon and rest:
        return text
    if kind == "redis":
        raise ValueError("the redis: location store is not available yet; use sqlite:PATH or memory")
    raise ValueError(f"bad location store {text!r}: use sqlite:PATH or memory")


class Options(usage.Options):
    """
    The options of C{twistd sip}.  After parsing, L{config} holds the
    checked L{ServerConfig}.
    """

    synopsis = "[options]"
    #: Shown after the options, as written (Twisted would rewrap a C{longdesc} into one paragraph).
    longdesc = ""
    help_text = """\
A SIP registrar and stateful proxy on sipstack.

With no options it listens on udp:5060, tcp:5060 and tls:5061 on 127.0.0.1,
accepts registrations for any domain without authentication, keeps bindings
in ./var/location.sqlite3 and generates a self-signed TLS certificate in
./var on its first start.

Listener descriptions: udp:PORT, tcp:PORT and tls:PORT, each with
:interface=ADDRESS (127.0.0.1 unless given; 0.0.0.0 or :: for all), and for
tls: optionally :certKey=PEM:privateKey=PEM (else --certificate, else the
self-signed one).  Repeat --listen for several.

Every option may also be set in a TOML file given with --config, under its
long name (listen and domain take lists); the command line wins over the
file.  Relative paths in the file are relative to the file.

Example:
  twistd -n sip --domain example.com --users /etc/sipstack/users \\
      --listen udp:5060:interface=0.0.0.0 --listen tls:5061:interface=0.0.0.0

Users files hold HA1 hashes; make a line with
  python -m sipstack.services.digest USER REALM
"""

    optParameters = [  # noqa: RUF012  # Twisted reads these class attributes
        ["config", "c", None, "A TOML file with any of these options."],
        ["data-dir", "d", None, "The data directory: location database, generated certificate, nonce secret. [var]"],
        ["users", "u", None, "Users file (user:realm:MD5-HA1:SHA-256-HA1); enables digest authentication."],
        ["realm", None, None, "The authentication realm. [the first --domain, or the users file's only realm]"],
        [
            "digest-algorithms",
            None,
            None,
            "Digest algorithms offered, in order (RFC 8760): SHA-256, MD5 or both. Phones that read only the "
            "first challenge need the one they know first: MD5 for many old phones and SIPp. [SHA-256,MD5]",
        ],
        ["location", None, None, "Location store: sqlite:PATH or memory. [sqlite:DATA-DIR/location.sqlite3]"],
        [
            "tls-policy",
            None,
            None,
            "TLS for requests the server sends: strict, opportunistic, rfc3263 or off. [opportunistic]",
        ],
        ["certificate", None, None, "PEM certificate (chain) for tls: listeners. [self-signed, made in DATA-DIR]"],
        ["private-key", None, None, "PEM private key of --certificate. [in the certificate file]"],
        [
            "default-expires",
            None,
            None,
            "Registration expiry when the phone asks none, in seconds. [3600, within the bounds below]",
        ],
        ["min-expires", None, None, "Shorter registrations get 423 Interval Too Brief, in seconds. [60]"],
        ["max-expires", None, None, "Longer registrations are shortened to this, in seconds. [7200]"],
        ["max-bindings", None, None, "The most contacts one address-of-record may register. [16]"],
        ["grace", None, None, "Seconds to finish open transactions when stopping. [8]"],
        [
            "gc",
            None,
            None,
            "Garbage collection: tuned (larger thresholds, start-up objects frozen), default (CPython's), "
            "or three thresholds as G0,G1,G2. [tuned]",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # unannotated in Twisted 26.10
        self["listen"] = []
        self["domain"] = []
        self.config = ServerConfig()

    def opt_listen(self, description: str) -> None:
        """A listener: udp:PORT, tcp:PORT or tls:PORT, with :interface=ADDRESS (repeatable). [see below]"""
        self["listen"].append(description)

    opt_l = opt_listen

    def getUsage(self, width: int | None = None) -> str:
        return str(super().getUsage(width)) + "\n" + self.help_text

    def opt_domain(self, domain: str) -> None:
        """A SIP domain served (repeatable). [any domain]"""
        self["domain"].append(domain)

    def postOptions(self) -> None:
        values = self._merged()
        try:
            self.config = _config_from(values)
        except (ValueError, OSError) as error:
            raise usage.UsageError(str(error)) from None

    def _merged(self) -> dict[str, Any]:
        """The command line over the configuration file over the defaults."""
        values: dict[str, Any] = dict(_DEFAULTS)
        if self["config"] is not None:
            values.update(_read_config_file(self["config"]))
        for name in _OPTION_NAMES:
            if self[name] is not None:
                values[name] = self[name]
        for name in ("listen", "domain"):
            if self[name]:
                values[name] = list(self[name])
        return values


#: The single-valued options a configuration file may set (all but C{config}).
_OPTION_NAMES: Final = tuple(str(entry[0]) for entry in Options.optParameters if entry[0] != "config")


def _read_config_file(path: str) -> dict[str, Any]:
    """
    The options in a TOML file, names as on the command line (C{_} may
    stand for C{-}); relative paths made relative to the file.

    @raise usage.UsageError: unreadable, not TOML, or an unknown option or
        value of the wrong type.
    """
    try:
        with open(path, "rb") as file:
            table = tomllib.load(file)
    except OSError as error:
        raise usage.UsageError(f"cannot read {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise usage.UsageError(f"{path}: {error}") from None
    known = set(_OPTION_NAMES)
    base = Path(path).resolve().parent
    values: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("_", "-")
        if name in ("listen", "domain"):
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise usage.UsageError(f"{path}: {key} must be a list of strings")
        elif name not in known:
            raise usage.UsageError(f"{path}: unknown option {key!r}")
        elif name in _INTEGER_OPTIONS or name == "grace":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise usage.UsageError(f"{path}: {key} must be a number")
        elif not isinstance(value, str):
            raise usage.UsageError(f"{path}: {key} must be a string")
        if name in _PATH_OPTIONS:
            values[name] = str(base / os.path.expanduser(value))
        elif name == "location" and value.startswith("sqlite:"):
            values[name] = "sqlite:" + str(base / os.path.expanduser(value.removeprefix("sqlite:")))
        else:
            values[name] = value
    return values


def _number(values: Mapping[str, Any], name: str, kind: type[int] | type[float]) -> Any:
    value = values[name]
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"--{name} must be a number, not {value!r}") from None
    if kind is int and number != float(value):
        raise ValueError(f"--{name} must be a whole number, not {value!r}")
    return number


def _config_from(values: Mapping[str, Any]) -> ServerConfig:
    """
    The L{ServerConfig} of merged option values.

    @raise ValueError: a bad value; the message names the option.
    @raise OSError: the users file cannot be read.
    """
    listen = tuple(values.get("listen") or DEFAULT_LISTEN)
    local_hosts = {"localhost", "127.0.0.1", "::1"}
    for description in listen:
        try:
            interface = _check_listener(description).interface
        except ValueError as error:
            raise ValueError(f"--listen {description}: {error}") from None
        if interface not in ("0.0.0.0", "::"):
            local_hosts.add(interface)
    try:
        domains = tuple(dict.fromkeys(canonical_host(domain) for domain in values.get("domain") or ()))
    except ValueError as error:
        raise ValueError(f"--domain: {error}") from None
    try:
        tls_policy = TLSPolicy(str(values["tls-policy"]).lower())
    except ValueError:
        choices = ", ".join(policy.value for policy in TLSPolicy)
        raise ValueError(f"--tls-policy must be one of {choices}, not {values['tls-policy']!r}") from None
    data_dir = str(values["data-dir"])
    location = _check_location(str(values.get("location") or f"sqlite:{os.path.join(data_dir, 'location.sqlite3')}"))
    certificate, private_key = values.get("certificate"), values.get("private-key")
    if private_key is not None and certificate is None:
        raise ValueError("--private-key needs --certificate")
    users: Users | None = None
    if values.get("users") is not None:
        try:
            users = load_users(values["users"])
        except UsersFileError as error:
            raise ValueError(f"--users: {error}") from None
        except OSError as error:
            raise ValueError(f"--users: cannot read {values['users']}: {error.strerror}") from None
    realm = values.get("realm")
    if realm is None:
        if domains:
            realm = domains[0].strip("[]")
        elif users is not None and len(users.realms()) == 1:
            (realm,) = users.realms()
        elif users is not None:
            raise ValueError("--realm is needed: the users file has several realms and no --domain was given")
        else:
            realm = "sipstack"
    if users is not None and realm not in users.realms():
        raise ValueError(f"no user of the users file is in realm {realm!r} (give --realm)")
    min_expires, max_expires = _number(values, "min-expires", int), _number(values, "max-expires", int)
    if values.get("default-expires") is None:
        # An hour, unless the bounds given exclude it.
        default_expires = max(min_expires, min(3600, max_expires))
    else:
        default_expires = _number(values, "default-expires", int)
    policy = RegistrarPolicy(
        domains=frozenset(domains),
        local_hosts=frozenset(local_hosts),
        default_expires=default_expires,
        min_expires=min_expires,
        max_expires=max_expires,
        max_bindings=_number(values, "max-bindings", int),
    )
    grace = _number(values, "grace", float)
    if grace < 0:
        raise ValueError("--grace must not be negative")
    gc_thresholds = _gc_thresholds(str(values["gc"]))
    algorithms = tuple(name.strip().upper() for name in str(values["digest-algorithms"]).split(",") if name.strip())
    unknown = [name for name in algorithms if name not in ALGORITHMS]
    if unknown or not algorithms or len(set(algorithms)) != len(algorithms):
        raise ValueError(f"--digest-algorithms: give SHA-256, MD5 or both, not {values['digest-algorithms']!r}")
    return ServerConfig(
        listen=listen,
        domains=domains,
        data_dir=data_dir,
        users=users,
        realm=str(realm),
        digest_algorithms=algorithms,
        location=location,
        tls_policy=tls_policy,
        certificate=certificate,
        private_key=private_key,
        policy=policy,
        grace=grace,
        gc_thresholds=gc_thresholds,
    )


def _gc_thresholds(text: str) -> tuple[int, int, int] | None:
    """The value of C{--gc}: C{tuned}, C{default}, or C{G0,G1,G2}."""
    text = text.strip().lower()
    if text == "tuned":
        return GC_THRESHOLDS
    if text == "default":
        return None
    parts = text.split(",")
    try:
        numbers = tuple(int(part) for part in parts)
    except ValueError:
        numbers = ()
    if len(numbers) != 3 or not all(number > 0 for number in numbers):
        raise ValueError(f"--gc must be tuned, default or three positive whole numbers G0,G1,G2, not {text!r}")
    return numbers[0], numbers[1], numbers[2]


def tune_gc(thresholds: tuple[int, int, int] | None, reactor: Any) -> None:
    """
    Set the collector's C{thresholds} for this process and, once C{reactor}
    runs, collect once and freeze what survived (start-up's modules,
    classes and configuration), so that later collections skip it.  Does
    nothing for L{None}.  Process-wide: only C{makeService} calls it.
    """
    if thresholds is None:
        return
    gc.set_threshold(*thresholds)

    def freeze() -> None:
        gc.collect()
        gc.freeze()

    reactor.callWhenRunning(freeze)


class SIPServer(OrderedMultiService):
    """
    The service C{twistd sip} runs: the location store's service, then the
    stack's (so the stack stops first, and the store closes after the last
    REGISTER was answered).

    @ivar stack: the stack.
    @ivar store: the location store.
    @ivar registrar: the registrar.
    @ivar core: the stack's request handler; C{core.proxy} is the proxy.
    @ivar listening: the stack's service; C{listening.ready} fires with the
        bound addresses.
    @ivar proxy: the proxy, if any.
    """

    def __init__(
        self,
        stack: SIPStack,
        store: LocationStore,
        registrar: Registrar,
        core: ServerCore,
        listening: SIPStackService,
        *,
        proxy: Proxy | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # unannotated in Twisted 26.10
        self.stack = stack
        self.store = store
        self.registrar = registrar
        self.core = core
        self.listening = listening
        self.proxy = proxy


def _secret(data_dir: Path) -> bytes:
    """
    The nonce secret, kept in the data directory so that nonces stay valid
    across a restart; made (mode 0600) on the first start.
    """
    path = data_dir / _SECRET_FILE
    try:
        secret = path.read_bytes()
    except FileNotFoundError:
        secret = secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes()
        with os.fdopen(fd, "wb") as file:
            file.write(secret)
    if len(secret) < 16:
        raise ValueError(f"{path} holds fewer than 16 bytes; delete it to make a new one")
    return secret


def _tls_listeners(config: ServerConfig) -> tuple[tuple[str, ...], str | None]:
    """
    The listener descriptions, each C{tls:} one given a certificate, and
    the certificate given to them (or C{--certificate}), if any.
    """
    needy = [d for d in config.listen if d.lower().startswith("tls:") and "certKey=" not in d]
    if not needy:
        return config.listen, config.certificate
    if config.certificate is not None:
        certificate, key = config.certificate, config.private_key or config.certificate
    else:
        cert_path, key_path = ensure_certificate(config.data_dir, config.server_name)
        certificate, key = cert_path.path, key_path.path
    suffix = f":certKey={_escape(os.path.abspath(certificate))}:privateKey={_escape(os.path.abspath(key))}"
    return tuple(d + suffix if d in needy else d for d in config.listen), certificate


def _tls_name(config: ServerConfig, certificate: str | None) -> str | None:
    """
    The name the proxy record-routes on its TLS side (L{ProxySettings.tls_name}):
    a SIP domain identity of the TLS certificate (RFC 5922 section 7.1), the
    first served domain it names if any, else its first identity; L{None}
    without a TLS listener or a certificate that names a domain.  The
    generated certificate is made for the first C{--domain} or
    C{localhost} (L{ServerConfig.server_name}).
    """
    if certificate is None or not any(d.lower().startswith("tls:") for d in config.listen):
        return None
    try:
        identities = sip_identities(x509.load_pem_x509_certificate(Path(certificate).read_bytes()))
    except (OSError, ValueError) as error:
        _log.warn("Cannot read the TLS identity of {path}: {error}", path=certificate, error=str(error))
        return None
    served = [domain for domain in config.domains if identities.matches(domain)]
    if served:
        return served[0]
    return identities.domains[0] if identities.domains else None


def build_server(config: ServerConfig, reactor: Any) -> SIPServer:
    """
    Build (but do not start) the server C{config} describes: the data
    directory, certificate and nonce secret are made now if missing.

    @param reactor: the reactor (also the clock).
    @raise OSError: the data directory or a file in it cannot be made.
    """
    data_dir = Path(config.data_dir)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    listen, certificate = _tls_listeners(config)
    store: LocationStore
    if config.location == "memory":
        store = MemoryLocationStore(reactor)
    else:
        database = Path(config.location.removeprefix("sqlite:"))
        database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        sqlite_store = SQLiteLocationStore(database, reactor)
        sqlite_store.ready.addErrback(
            lambda failure: _log.failure("Cannot open the location store {path}", failure, path=database)
        )
        store = sqlite_store
    authenticator = None
    if config.users is not None:
        authenticator = Authenticator(
            config.users, config.realm, reactor, _secret(data_dir), algorithms=config.digest_algorithms
        )
    stack = SIPStack(reactor, config=StackConfig(tls_policy=config.tls_policy), proxy=True)
    registrar = Registrar(store, reactor, config.policy, authenticator)
    proxy = Proxy(
        stack, registrar, authenticator=authenticator, settings=ProxySettings(tls_name=_tls_name(config, certificate))
    )
    core = build_core(stack, registrar, proxy)
    proxy.install()
    listening = SIPStackService(stack, listen, grace=config.grace)
    server = SIPServer(stack, store, registrar, core, listening, proxy=proxy)
    server.addService(LocationStoreService(store, reactor))  # type: ignore[no-untyped-call]  # unannotated
    server.addService(listening)  # type: ignore[no-untyped-call]  # unannotated in Twisted 26.10
    return server


def makeService(options: Options) -> SIPServer:
    """The C{IServiceMaker} entry point: the server of C{options.config}, on the global reactor."""
    # Imported here, not above: twistd installs the reactor it was asked
    # for (--reactor) before it calls makeService.
    from twisted.internet import reactor  # noqa: PLC0415

    server = build_server(options.config, reactor)
    tune_gc(options.config.gc_thresholds, reactor)

    def failed(failure: Any) -> None:
        _log.failure("Could not listen; stopping", failure)
        if reactor.running:
            reactor.stop()

    server.listening.ready.addErrback(failed)
    return server
