"""Start uvicorn on the service app: one process, or `workers` processes sharing the socket."""

from __future__ import annotations

import os
import signal
import sys
import tempfile

from ..errors import MailtriageError
from .config import CONFIG_ENV, ServiceConfig


def run(config: ServiceConfig, *, host: str, port: int, workers: int = 1, grace: float = 30.0) -> None:
    """Serve until SIGTERM/SIGINT; in-flight requests get `grace` seconds to finish."""
    try:
        import uvicorn
    except ImportError:
        raise MailtriageError("`mailtriage serve` needs the serve extra: pip install 'mailtriage[serve]'") from None
    from .observe import log_config

    # Worker processes rebuild the app from the environment; so does the single-process case, so
    # both paths are the same.
    os.environ[CONFIG_ENV] = config.to_json()
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mailtriage-metrics-")
    # uvicorn re-raises the signal that stopped it once in-flight requests are done; a stop asked
    # for is a clean exit (status 0), as the command's help says.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(0))
    uvicorn.run(
        "mailtriage.service.app:serve_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=log_config(config.log_level),
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=max(1, round(grace)),
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=64 * 1024,
    )
