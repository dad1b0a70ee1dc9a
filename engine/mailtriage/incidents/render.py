"""Reports over incidents as Markdown and as one self-contained HTML page (inline SVG timeline,
inline CSS, no script, no external request: it opens offline and from a mail attachment)."""

from __future__ import annotations

import html
from datetime import datetime, timedelta
from typing import Any

from .group import Report

_LABELS = {
    "en": {
        "title": "Mail-flow incidents", "as_of": "As of", "records": "failure records", "incidents": "incidents",
        "destination": "Destination", "diagnosis": "Diagnosis", "state": "State", "first": "First seen",
        "last": "Last seen", "messages": "Messages", "recipients": "Recipients", "fix": "First fix",
        "timeline": "Failures per hour", "approx": "Counts marked ~ are estimates (more than {n} distinct values).",
        "none": "No failures found.", "skipped": "Inputs skipped",
        "retrying": "retrying", "expired": "expired", "failed": "failed", "reply": "Reply",
    },
    "pt-BR": {
        "title": "Incidentes de fluxo de email", "as_of": "Em", "records": "registros de falha", "incidents": "incidentes",
        "destination": "Destino", "diagnosis": "Diagnóstico", "state": "Estado", "first": "Primeira ocorrência",
        "last": "Última ocorrência", "messages": "Mensagens", "recipients": "Destinatários", "fix": "Primeira correção",
        "timeline": "Falhas por hora", "approx": "Contagens marcadas com ~ são estimativas (mais de {n} valores distintos).",
        "none": "Nenhuma falha encontrada.", "skipped": "Entradas ignoradas",
        "retrying": "em nova tentativa", "expired": "expirada", "failed": "com falha", "reply": "Resposta",
    },
}


def labels(lang: str) -> dict[str, str]:
    return _LABELS.get(lang, _LABELS["en"])


def _count(item: dict[str, Any], name: str) -> str:
    return ("~" if item[f"{name}_approximate"] else "") + str(item[name])


def _md_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return " ".join(text.replace("|", "\\|").replace("<", "&lt;").split())


def to_markdown(report: Report, lang: str = "en") -> str:
    data = report.to_dict()
    t = labels(lang)
    lines = [f"# {t['title']}", "", f"{t['as_of']} {data['as_of'] or '-'}: {data['records']} {t['records']}, "
             f"{len(data['incidents'])} {t['incidents']}.", ""]
    if not data["incidents"]:
        lines.append(t["none"])
    else:
        lines.append(f"| {t['destination']} | {t['diagnosis']} | {t['state']} | {t['first']} | {t['last']} | "
                     f"{t['messages']} | {t['recipients']} | {t['fix']} |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for item in data["incidents"]:
            diagnosis = f"{item['title']} (`{item['rule']}`)" if item["rule"] else item["title"]
            lines.append("| " + " | ".join(_md_cell(v) for v in (
                item["destination"], diagnosis, t[item["state"]], item["first_seen"], item["last_seen"],
                _count(item, "messages"), _count(item, "recipients"), item["first_fix"] or "-",
            )) + " |")
    if data["counts_approximate"]:
        lines += ["", t["approx"].format(n=1024)]
    if data["skipped"]:
        lines += ["", f"{t['skipped']}:", ""]
        lines += [f"- {count} x {_md_cell(reason)}" for reason, count in data["skipped"].items()]
    return "\n".join(lines) + "\n"


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1b1b1b;background:#fff}
h1{font-size:1.6rem}table{border-collapse:collapse;width:100%;margin:1rem 0}
th,td{border-bottom:1px solid #ccc;padding:.4rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}.state-retrying{color:#8a5a00}.state-expired,.state-failed{color:#a4000f}
code{font-size:.9em;background:#f3f3f3;padding:0 .2em}figure{margin:1rem 0}
svg text{font-size:11px;fill:#333}.bar{fill:#2f6fbf}.axis{stroke:#999}
@media (prefers-color-scheme:dark){body{background:#111;color:#eee}th{background:#222}code{background:#222}svg text{fill:#ccc}}
"""


def _timeline_svg(per_hour: dict[str, int], label: str) -> str:
    """Bars of failures per hour between the incident's first and last hour (gaps drawn as 0)."""
    if not per_hour:
        return ""
    hours = sorted(per_hour)
    start = datetime.strptime(hours[0], "%Y-%m-%dT%H:00Z")
    end = datetime.strptime(hours[-1], "%Y-%m-%dT%H:00Z")
    span = min(int((end - start).total_seconds() // 3600) + 1, 24 * 31)
    values = [per_hour.get((start + timedelta(hours=i)).strftime("%Y-%m-%dT%H:00Z"), 0) for i in range(span)]
    width, height, pad = 640, 120, 24
    top = max(values) or 1
    bar = (width - 2 * pad) / max(len(values), 1)
    parts = [f'<svg role="img" aria-label="{html.escape(label)}" viewBox="0 0 {width} {height}" width="100%" '
             f'height="{height}" xmlns="http://www.w3.org/2000/svg">']
    parts.append(f'<line class="axis" x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}"/>')
    for index, value in enumerate(values):
        h = (height - 2 * pad) * value / top
        x = pad + index * bar
        hour = (start + timedelta(hours=index)).strftime("%Y-%m-%d %H:00")
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{height - pad - h:.1f}" width="{max(bar - 1, 1):.1f}" '
                     f'height="{h:.1f}"><title>{html.escape(hour)}: {value}</title></rect>')
    parts.append(f'<text x="{pad}" y="{height - 6}">{html.escape(hours[0])}</text>')
    parts.append(f'<text x="{width - pad}" y="{height - 6}" text-anchor="end">{html.escape(hours[-1])}</text>')
    parts.append(f'<text x="{pad}" y="14">max {top}/h</text></svg>')
    return "".join(parts)


def to_html(report: Report, lang: str = "en") -> str:
    data = report.to_dict()
    t = labels(lang)
    e = html.escape
    out = [f'<!doctype html><html lang="{e(lang)}"><head><meta charset="utf-8">'
           '<meta name="viewport" content="width=device-width,initial-scale=1">'
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
           f"<title>{e(t['title'])}</title><style>{_CSS}</style></head><body>"]
    out.append(f"<h1>{e(t['title'])}</h1><p>{e(t['as_of'])} {e(data['as_of'] or '-')}: {data['records']} "
               f"{e(t['records'])}, {len(data['incidents'])} {e(t['incidents'])}.</p>")
    if not data["incidents"]:
        out.append(f"<p>{e(t['none'])}</p>")
    else:
        out.append(f"<table><thead><tr><th>{e(t['destination'])}</th><th>{e(t['diagnosis'])}</th><th>{e(t['state'])}</th>"
                   f"<th>{e(t['first'])}</th><th>{e(t['last'])}</th><th>{e(t['messages'])}</th>"
                   f"<th>{e(t['recipients'])}</th></tr></thead><tbody>")
        for n, item in enumerate(data["incidents"], 1):
            rule = f" <code>{e(item['rule'])}</code>" if item["rule"] else ""
            out.append(f'<tr><td><a href="#incident-{n}">{e(item["destination"])}</a></td><td>{e(item["title"])}{rule}</td>'
                       f'<td class="state-{e(item["state"])}">{e(t[item["state"]])}</td><td>{e(item["first_seen"] or "-")}</td>'
                       f"<td>{e(item['last_seen'] or '-')}</td><td>{e(_count(item, 'messages'))}</td>"
                       f"<td>{e(_count(item, 'recipients'))}</td></tr>")
        out.append("</tbody></table>")
        for n, item in enumerate(data["incidents"], 1):
            out.append(f'<section id="incident-{n}"><h2>{e(item["destination"])}: {e(item["title"])}</h2>')
            if item["example_reply"]:
                out.append(f"<p>{e(t['reply'])}: <code>{e(item['example_reply'])}</code></p>")
            out.append(f'<figure class="timeline">{_timeline_svg(item["per_hour"], t["timeline"])}'
                       f"<figcaption>{e(t['timeline'])}</figcaption></figure>")
            if item["first_fix"]:
                steps = "".join(f"<li>{e(step)}</li>" for step in item["first_fix_steps"])
                out.append(f"<h3>{e(t['fix'])}: {e(item['first_fix'])}</h3><ol>{steps}</ol>")
            out.append("</section>")
    if data["counts_approximate"]:
        out.append(f"<p>{e(t['approx'].format(n=1024))}</p>")
    if data["skipped"]:
        items = "".join(f"<li>{count} × {e(reason)}</li>" for reason, count in data["skipped"].items())
        out.append(f"<h2>{e(t['skipped'])}</h2><ul>{items}</ul>")
    out.append("</body></html>")
    return "".join(out)
