"""What a `mailtriage serve` process is allowed to do: limits on what clients send, auth tokens,
and the probe's policy. Plain dataclasses, serialised to JSON so that every worker process
(`--workers`) builds the same app from the same settings."""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MailtriageError

CONFIG_ENV = "MAILTRIAGE_SERVE_CONFIG"  # the JSON of a ServiceConfig, for worker processes
TOKENS_ENV = "MAILTRIAGE_SERVE_TOKENS"  # bearer tokens, separated by commas or white space
MB = 1024 * 1024


@dataclass
class Limits:
    """Caps on everything a client sends; a request over one gets a problem response (413, 408,
    503...) or, in a scan stream already under way, a final `error` line."""

    max_body_bytes: int = 1 * MB  # JSON or pasted text sent to /v1/diagnose or /v1/probe
    max_upload_bytes: int = 10 * MB  # one uploaded message (.eml) for /v1/diagnose
    max_scan_bytes: int = 1024 * MB  # one /v1/scan upload (mbox, maildir archive, log)
    max_expanded_bytes: int = 4096 * MB  # what a zip upload may expand to
    max_lines: int = 20_000  # lines of text in one /v1/diagnose
    max_records: int = 200  # diagnoses returned by one /v1/diagnose (a log paste can hold many)
    max_scan_records: int = 2_000_000  # rows in one /v1/scan stream
    request_timeout: float = 30.0  # seconds for one request other than a scan
    scan_timeout: float = 1800.0  # seconds for one scan stream
    body_idle_timeout: float = 30.0  # seconds a client may pause while sending a body
    max_concurrent_scans: int = 4  # per worker process; more get 503 with Retry-After
    engine_threads: int = 4  # threads running engine calls (the engine lock serialises queries)


@dataclass
class ProbeSettings:
    """`POST /v1/probe`: off unless enabled, and then only towards the allow list.

    `allowed_networks` are exceptions to the refused address classes (loopback, private,
    link-local, metadata...): only for tests against local servers and for deliberate
    internal deployments. `allowed_ports` replaces 25/465/587 for the same reason."""

    enabled: bool = False
    allowed_domains: list[str] = field(default_factory=list)
    allowed_ports: list[int] = field(default_factory=lambda: [25, 465, 587])
    allowed_networks: list[str] = field(default_factory=list)
    nameserver: str | None = None  # IP[:PORT]; None: the system's resolvers
    ca_file: str | None = None
    ehlo_name: str | None = None
    timeout: float = 10.0  # most a client may ask for, per step
    deadline: float = 30.0  # most a client may ask for, per probe
    max_concurrent: int = 4  # probes running at once in one worker process
    rate_per_minute: int = 10  # probes one client may start per minute

    def check(self) -> None:
        for network in self.allowed_networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise MailtriageError(f"--probe-allow-network {network!r} is not an IP network") from None
        for port in self.allowed_ports:
            if not 0 < port < 65536:
                raise MailtriageError(f"--probe-port {port} is not a TCP port")
        if self.enabled and not self.allowed_domains:
            raise MailtriageError("--enable-probe needs at least one --probe-allow DOMAIN")


@dataclass
class ServiceConfig:
    rule_dirs: list[str] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    token_file: str | None = None  # one bearer token per line; blank lines and # comments ignored
    auth_from_env: bool = True  # also accept the tokens in MAILTRIAGE_SERVE_TOKENS
    log_level: str = "info"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServiceConfig:
        data: dict[str, Any] = json.loads(text)
        return cls(
            rule_dirs=list(data.get("rule_dirs", [])),
            limits=Limits(**data.get("limits", {})),
            probe=ProbeSettings(**data.get("probe", {})),
            token_file=data.get("token_file"),
            auth_from_env=bool(data.get("auth_from_env", True)),
            log_level=str(data.get("log_level", "info")),
        )

    @classmethod
    def from_env(cls) -> ServiceConfig:
        text = os.environ.get(CONFIG_ENV)
        return cls.from_json(text) if text else cls()

    def tokens(self) -> list[bytes]:
        """The accepted bearer tokens (none: no auth). Raises MailtriageError for an unreadable file."""
        found: list[str] = []
        if self.token_file:
            try:
                lines = Path(self.token_file).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise MailtriageError(f"--token-file {self.token_file}: cannot read ({exc})") from None
            found.extend(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
        if self.auth_from_env:
            found.extend(os.environ.get(TOKENS_ENV, "").replace(",", " ").split())
        return [token.encode("utf-8") for token in found]


def token_matches(presented: bytes, tokens: list[bytes]) -> bool:
    """Constant-time comparison against every token (no early exit that would time which matched)."""
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(presented, token)
    return matched
