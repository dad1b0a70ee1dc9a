"""`diagnose --interactive`, driven through a real pseudo-terminal in both languages, and the
`Dialogue` library behind it."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trustme

from mailtriage import Engine
from mailtriage.dialogue import Dialogue
from probe_servers import aiosmtpd_server, refused_port, trustme_context

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _interactive_signals() -> None:
    # A user's terminal delivers Ctrl-C; a test run in the background (nohup, `cmd &`) ignores
    # SIGINT and children inherit that. Give the child what a terminal session gives it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Terminal:
    """`mailtriage` on a pseudo-terminal: read until a prompt appears, type an answer."""

    def __init__(self, *args: str) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen([sys.executable, "-m", "mailtriage", *args], stdin=slave, stdout=slave,
                                        stderr=slave, close_fds=True, env={**os.environ, "TERM": "dumb", "COLUMNS": "200"},
                                        preexec_fn=_interactive_signals)
        os.close(slave)
        self.output = ""

    def expect(self, text: str, timeout: float = 90.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{text!r} not seen; screen so far:\n{self.output}")
            ready, _, _ = select.select([self.master], [], [], min(remaining, 0.5))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    if self.process.poll() is not None and text not in self.output:
                        raise AssertionError(f"{text!r} not seen before exit; screen:\n{self.output}")
                    continue
                self.output += ANSI.sub("", chunk.decode("utf-8", "replace").replace("\r\n", "\n"))
        return self.output

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def finish(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            _pump(self)  # keep reading: the rest of the screen, and the pty never fills up
        _pump(self)
        code = self.process.wait(timeout=timeout)
        os.close(self.master)
        return code


def wait_for_prompt(term: Terminal, count: int, timeout: float = 60.0, prompt: str = "Sua resposta") -> None:
    deadline = time.monotonic() + timeout
    while term.output.count(prompt) < count:
        assert time.monotonic() < deadline, term.output
        _pump(term)


def _pump(term: Terminal) -> None:
    ready, _, _ = select.select([term.master], [], [], 0.3)
    if ready:
        try:
            chunk = os.read(term.master, 65536)
        except OSError:
            return
        term.output += ANSI.sub("", chunk.decode("utf-8", "replace").replace("\r\n", "\n"))


def test_english_dialogue_reranks_after_each_answer_and_ends_with_the_plan() -> None:
    term = Terminal("diagnose", "450 4.4.316 Connection refused [LastAttemptedServerName=mail.fabrikam.example]",
                    "--system", "exchange-online", "--interactive")
    term.expect("Guided troubleshooting")
    # Which way the mail went comes first (issue 10): it decides which causes apply at all.
    term.expect("Is the failing delivery going through an outbound connector")
    term.expect("Your answer")
    term.type("1")  # outbound-connector
    term.expect("Is the destination server yours (on-premises) or a partner's?")
    term.expect("Your answer", timeout=30)
    term.type("2")  # partner
    wait_for_prompt(term, 3, prompt="Your answer")  # the re-ranked causes, then the next question
    ranking = term.output.rsplit("Causes now:", 1)[1]
    assert "[likely] The partner's server refuses connections" in ranking
    assert "[unlikely] The on-premises mail servers were shut down" in ranking
    term.type("q")
    term.expect("Fix plan for the cause \"The partner's server refuses connections\"")
    assert term.finish() == 0
    assert "Ask the partner" in term.output


def test_portuguese_dialogue_skips_and_accepts_yes_no_in_portuguese() -> None:
    term = Terminal("diagnose", "450 4.4.316 Connection refused [LastAttemptedServerName=mail.contoso.example]",
                    "--system", "exchange-online", "--interactive", "--lang", "pt-BR")
    term.expect("Solução de problemas guiada")
    term.expect("Sua resposta")
    term.type("1")  # the direction comes first: outbound-connector
    wait_for_prompt(term, 2)
    term.type("1")  # on-premises
    wait_for_prompt(term, 3)
    # Answer the next question in Portuguese: "sim" to a yes/no one, Enter (skip) otherwise.
    question = term.output.rsplit("? ", 1)[1]
    term.type("sim" if "[sim/não" in question else "")
    wait_for_prompt(term, 4)
    term.type("q")
    term.expect("Plano de correção")
    assert term.finish() == 0
    assert "[provável]" in term.output


def test_ctrl_c_leaves_cleanly() -> None:
    term = Terminal("diagnose", "450 4.4.316 Connection refused", "--system", "exchange-online", "-i")
    term.expect("Your answer")
    # CPython's line reader has a window between writing the prompt and blocking in read() where
    # a SIGINT only sets a flag (the read is then never interrupted); a user presses again, and so
    # does this test, until the process ends.
    deadline = time.monotonic() + 60
    while term.process.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(ProcessLookupError):
            os.kill(term.process.pid, signal.SIGINT)
        end = time.monotonic() + 2
        while term.process.poll() is None and time.monotonic() < end:
            _pump(term)
    code = term.finish()
    assert code == 130
    assert "Traceback" not in term.output


def test_probe_it_for_me_answers_from_a_real_server(tmp_path: Path) -> None:
    """4.7.320 asks why TLS failed; the probe connects to a loopback server whose certificate
    comes from an unknown CA, and the dialogue re-ranks on what it saw."""
    ca = trustme.CA()
    leaf = ca.issue_cert("mail.fabrikam.example")
    with aiosmtpd_server(trustme_context(leaf, tmp_path), hostname="mail.fabrikam.example") as (port, _handler):
        term = Terminal("diagnose", f"450 4.7.320 Certificate validation failed [LastAttemptedServerName=mail.fabrikam.example] "
                        f"[LastAttemptedIP=127.0.0.1:{port}]", "--system", "exchange-online", "--interactive")
        term.expect("Your answer [p]")
        term.type("p")
        screen = term.expect("The probe observed")
        term.expect("Your answer", timeout=60)
        term.type("q")
        term.expect("Fix plan")
        assert term.finish() == 0
    assert "tls.error=untrusted-issuer" in screen


def test_probe_it_for_me_without_a_server_says_so(engine: Engine) -> None:
    with refused_port() as port:
        dialogue = Dialogue(engine, {"smtp.reply_code": 450, "smtp.enhanced": "4.4.317", "context.system": "exchange-online",
                                     "smtp.remote_host": "127.0.0.1", "smtp.remote_ip": "127.0.0.1", "smtp.remote_port": port,
                                     "input.kind": "reply"})
        from mailtriage.probe import ProbeOptions
        from mailtriage.probe.run import run_probe

        result = run_probe(ProbeOptions(target=f"127.0.0.1:{port}", as_host=True, timeout=2, deadline=5))
        dialogue.probe_answers(result.facts)
    assert dialogue.facts["tcp.state"] == "refused"
    assert ("tcp.state", "refused") in dialogue.answered


@pytest.mark.parametrize(("text", "value"), [("yes", True), ("sim", True), ("N", False), ("não", False)])
def test_yes_no_answers_in_both_languages(engine: Engine, text: str, value: bool) -> None:
    dialogue = Dialogue(engine, {"smtp.enhanced": "4.4.316", "smtp.reply_code": 450, "context.system": "exchange-online"})
    assert dialogue.parse("context.migrated_to_cloud", text) is value


def test_dialogue_ends_when_no_question_is_left(engine: Engine) -> None:
    dialogue = Dialogue(engine, {"smtp.enhanced": "4.4.316", "smtp.reply_code": 450, "context.system": "exchange-online"})
    asked = []
    while (check := dialogue.question()) is not None:
        asked.append(check.field)
        dialogue.skip(check.field)
        assert len(asked) < 50
    assert asked and len(set(asked)) == len(asked)
    plan = dialogue.plan()
    assert plan is not None and plan.fixes
