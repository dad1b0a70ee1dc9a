"""`mailtriage serve`: run the HTTP API (needs the `serve` extra)."""

from __future__ import annotations

import click

_EXAMPLES = """
\b
Examples:
  mailtriage serve
  mailtriage serve --host 0.0.0.0 --port 8080 --workers 2 --token-file /etc/mailtriage/tokens
  mailtriage serve --enable-probe --probe-allow contoso.com --probe-allow fabrikam.com
  curl -s localhost:8080/v1/diagnose -H 'content-type: text/plain' \\
       --data-binary '450 4.4.316 Connection refused'
  curl -sN localhost:8080/v1/scan -T bounces.mbox

\b
Endpoints: POST /v1/diagnose, POST /v1/scan, GET /v1/rules, GET /v1/rules/{id},
POST /v1/probe (only with --enable-probe), GET /healthz, /readyz, /metrics, /openapi.json, /docs.
Exit status: 0 after a clean shutdown (SIGTERM or Ctrl-C finish in-flight requests first),
2 bad options or missing `serve` extra.
"""


@click.command(epilog=_EXAMPLES)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes; each loads its own engine (the engine holds the GIL, so throughput scales with processes).")
@click.option("--token-file", type=click.Path(dir_okay=False), help="Require a bearer token: one accepted token per line. MAILTRIAGE_SERVE_TOKENS adds more.")
@click.option("--grace", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Seconds in-flight requests get to finish after SIGTERM.")
@click.option("--max-body", "max_body_mb", type=click.FloatRange(min=0.001), default=1.0, show_default=True, help="MB of JSON or text per request.")
@click.option("--max-upload", "max_upload_mb", type=click.FloatRange(min=0.001), default=10.0, show_default=True, help="MB of an uploaded message.")
@click.option("--max-scan", "max_scan_mb", type=click.FloatRange(min=0.001), default=1024.0, show_default=True, help="MB of one /v1/scan upload.")
@click.option("--max-lines", type=click.IntRange(1), default=20_000, show_default=True, help="Lines of text in one /v1/diagnose.")
@click.option("--max-records", type=click.IntRange(1), default=200, show_default=True, help="Diagnoses returned by one /v1/diagnose.")
@click.option("--max-scan-records", type=click.IntRange(1), default=2_000_000, show_default=True, help="Rows in one /v1/scan stream.")
@click.option("--request-timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True, help="Seconds for a request other than a scan.")
@click.option("--scan-timeout", type=click.FloatRange(min=1), default=1800.0, show_default=True, help="Seconds for one scan stream.")
@click.option("--body-idle-timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True, help="Seconds a client may pause mid-body.")
@click.option("--max-scans", type=click.IntRange(1), default=4, show_default=True, help="Scans at once per worker.")
@click.option("--enable-probe", is_flag=True, help="Turn on POST /v1/probe (off by default).")
@click.option("--probe-allow", "probe_allow", multiple=True, metavar="DOMAIN", help="A domain (and its subdomains) the probe may reach (repeatable).")
@click.option("--probe-port", "probe_ports", multiple=True, type=click.IntRange(1, 65535), help="Ports the probe may use (repeatable; default 25, 465, 587).")
@click.option("--probe-allow-network", "probe_networks", multiple=True, metavar="CIDR",
              help="Let the probe reach an address class it refuses (loopback, private...): for tests and deliberate internal use only.")
@click.option("--probe-nameserver", metavar="IP[:PORT]", help="DNS server for the probe (default: the system's).")
@click.option("--probe-ca-file", type=click.Path(dir_okay=False), help="Extra trusted CAs (PEM) for the probe's TLS check.")
@click.option("--probe-rate", type=click.IntRange(1), default=10, show_default=True, help="Probes per client per minute.")
@click.option("--probe-concurrency", type=click.IntRange(1), default=4, show_default=True, help="Probes at once per worker.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True)
@click.option("--rules", "rule_dirs", multiple=True, type=click.Path(exists=True, file_okay=False), help="Extra rules folder (repeatable).")
def serve(
    host: str, port: int, workers: int, token_file: str | None, grace: float, max_body_mb: float,
    max_upload_mb: float, max_scan_mb: float, max_lines: int, max_records: int, max_scan_records: int, request_timeout: float,
    scan_timeout: float, body_idle_timeout: float, max_scans: int, enable_probe: bool,
    probe_allow: tuple[str, ...], probe_ports: tuple[int, ...], probe_networks: tuple[str, ...],
    probe_nameserver: str | None, probe_ca_file: str | None, probe_rate: int, probe_concurrency: int,
    log_level: str, rule_dirs: tuple[str, ...],
) -> None:
    """Serve the diagnosis API over HTTP: the same library calls and JSON as the command line
    (`diagnose --format json`, `scan --format jsonl`, `rules --format json`), errors as RFC 9457
    problem documents, Prometheus metrics, JSON logs with request ids, and an OpenAPI document
    at /openapi.json."""
    from ..errors import MailtriageError
    from ..service.config import MB, Limits, ProbeSettings, ServiceConfig

    config = ServiceConfig(
        rule_dirs=list(rule_dirs),
        limits=Limits(
            max_body_bytes=int(max_body_mb * MB), max_upload_bytes=int(max_upload_mb * MB),
            max_scan_bytes=int(max_scan_mb * MB), max_lines=max_lines, max_records=max_records, max_scan_records=max_scan_records,
            request_timeout=request_timeout, scan_timeout=scan_timeout, body_idle_timeout=body_idle_timeout,
            max_concurrent_scans=max_scans,
        ),
        probe=ProbeSettings(
            enabled=enable_probe, allowed_domains=list(probe_allow),
            allowed_ports=list(probe_ports) or [25, 465, 587], allowed_networks=list(probe_networks),
            nameserver=probe_nameserver, ca_file=probe_ca_file, rate_per_minute=probe_rate,
            max_concurrent=probe_concurrency,
        ),
        token_file=token_file,
        log_level=log_level,
    )
    try:
        config.probe.check()
        config.tokens()
    except MailtriageError as exc:
        raise click.UsageError(str(exc)) from None
    from ..service.server import run

    run(config, host=host, port=port, workers=workers, grace=grace)
