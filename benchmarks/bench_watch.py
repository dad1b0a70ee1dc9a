"""Time from a line appended to a followed log to its alert at a webhook on 127.0.0.1
(target: under 1 s with the default 0.5 s poll interval).

    python benchmarks/bench_watch.py --lines 20

Starts `mailtriage watch` on a temporary log, appends one failure line per new destination (each
a new incident, so each gives a `started` alert), and reports the median and spread of the delay.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

LINE = ("2024-05-01T10:00:00+00:00 mx1 postfix/smtp[1]: Q{n}: to=<u@d{n}.example>, relay=none, delay=30, dsn=4.4.1, "
        "status=deferred (connect to mx.d{n}.example[203.0.113.5]:25: Connection refused)\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args()
    arrived: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            arrived.append(time.monotonic())
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "mail.log"
        log.write_text("")
        process = subprocess.Popen([sys.executable, "-m", "mailtriage", "watch", str(log), "--state", f"{tmp}/s.sqlite",
                                    "--webhook", url, "--no-stdout", "--interval", str(args.interval)])
        time.sleep(3)  # engine load
        delays = []
        for n in range(args.lines):
            before = len(arrived)
            written = time.monotonic()
            with open(log, "a") as handle:
                handle.write(LINE.format(n=n))
            while len(arrived) == before and time.monotonic() - written < 30:
                time.sleep(0.005)
            if len(arrived) > before:
                delays.append(arrived[before] - written)
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    server.shutdown()
    print(json.dumps({"alerts": len(delays), "median_s": round(statistics.median(delays), 3),
                      "min_s": round(min(delays), 3), "max_s": round(max(delays), 3)}))


if __name__ == "__main__":
    main()
