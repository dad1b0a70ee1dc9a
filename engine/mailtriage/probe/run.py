"""Run a probe: plan the target, look up MX, probe every host concurrently within the deadline,
and choose whose facts are diagnosed.

Which host's facts are diagnosed: the first host, in MX preference order, whose probe came out
OK; failing that, the first that came out WARN (delivery possible with a caveat, such as no
STARTTLS); failing that, the first failing host. A sender delivers through the best host that
works, so a broken backup MX is not the problem while the primary works; and when every host
fails, the most preferred host is the one the sender tried first and reported. Every host's own
facts stay in the per-host results.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import ssl
import threading
import time

import dns.resolver

from ..errors import ProbeError
from ..facts import Facts, normalize_facts
from . import dns as probe_dns
from . import tls
from .budget import Budget, Cancelled
from .host import HostContext, HostProbe, check_address, check_ehlo_name, host_port
from .model import HostResult, InferredFact, ProbeOptions, ProbeResult, Step, StepStatus, Verdict
from .policy import ALLOW_ALL, ProbePolicy
from .smtp import ConnectFunction, default_connect
from .target import Plan, is_ip, make_plan

MAX_SECONDS = 3600  # a probe that needs longer than an hour is not a probe
_JOIN_GRACE = 0.5  # seconds allowed past the deadline for threads to notice it and stop


def check_options(options: ProbeOptions) -> None:
    """Raise ProbeError for option values that cannot work."""
    # `not x > 0` also refuses nan; inf would overflow socket timeouts and thread joins.
    if not 0 < options.timeout <= MAX_SECONDS:
        raise ProbeError(f"--timeout must be more than 0 and at most {MAX_SECONDS} seconds (got {options.timeout:g})")
    if not 0 < options.deadline <= MAX_SECONDS:
        raise ProbeError(f"--deadline must be more than 0 and at most {MAX_SECONDS} seconds (got {options.deadline:g})")
    if options.port is not None and not 0 < options.port < 65536:
        raise ProbeError(f"--port must be from 1 to 65535 (got {options.port})")
    if options.rcpt is not None:
        options.rcpt = check_address(options.rcpt)
    if options.ehlo_name is not None:
        options.ehlo_name = check_ehlo_name(options.ehlo_name)
    if options.tls_name is not None:
        options.tls_name = probe_dns.check_name(options.tls_name, "--tls-name")
    if options.ca_file is not None and not os.path.isfile(options.ca_file):
        raise ProbeError(f"--ca-file {options.ca_file}: no such file")


def _verify_context(options: ProbeOptions) -> ssl.SSLContext:
    try:
        return tls.client_context(True, options.ca_file, options.trust_system_cas)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ProbeError(f"--ca-file {options.ca_file}: cannot load the certificates ({exc})") from None


def base_facts(plan: Plan, options: ProbeOptions) -> tuple[Facts, list[InferredFact]]:
    """The facts the probe knows about its own delivery before it connects, and the evidence for
    the context among them: a plain probe delivers straight to the internet (MX lookup or the
    host given, no smart host); `--smart-host` delivers the way an outbound connector does."""
    facts: Facts = {"input.kind": "probe"}
    inferred = [InferredFact("context.system", "mailtriage-probe", "the probe collected these facts itself")]
    if plan.mode == "smart-host":
        inferred.append(InferredFact("context.direction", "outbound-connector", "--smart-host: delivered the way an outbound connector with a smart host does"))
        inferred.append(InferredFact("context.smart_host", True, "--smart-host was given"))
    elif plan.mode == "domain":
        inferred.append(InferredFact("context.direction", "outbound-internet", "plain probe of a domain: MX lookup, then port 25 of its hosts, as a direct delivery to the internet"))
    else:
        inferred.append(InferredFact("context.direction", "outbound-internet", "plain probe of a host, without --smart-host: a direct delivery"))
    if options.require_tls:
        inferred.append(InferredFact("context.tls_required", True, "--require-tls was given"))
    for fact in inferred:
        facts[fact.field] = fact.value
    recipient = plan.recipient_domain
    if recipient is None and options.rcpt:
        recipient = options.rcpt.rpartition("@")[2]
    if recipient:
        facts["context.recipient_domain"] = recipient
    return facts, inferred


class _ResolverFactory:
    """A fresh resolver per thread: dnspython resolvers keep per-query settings as attributes."""

    def __init__(self, nameserver: str | None) -> None:
        self.nameserver = probe_dns.parse_nameserver(nameserver) if nameserver else None
        self.make()  # fail early on a system without resolver configuration

    def make(self) -> dns.resolver.Resolver:
        return probe_dns.make_resolver(self.nameserver)


def _lookup_mx(domain: str, resolvers: _ResolverFactory, budget: Budget, result: ProbeResult) -> list[HostResult]:
    started = time.monotonic()
    outcome = probe_dns.lookup_mx(resolvers.make(), domain, budget)
    elapsed = (time.monotonic() - started) * 1000
    if outcome.result == probe_dns.TIMEOUT and budget.cut_short():
        raise Cancelled("overall deadline reached")
    facts = result.domain_facts
    facts["dns.result"] = outcome.result
    if outcome.result == probe_dns.NOERROR:
        status = StepStatus.OK
        if outcome.null_mx_mixed:
            result.notes.append("the domain publishes a null MX next to real MX hosts (RFC 7505 forbids this); probing the real hosts")
            status = StepStatus.WARN
        if outcome.skipped_hosts:
            result.notes.append(f"{outcome.skipped_hosts} more MX host(s) not probed (limit {probe_dns.MAX_MX_HOSTS})")
    elif outcome.result == probe_dns.NO_MX:
        status = StepStatus.WARN
        facts["dns.query_name"] = domain
    else:
        status = StepStatus.FAIL
        facts["dns.query_name"] = domain
    result.domain_steps.append(Step("mx", status, outcome.detail, elapsed, {"result": outcome.result}))
    role = "implicit-mx" if outcome.result == probe_dns.NO_MX else "mx"
    return [
        HostResult(name=name, port=0, role=role, preference=None if role == "implicit-mx" else preference)
        for preference, name in outcome.hosts
    ]


def choose_host(hosts: list[HostResult]) -> HostResult | None:
    """The host whose facts are diagnosed (see the module docstring)."""
    for wanted in (Verdict.OK, Verdict.WARN):
        for host in hosts:
            if host.verdict is wanted:
                return host
    return hosts[0] if hosts else None


def _run_host(probe: HostProbe) -> None:
    try:
        probe.run()
    except Exception as exc:  # a bug must not kill the report, nor print a traceback
        probe.host.steps.append(Step("error", StepStatus.FAIL, f"internal error: {type(exc).__name__}: {exc}", 0.0))


def run_probe(
    options: ProbeOptions, connector: ConnectFunction = default_connect, policy: ProbePolicy = ALLOW_ALL
) -> ProbeResult:
    """Probe the target and return what was found; Ctrl-C returns what was collected so far.

    `policy` says which resolved addresses and ports may be connected to (default: all, as on
    the command line); a service probing for others passes `ProbePolicy.public_only()`.
    """
    check_options(options)
    plan = make_plan(options)
    budget = Budget(options.timeout, options.deadline)
    result = ProbeResult(target=plan.label, mode=plan.mode, timeout=options.timeout, deadline=options.deadline)
    needs_dns = plan.mode == "domain" or (plan.endpoint is not None and not plan.endpoint.is_ip)
    resolvers = _ResolverFactory(options.nameserver) if needs_dns else None
    context = HostContext(
        options=options,
        budget=budget,
        resolver=None,
        verify_context=_verify_context(options),
        ehlo_name=options.ehlo_name or socket.gethostname() or "localhost",
        connector=connector,
        policy=policy,
    )
    base, result.inferred = base_facts(plan, options)
    threads: list[threading.Thread] = []
    try:
        if plan.mode == "domain":
            assert plan.domain is not None and resolvers is not None
            hosts = _lookup_mx(plan.domain, resolvers, budget, result)
            given_port = None
        else:
            assert plan.endpoint is not None
            hosts = [HostResult(name=plan.endpoint.name, port=0, role=plan.mode)]
            given_port = plan.endpoint.port
        for host in hosts:
            host.port = host_port(host.name, options, given_port)
        result.hosts = hosts
        for host in hosts:
            host_context = context
            if resolvers is not None and not is_ip(host.name):
                host_context = dataclasses.replace(context, resolver=resolvers.make())
            thread = threading.Thread(target=_run_host, args=(HostProbe(host, host_context),), daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join(max(0.0, budget.remaining()) + _JOIN_GRACE)
        if any(thread.is_alive() for thread in threads):
            budget.cancel()
            for thread in threads:
                thread.join(_JOIN_GRACE)
    except Cancelled as exc:
        result.domain_steps.append(Step("stopped", StepStatus.SKIPPED, str(exc), 0.0))
    except KeyboardInterrupt:
        budget.cancel()
        result.interrupted = True
        for thread in threads:
            thread.join(_JOIN_GRACE)
    result.elapsed_ms = budget.elapsed() * 1000
    for host in result.hosts:
        # A thread still blocked (in connect, say) has not said where it stopped; say it for it.
        if not host.finished and not any(step.name == "stopped" for step in host.steps):
            reason = "interrupted" if result.interrupted else "overall deadline reached"
            where = f" (during {host.in_progress})" if host.in_progress else ""
            host.steps.append(Step("stopped", StepStatus.SKIPPED, reason + where, 0.0))
    result.deadline_reached = not result.interrupted and (
        any(not host.finished for host in result.hosts) or any(s.name == "stopped" for s in result.domain_steps)
    )
    chosen = choose_host(result.hosts)
    facts: Facts = {**base, **result.domain_facts}
    if chosen is not None:
        result.chosen_host = chosen.name
        facts.update(chosen.facts)
    result.facts = normalize_facts(facts)
    return result
