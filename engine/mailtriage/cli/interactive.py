"""`diagnose --interactive`: the guided dialogue of `mailtriage.dialogue` at a terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..dialogue import Dialogue

TEXT = {
    "en": {
        "start": "Guided troubleshooting: answer each question, or press Enter to skip it, p to probe it for me, q to stop.",
        "best": "Best match", "causes": "Causes now", "answer": "Your answer", "options": "options",
        "bad": "Not understood", "probing": "Probing", "probe_none": "No server to probe is known from the error; answer it yourself.",
        "probe_saw": "The probe observed", "probe_failed": "The probe could not run",
        "done": "No more questions change the ranking.", "plan": "Fix plan", "for_cause": "for the cause",
        "none": "No rule matched: nothing to plan.", "likely": "likely", "possible": "possible", "unlikely": "unlikely",
        "yesno": "yes/no",
    },
    "pt-BR": {
        "start": "Solução de problemas guiada: responda cada pergunta, ou pressione Enter para pular, p para testar por mim, q para parar.",
        "best": "Melhor correspondência", "causes": "Causas agora", "answer": "Sua resposta", "options": "opções",
        "bad": "Não entendi", "probing": "Testando", "probe_none": "O erro não indica um servidor para testar; responda você mesmo.",
        "probe_saw": "O teste observou", "probe_failed": "O teste não pôde ser executado",
        "done": "Nenhuma outra pergunta muda a classificação.", "plan": "Plano de correção", "for_cause": "para a causa",
        "none": "Nenhuma regra correspondeu: não há plano.", "likely": "provável", "possible": "possível", "unlikely": "improvável",
        "yesno": "sim/não",
    },
}


def _show_ranking(dialogue: Dialogue, t: dict[str, str]) -> None:
    from .render import safe_text

    top = dialogue.diagnosis.top
    if top is None:
        return
    click.echo(f"\n{t['best']}: {safe_text(top.rule.text('title', dialogue.lang))} ({top.rule.id})")
    click.echo(f"{t['causes']}:")
    for assessed in dialogue.ranked_causes():
        title = top.rule.text(f"causes.{assessed.cause.id}.title", dialogue.lang)
        click.echo(f"  [{t[assessed.likelihood.value]}] {safe_text(title)}")


def _probe(dialogue: Dialogue, t: dict[str, str], probe_options: dict[str, Any]) -> bool:
    from ..errors import MailtriageError
    from ..probe import ProbeOptions
    from ..probe.run import run_probe

    host = dialogue.probe_target()
    if host is None:
        click.echo(t["probe_none"])
        return False
    ip = dialogue.facts.get("smtp.remote_ip")
    port = dialogue.facts.get("smtp.remote_port")
    target = f"{ip if isinstance(ip, str) else host}:{port if isinstance(port, int) else 25}"
    click.echo(f"{t['probing']} {target} ...")
    try:
        result = run_probe(ProbeOptions(target=target, as_host=True, tls_name=host, **probe_options))
    except (MailtriageError, OSError) as exc:
        click.echo(f"{t['probe_failed']}: {exc}")
        return False
    seen = {k: v for k, v in result.facts.items() if dialogue.can_probe(k)}
    click.echo(f"{t['probe_saw']}: " + ", ".join(f"{k}={v}" for k, v in seen.items()))
    dialogue.probe_answers(seen)
    return True


def run_dialogue(dialogue: Dialogue, probe_options: dict[str, Any] | None = None) -> None:
    """Ask until no question changes the ranking (or the reader stops), then print the fix plan."""
    from ..errors import FactError
    from .render import safe_text

    t = TEXT.get(dialogue.lang, TEXT["en"])
    click.echo(t["start"])
    _show_ranking(dialogue, t)
    while True:
        check = dialogue.question()
        if check is None:
            click.echo(f"\n{t['done']}")
            break
        question = check.question.get(dialogue.lang) or check.question.get("en", check.field)
        how = check.how.get(dialogue.lang) or check.how.get("en", "")
        click.echo(f"\n? {safe_text(question)}")
        if how:
            click.echo(f"  ({safe_text(how)})")
        choices = dialogue.choices(check.field)
        if choices and choices != ["yes", "no"]:
            click.echo(f"  {t['options']}: " + "  ".join(f"{n}) {c}" for n, c in enumerate(choices, 1)))
        hint = t["yesno"] if choices == ["yes", "no"] else ""
        hint += ("/" if hint else "") + "p" if dialogue.can_probe(check.field) else ""
        reply = click.prompt(f"{t['answer']}" + (f" [{hint}]" if hint else ""), default="", show_default=False)
        reply = reply.strip()
        if reply.lower() in ("q", "quit", "sair"):
            break
        if not reply:
            dialogue.skip(check.field)
            continue
        if reply.lower() == "p" and dialogue.can_probe(check.field):
            if not _probe(dialogue, t, probe_options or {}):
                continue
            if check.field not in dialogue.facts:
                dialogue.skip(check.field)
            _show_ranking(dialogue, t)
            continue
        try:
            value = dialogue.parse(check.field, reply)
        except FactError as exc:
            click.echo(f"{t['bad']}: {exc}")
            continue
        dialogue.answer(check.field, value)
        _show_ranking(dialogue, t)
    plan = dialogue.plan()
    if plan is None:
        click.echo(t["none"])
        return
    cause = f" {t['for_cause']} \"{safe_text(plan.cause_title)}\"" if plan.cause_title else ""
    click.echo(f"\n{t['plan']}{cause}:")
    for number, fix in enumerate(plan.fixes, 1):
        click.echo(f"{number}. {safe_text(fix['title'])}")
        for step in fix["steps"]:
            click.echo(f"   - {safe_text(step)}")
