"""Load benchmark of `mailtriage serve` on loopback (issue 13 targets), run by hand:

    .venv/bin/python benchmarks/bench_service.py            # the full run (about 6 minutes)
    .venv/bin/python benchmarks/bench_service.py --quick    # a short smoke run

Phases, in this order, against one real server (uvicorn, started as `mailtriage serve`):
1. library baseline A: parse + diagnose + diagnosis_document + JSON encoding of the replies, in
   this process, one reply after the other (what one request costs without HTTP);
2. sequential: one client, one request at a time: the server's own median time per request
   (its JSON log's duration_ms: arrival to end of response) and the client's round trip;
3. load: 50 concurrent keep-alive clients for 60 s with distinct realistic replies: p50, p99,
   requests/s, errors; and the server's CPU time per request;
4. library baseline B (A and B bracket the server phases: same run, interleaved);
5. RSS: 100,000 more requests after warm-up; the server's RSS growth;
6. scan: a 100 MB mbox streamed (chunked) to POST /v1/scan while the response is read: time from
   the first byte sent to the first record received, the server's peak RSS, records/s.

Targets: server median <= 1.5x library median; RSS growth < 5%; first scan record < 1 s; server
memory < 200 MB during the scan. The client runs on the same 2 cores as the server, so requests/s
is a floor, not the server's ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchstats import machine, percentile, table

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "intake"
HOST = "127.0.0.1"

# Reply shapes seen in queues and NDRs; {n} {ip} {host} {id} vary so that every request is distinct.
TEMPLATES = (
    "450 4.4.316 Connection refused [Message=Socket error code 10061] [LastAttemptedServerName=mail{n}.contoso.com] [LastAttemptedIP={ip}:25]",
    "450 4.4.315 Connection timed out [Message=Socket error code 10060] [LastAttemptedServerName=smtp{n}.fabrikam.com] [LastAttemptedIP={ip}:25]",
    "450 4.4.312 DNS query failed. The error was: DNS query failed with error: ServerFailure [Domain=partner{n}.example]",
    "450 4.4.317 Cannot connect to remote server [Message=451 5.7.3 STARTTLS is required to send mail] [LastAttemptedServerName=gw{n}.example.net]",
    "450 4.4.318 Connection was closed abruptly [LastAttemptedServerName=relay{n}.example.org] [LastAttemptedIP={ip}:25]",
    "450 4.7.320 Certificate validation failed [Message=CertificateExpired] [LastAttemptedServerName=mx{n}.tailspin.example]",
    "550 5.4.316 Message expired, connection refused [LastAttemptedServerName=mail{n}.contoso.com] [LastAttemptedIP={ip}:25]",
    "550 5.1.1 <user{n}@gmail.com>: The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces. {id} - gsmtp",
    "421 4.7.0 [{ip} 15] Our system has detected an unusual rate of unsolicited mail originating from your IP address. {id} - gsmtp",
    "554 5.7.1 Service unavailable; Client host [{ip}] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/{ip}",
    "452 4.2.2 The email account that you tried to reach is over quota. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaTemp {id} - gsmtp",
    "550 5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM. {id} - gsmtp",
    "550 5.7.1 Unable to relay for user{n}@example.com",
    "451 4.3.0 Mail server temporarily rejected message. [{host}] {id}",
    "550 5.7.606 Access denied, banned sending IP [{ip}]. To request removal from this list please visit https://sender.office.com/ and follow the directions.",
)


def distinct_replies(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    replies = []
    for n in range(count):
        template = TEMPLATES[n % len(TEMPLATES)]
        ip = f"203.0.{rng.randrange(113, 114)}.{rng.randrange(1, 255)}"
        replies.append(template.format(n=n, ip=ip, host=f"host{n}.example.com", id=f"{rng.getrandbits(48):012x}"))
    return replies


# ---------------------------------------------------------------------------------------------
# The server


class ServerProcess:
    def __init__(self, workers: int, log_path: Path, extra: list[str]) -> None:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            self.port = sock.getsockname()[1]
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (lives as long as the server)
        env = {k: v for k, v in os.environ.items() if k != "MAILTRIAGE_SERVE_TOKENS"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mailtriage", "serve", "--port", str(self.port), "--workers", str(workers),
             "--max-scan", "2048", "--request-timeout", "120", *extra],
            stdout=self._log, stderr=subprocess.STDOUT, env=env,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(log_path.read_text())
            with contextlib.suppress(OSError):
                status, body = request_once(self.port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
                if status == 200:
                    return
                if b"failed" in body:
                    raise RuntimeError(log_path.read_text())
            time.sleep(0.3)
        raise RuntimeError("server not ready")

    def pids(self) -> list[int]:
        """The server and its worker processes."""
        pids = [self.process.pid]
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
            pids.extend(int(c) for c in children)
        return pids

    def rss_kb(self) -> int:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return total

    def cpu_seconds(self) -> float:
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / ticks
        return total

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()

    def durations_ms(self, prefix: str) -> list[float]:
        values = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            if prefix in line:
                with contextlib.suppress(ValueError, KeyError):
                    entry = json.loads(line)
                    if str(entry.get("request_id", "")).startswith(prefix):
                        values.append(float(entry["duration_ms"]))
        return values


def request_once(port: int, raw: bytes) -> tuple[int, bytes]:
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(raw)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next((int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")), 0)
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, body


def diagnose_request(reply: str, request_id: str | None = None) -> bytes:
    body = reply.encode()
    extra = f"X-Request-ID: {request_id}\r\n" if request_id else ""
    return (f"POST /v1/diagnose HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: text/plain\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


# ---------------------------------------------------------------------------------------------
# Phases


def library_pass(replies: list[str]) -> tuple[list[float], list[float]]:
    """Microseconds per reply: parse + diagnose + document + JSON encoding, as the route does,
    twice paired: encoded with `json.dumps` (the standard library), and with the service's own
    encoder (`service.encoding.json_bytes`, orjson). The second is the fair baseline for what
    the framework adds: the server and the library then do the same work."""
    from mailtriage.service.encoding import json_bytes
    from mailtriage.triage import default_engine, diagnose_text, diagnosis_document

    engine = default_engine()
    stdlib, same_encoder = [], []
    for reply in replies:
        t0 = time.perf_counter_ns()
        found = diagnose_text(reply.encode(), engine=engine, source="<request>")
        document = diagnosis_document([(r.recipient, r.diagnosis) for r in found], "en")
        t1 = time.perf_counter_ns()
        json.dumps(document, ensure_ascii=False).encode("utf-8")
        t2 = time.perf_counter_ns()
        json_bytes(document)
        t3 = time.perf_counter_ns()
        stdlib.append((t2 - t0) / 1000)
        same_encoder.append((t1 - t0 + t3 - t2) / 1000)
    return stdlib, same_encoder


def spread(values: list[float]) -> str:
    """Median and the 10th to 90th percentile range."""
    ordered = sorted(values)
    return f"{statistics.median(ordered):.0f} us (p10-p90 {percentile(ordered, 10):.0f}-{percentile(ordered, 90):.0f})"


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, int]:
    status_line = await reader.readline()
    status = int(status_line.split(b" ", 2)[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return status, length


async def _client(port: int, requests: list[bytes], start: int, stop_at: float, limit: int | None,
                  counter: list[int], latencies: list[float], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    index = start
    try:
        while time.perf_counter() < stop_at and (limit is None or counter[0] < limit):
            counter[0] += 1
            raw = requests[index % len(requests)]
            index += 1
            t0 = time.perf_counter()
            writer.write(raw)
            try:
                status, _ = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                errors.append(repr(exc))
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, port)
                continue
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                errors.append(f"HTTP {status}")
    finally:
        writer.close()


def run_load(port: int, replies: list[str], clients: int, seconds: float | None, limit: int | None) -> tuple[list[float], list[str], float]:
    requests = [diagnose_request(reply) for reply in replies]
    latencies: list[float] = []
    errors: list[str] = []
    counter = [0]

    async def main() -> float:
        started = time.perf_counter()
        stop_at = started + (seconds if seconds is not None else 1e9)
        step = max(1, len(requests) // clients)
        await asyncio.gather(*(_client(port, requests, i * step, stop_at, limit, counter, latencies, errors)
                               for i in range(clients)))
        return time.perf_counter() - started

    wall = asyncio.run(main())
    return latencies, errors, wall


def sequential(server: ServerProcess, replies: list[str], prefix: str) -> list[float]:
    round_trips = []
    with socket.create_connection((HOST, server.port)) as sock:
        reader = sock.makefile("rb")
        for index, reply in enumerate(replies):
            raw = diagnose_request(reply, f"{prefix}{index}")
            t0 = time.perf_counter()
            sock.sendall(raw)
            status = int(reader.readline().split(b" ", 2)[1])
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            reader.read(length)
            round_trips.append((time.perf_counter() - t0) * 1e6)
            assert status == 200, status
    return round_trips


def make_mbox(path: Path, megabytes: int) -> int:
    """An mbox of real-shaped bounces (the test corpus's messages, recipients varied)."""
    messages = [p.read_bytes() for p in sorted(DATA.glob("*.eml")) if p.name not in ("not-bounce.eml", "bad-charset.eml")]
    target = megabytes * 1024 * 1024
    written = 0
    count = 0
    with open(path, "wb") as handle:
        while written < target:
            message = messages[count % len(messages)].replace(b"@example.", f"{count}@example.".encode(), 4)
            block = f"From MAILER-DAEMON Mon Jan  1 00:00:{count % 60:02d} 2024\n".encode() + message.replace(b"\nFrom ", b"\n>From ") + b"\n"
            handle.write(block)
            written += len(block)
            count += 1
    return count


def scan_stream(server: ServerProcess, mbox: Path) -> dict[str, Any]:
    sock = socket.create_connection((HOST, server.port))
    sock.sendall(f"POST /v1/scan?kind=auto HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/mbox\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n".encode())
    result: dict[str, Any] = {"first_record_s": None, "rows": 0, "end": None}
    peak = [server.rss_kb()]
    done = threading.Event()
    first_byte_at = [0.0]

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], server.rss_kb())
            time.sleep(0.05)

    def receive() -> None:
        buffer = b""
        while True:
            data = sock.recv(1 << 20)
            if not data:
                break
            if result["first_record_s"] is None and b'"recipient"' in data:
                result["first_record_s"] = time.perf_counter() - first_byte_at[0]
            buffer += data
            if buffer.endswith(b"0\r\n\r\n"):
                break
            # keep only the tail: count lines as they pass
            lines = buffer.split(b"\n")
            result["rows"] += sum(1 for line in lines[:-1] if b'"recipient"' in line)
            for line in lines[:-1]:
                if b'"end"' in line:
                    result["end"] = line[line.index(b"{"):]
            buffer = lines[-1]
        done.set()

    sampler = threading.Thread(target=sample, daemon=True)
    receiver = threading.Thread(target=receive, daemon=True)
    sampler.start()
    receiver.start()
    started = time.perf_counter()
    first_byte_at[0] = started
    with open(mbox, "rb") as handle:
        while chunk := handle.read(65536):
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    sock.sendall(b"0\r\n\r\n")
    sent = time.perf_counter() - started
    receiver.join(1800)
    done.set()
    sampler.join(2)
    sock.close()
    result.update(total_s=time.perf_counter() - started, send_s=sent, peak_rss_mb=peak[0] / 1024)
    return result


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rss-requests", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=5_000)
    parser.add_argument("--mbox-mb", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--sequential", type=int, default=3_000)
    parser.add_argument("--quick", action="store_true", help="10 s load, 5,000 RSS requests, 10 MB mbox")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rss_requests, args.warmup, args.mbox_mb, args.sequential = 10.0, 5_000, 1_000, 10, 1_000

    print(f"machine: {machine()}")
    replies = distinct_replies(20_000)
    tmp = Path(tempfile.mkdtemp(prefix="bench-service-"))
    server = ServerProcess(args.workers, tmp / "server.log", [])
    try:
        library_pass(replies[:500])  # warm the library (caches, first-call imports)
        gc.freeze()  # as `mailtriage serve` does once its rules are loaded (service/app.py)
        base_a = library_pass(replies[: args.sequential])
        sequential(server, replies[:500], "warm-")
        round_trips = sequential(server, replies[: args.sequential], "seq-")
        time.sleep(0.5)
        server_ms = server.durations_ms("seq-")

        cpu0 = server.cpu_seconds()
        latencies, errors, wall = run_load(server.port, replies, args.clients, args.duration, None)
        cpu_per_request_us = (server.cpu_seconds() - cpu0) / max(1, len(latencies)) * 1e6
        base_b = library_pass(replies[: args.sequential])

        run_load(server.port, replies, args.clients, None, args.warmup)
        rss_before = server.rss_kb()
        rss_lat, rss_errors, _rss_wall = run_load(server.port, replies, args.clients, None, args.rss_requests)
        rss_after = server.rss_kb()

        mbox = tmp / "bounces.mbox"
        messages = make_mbox(mbox, args.mbox_mb)
        scan = scan_stream(server, mbox)
    finally:
        server.stop()

    library = base_a[1] + base_b[1]  # same encoder as the server
    library_stdlib = base_a[0] + base_b[0]
    lib_median = statistics.median(library)
    std_median = statistics.median(library_stdlib)
    server_us = [value * 1000 for value in server_ms]
    srv_median = statistics.median(server_us) if server_us else float("nan")
    rtt_median = statistics.median(round_trips)
    lat = sorted(latencies)
    print()
    print(table(
        ["measure", "value", "target"],
        [
            ["library: parse+diagnose+to_dict+json.dumps (A | B medians)", f"{spread(library_stdlib)} ({statistics.median(base_a[0]):.0f} | {statistics.median(base_b[0]):.0f})", ""],
            ["library: the same with the server's encoder (A | B medians)", f"{spread(library)} ({statistics.median(base_a[1]):.0f} | {statistics.median(base_b[1]):.0f})", ""],
            ["server: time per request (its log, 1 client)", spread(server_us), ""],
            ["server median / library median, server's encoder", f"{srv_median / lib_median:.2f}x", "<= 1.5x"],
            ["server median / library median, json.dumps", f"{srv_median / std_median:.2f}x", "<= 1.5x"],
            ["client round trip, median (1 client, keep-alive)", f"{rtt_median:.0f} us = {rtt_median / lib_median:.2f}x library", ""],
            [f"load: {args.clients} clients, {wall:.0f} s: requests", f"{len(lat)} ({len(lat) / wall:.0f} req/s)", ""],
            ["load: p50 / p99 latency", f"{percentile(lat, 50) * 1000:.1f} ms / {percentile(lat, 99) * 1000:.1f} ms", ""],
            ["load: errors", str(len(errors)) + (f" ({errors[:3]})" if errors else ""), "0"],
            ["load: server CPU per request", f"{cpu_per_request_us:.0f} us = {cpu_per_request_us / lib_median:.2f}x library", ""],
            [f"RSS over {len(rss_lat)} requests after {args.warmup} warm-up", f"{rss_before / 1024:.1f} MB -> {rss_after / 1024:.1f} MB ({(rss_after - rss_before) / rss_before * 100:+.2f}%)", "< +5%"],
            ["RSS phase errors", str(len(rss_errors)), "0"],
            [f"scan: {args.mbox_mb} MB mbox ({messages} messages) streamed", f"{scan['rows']} rows in {scan['total_s']:.1f} s ({scan['rows'] / scan['total_s']:.0f} rows/s)", ""],
            ["scan: first record after first byte", f"{scan['first_record_s']:.3f} s" if scan["first_record_s"] is not None else "none", "< 1 s"],
            ["scan: server peak RSS", f"{scan['peak_rss_mb']:.1f} MB", "< 200 MB"],
            ["scan: end line", (scan["end"] or b"").decode()[:120], ""],
        ],
    ))
    print(f"\nworkers: {args.workers}; the load client shares the machine's cores with the server.")


if __name__ == "__main__":
    main()
