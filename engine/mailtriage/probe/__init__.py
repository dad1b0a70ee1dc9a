"""Active probe: collect the symptoms of a destination (DNS, TCP, SMTP, STARTTLS/TLS) as facts.

The probe never sends a message: it stops after EHLO (or, with a recipient to test, after
RCPT TO) and says QUIT. See `run.run_probe`.
"""

from __future__ import annotations

from .model import (
    HostResult,
    InferredFact,
    ProbeOptions,
    ProbeResult,
    Step,
    StepStatus,
    TranscriptLine,
    Verdict,
)
from .policy import ALLOW_ALL, AddressClass, ProbePolicy
from .run import choose_host, run_probe

__all__ = [
    "ALLOW_ALL",
    "AddressClass",
    "HostResult",
    "InferredFact",
    "ProbeOptions",
    "ProbePolicy",
    "ProbeResult",
    "Step",
    "StepStatus",
    "TranscriptLine",
    "Verdict",
    "choose_host",
    "run_probe",
]
