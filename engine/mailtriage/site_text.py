"""Safe text for generated site pages, and the fixed words of those pages in each language.

Rule text comes from pull requests, so it is treated as untrusted: nothing in it may become HTML,
a link or an attribute. `md_text` turns a rule string into Markdown that renders as exactly that
text; the only markup it keeps is `code` in backticks, rendered by us, not by Markdown.
"""

from __future__ import annotations

import re
from html import escape as _html_escape
from urllib.parse import quote, urlsplit

# Characters that mean something to Markdown, its extensions (attr_list's `{: }`, tables' `|`) or
# HTML. Each becomes a numeric character reference, which every renderer shows as the character.
_SIGNIFICANT = {ch: f"&#{ord(ch)};" for ch in "&<>\\`*_{}[]()|!#~^=$\"'"}
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
# Replaces characters that are unsafe in page titles: MkDocs and the theme print titles unescaped.
_TITLE_SAFE = str.maketrans({"<": "‹", ">": "›", "&": "＆", '"': "”", "'": "’", "`": "", "\\": "/"})


def escape_literal(text: str) -> str:
    """`text` as Markdown that renders literally (no markup, no HTML, no links)."""
    return "".join(_SIGNIFICANT.get(ch, ch) for ch in text)


def md_code(text: str) -> str:
    """`text` as inline code, built as HTML so that Markdown never parses its content."""
    return f"<code>{escape_literal(text)}</code>"


def md_text(text: str) -> str:
    """A rule string as safe Markdown: literal text, with `backtick spans` shown as code, on one line."""
    flat = " ".join(text.split())
    parts: list[str] = []
    position = 0
    for span in _CODE_SPAN.finditer(flat):
        parts.append(escape_literal(flat[position:span.start()]))
        parts.append(md_code(span.group(1)))
        position = span.end()
    parts.append(escape_literal(flat[position:]))
    return "".join(parts)


def plain_title(text: str) -> str:
    """A title safe to print unescaped in HTML (page title, navigation, search)."""
    return " ".join(text.translate(_TITLE_SAFE).split())


def safe_url(url: str) -> str | None:
    """The URL if it is an absolute http(s) URL with a host and no characters that could break out
    of a Markdown link; else None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    if any(ch in url for ch in " <>\"'`()[]{}\\") or any(ord(ch) < 33 for ch in url):
        return None
    return url


def url_path(path: str) -> str:
    """A repository path (file names come from pull requests) as a URL path: every character
    other than letters, digits, `-._~` and `/` percent-encoded, so that a name can end neither a
    Markdown link nor an HTML attribute."""
    return quote(path, safe="/")


def url_query_value(value: str) -> str:
    """A value for a URL query string, percent-encoded (nothing of it stays syntax)."""
    return quote(value, safe="")


def html_attribute(value: str) -> str:
    """`value` escaped for a double- or single-quoted HTML attribute."""
    return _html_escape(value, quote=True)


# ---------------------------------------------------------------------------------------------
# The fixed words of generated pages.

UI: dict[str, dict[str, str]] = {
    "en": {
        "codes": "Codes",
        "reported_by": "Reported by",
        "family": "Family",
        "kind": "Kind",
        "status": "Status",
        "kind.specific": "specific",
        "kind.generic": "generic",
        "level.class": "class",
        "level.subject": "subject",
        "level.detail": "detail",
        "status.stable": "stable",
        "status.experimental": "experimental",
        "status.deprecated": "deprecated",
        "what_it_means": "What it means",
        "causes": "Likely causes",
        "fixes": "How to fix it",
        "fix_addresses": "Addresses",
        "confirm": "How to confirm",
        "who": "Who can do what",
        "who.sender": "What the sender can do",
        "who.admin": "What the admin can do",
        "who.recipient-admin": "what the recipient's admin must do",
        "who.sender.none": "Nothing on the sender's side fixes this: forward the bounce (NDR) to your email admin.",
        "fix.commands": "Commands",
        "confirm.checks": "Checks an admin can run (replace the example names with those in your error):",
        "check.trace": "Find the message in the message trace and read the failed event:",
        "check.tcp": "Test whether the destination accepts a TCP connection on port 25 (PowerShell, then a Unix shell):",
        "check.dns": "Ask DNS for the domain's mail servers:",
        "check.tls": "Look at the certificate and TLS versions the server offers:",
        "check.probe": "Let mailtriage probe the destination (DNS, TCP, SMTP, STARTTLS, certificate; it never sends a message):",
        "check.postfix": "See what Postfix holds in its queue and why:",
        "check.exim": "See what Exim holds in its queue and how it routes the address:",
        "check.diagnose": "Paste the error itself into mailtriage:",
        "confirm.conditions": "The conditions this rule matches",
        "confirm.any": "This rule applies when **any** of the following holds:",
        "confirm.all": "This rule applies when **all** of the following hold:",
        "confirm.one": "This rule applies when:",
        "confirm.note": "Field names are the fact vocabulary of `mailtriage diagnose` (see [Reading an error]({reading})).",
        "cond.all": "all of:",
        "cond.any": "any of:",
        "cond.not": "not:",
        "op.equals": "is",
        "op.one_of": "is one of",
        "op.matches": "matches the pattern",
        "op.less_than": "is less than",
        "op.at_most": "is at most",
        "op.greater_than": "is greater than",
        "op.at_least": "is at least",
        "op.exists.true": "is known",
        "op.exists.false": "is not known",
        "examples": "Examples",
        "examples.match": "These are diagnosed as this rule:",
        "examples.no_match": "These are **not** this rule:",
        "examples.facts": "with",
        "references": "References",
        "see_also": "See also",
        "edit": "Edit this rule",
        "deprecated.title": "Deprecated rule",
        "deprecated.body": "This rule is no longer used. See [{title}]({url}) instead.",
        "untranslated.title": "Not yet translated",
        "untranslated.body": "",
        "cause.none": "No causes are recorded for this rule yet.",
        "fix.none": "No fixes are recorded for this rule yet.",
        "index.by_code": "Rules by code",
        "index.by_code.intro": "Every code the knowledge base explains, grouped by enhanced status class and subject. Specific rules come first, then the generic meaning of the code.",
        "index.by_family": "Rules by symptom family",
        "index.by_family.intro": "Rules grouped by where the failure happens: DNS, TCP, SMTP, TLS, authentication, policy and so on.",
        "index.by_system": "Rules by reporting system",
        "index.by_system.intro": "Rules grouped by the system that reports the error to you. Generic rules apply to every system.",
        "index.codes": "Codes table",
        "index.codes.intro": "One row per code and rule. Use your browser's find (Ctrl+F) or the search box.",
        "index.count": "{count} rules.",
        "col.code": "Code",
        "col.rule": "Rule",
        "col.family": "Family",
        "col.systems": "Systems",
        "col.kind": "Kind",
        "no_code": "Without a status code",
        "subject.other": "Other codes",
        "class.2": "2.X.X Success",
        "class.4": "4.X.X Persistent transient failure",
        "class.5": "5.X.X Permanent failure",
        "system.any": "any",
        "system.other": "another system",
    },
    "pt-BR": {
        "codes": "Códigos",
        "reported_by": "Reportado por",
        "family": "Família",
        "kind": "Tipo",
        "status": "Situação",
        "kind.specific": "específica",
        "kind.generic": "genérica",
        "level.class": "classe",
        "level.subject": "assunto",
        "level.detail": "detalhe",
        "status.stable": "estável",
        "status.experimental": "experimental",
        "status.deprecated": "obsoleta",
        "what_it_means": "O que significa",
        "causes": "Causas prováveis",
        "fixes": "Como corrigir",
        "fix_addresses": "Resolve",
        "confirm": "Como confirmar",
        "who": "Quem pode fazer o quê",
        "who.sender": "O que o remetente pode fazer",
        "who.admin": "O que o administrador pode fazer",
        "who.recipient-admin": "o que o administrador do destinatário precisa fazer",
        "who.sender.none": "Nada do lado do remetente corrige isto: encaminhe o relatório de falha na entrega (NDR) ao administrador de email.",
        "fix.commands": "Comandos",
        "confirm.checks": "Verificações que um administrador pode executar (substitua os nomes de exemplo pelos do seu erro):",
        "check.trace": "Localize a mensagem no rastreamento de mensagens e leia o evento de falha:",
        "check.tcp": "Teste se o destino aceita uma conexão TCP na porta 25 (PowerShell, depois um shell Unix):",
        "check.dns": "Consulte no DNS os servidores de email do domínio:",
        "check.tls": "Veja o certificado e as versões de TLS que o servidor oferece:",
        "check.probe": "Deixe o mailtriage sondar o destino (DNS, TCP, SMTP, STARTTLS, certificado; ele nunca envia uma mensagem):",
        "check.postfix": "Veja o que o Postfix mantém na fila e por quê:",
        "check.exim": "Veja o que o Exim mantém na fila e como ele roteia o endereço:",
        "check.diagnose": "Cole o próprio erro no mailtriage:",
        "confirm.conditions": "As condições que esta regra verifica",
        "confirm.any": "Esta regra se aplica quando **qualquer** uma das condições abaixo vale:",
        "confirm.all": "Esta regra se aplica quando **todas** as condições abaixo valem:",
        "confirm.one": "Esta regra se aplica quando:",
        "confirm.note": "Os nomes de campo são o vocabulário de fatos do `mailtriage diagnose` (veja [Como ler um erro]({reading})).",
        "cond.all": "todas estas:",
        "cond.any": "qualquer uma destas:",
        "cond.not": "não:",
        "op.equals": "é",
        "op.one_of": "é um de",
        "op.matches": "corresponde ao padrão",
        "op.less_than": "é menor que",
        "op.at_most": "é no máximo",
        "op.greater_than": "é maior que",
        "op.at_least": "é no mínimo",
        "op.exists.true": "é conhecido",
        "op.exists.false": "não é conhecido",
        "examples": "Exemplos",
        "examples.match": "Estes são diagnosticados como esta regra:",
        "examples.no_match": "Estes **não** são esta regra:",
        "examples.facts": "com",
        "references": "Referências",
        "see_also": "Veja também",
        "edit": "Editar esta regra",
        "deprecated.title": "Regra obsoleta",
        "deprecated.body": "Esta regra não é mais usada. Veja [{title}]({url}).",
        "untranslated.title": "Tradução pendente",
        "untranslated.body": "{count} de {total} textos desta regra ainda não foram traduzidos ou mudaram em inglês desde a tradução; eles aparecem em inglês abaixo. [Ajude a traduzir]({guide}): o arquivo de tradução é {path}.",
        "cause.none": "Ainda não há causas registradas para esta regra.",
        "fix.none": "Ainda não há correções registradas para esta regra.",
        "index.by_code": "Regras por código",
        "index.by_code.intro": "Todos os códigos que a base de conhecimento explica, agrupados por classe e assunto do código de status estendido. Regras específicas vêm primeiro, depois o significado genérico do código.",
        "index.by_family": "Regras por família de sintoma",
        "index.by_family.intro": "Regras agrupadas por onde a falha acontece: DNS, TCP, SMTP, TLS, autenticação, política e assim por diante.",
        "index.by_system": "Regras por sistema que reporta",
        "index.by_system.intro": "Regras agrupadas pelo sistema que reporta o erro a você. Regras genéricas valem para todos os sistemas.",
        "index.codes": "Tabela de códigos",
        "index.codes.intro": "Uma linha por código e regra. Use a busca do navegador (Ctrl+F) ou a caixa de pesquisa.",
        "index.count": "{count} regras.",
        "col.code": "Código",
        "col.rule": "Regra",
        "col.family": "Família",
        "col.systems": "Sistemas",
        "col.kind": "Tipo",
        "no_code": "Sem código de status",
        "subject.other": "Outros códigos",
        "class.2": "2.X.X Sucesso",
        "class.4": "4.X.X Falha temporária persistente",
        "class.5": "5.X.X Falha permanente",
        "system.any": "qualquer",
        "system.other": "outro sistema",
    },
}

# Only the pt-BR note needs the counts; English pages are never "untranslated".
UI["en"]["untranslated.body"] = UI["pt-BR"]["untranslated.body"]

FAMILIES: dict[str, dict[str, str]] = {
    "dns": {"en": "DNS", "pt-BR": "DNS"},
    "tcp": {"en": "TCP connection", "pt-BR": "Conexão TCP"},
    "smtp": {"en": "SMTP dialogue", "pt-BR": "Diálogo SMTP"},
    "tls": {"en": "TLS and certificates", "pt-BR": "TLS e certificados"},
    "authentication": {"en": "Authentication (SPF, DKIM, DMARC, SMTP AUTH)", "pt-BR": "Autenticação (SPF, DKIM, DMARC, SMTP AUTH)"},
    "policy": {"en": "Policy and reputation", "pt-BR": "Política e reputação"},
    "mailbox": {"en": "Mailbox", "pt-BR": "Caixa postal"},
    "routing": {"en": "Routing and addressing", "pt-BR": "Roteamento e endereçamento"},
    "content": {"en": "Message content", "pt-BR": "Conteúdo da mensagem"},
    "protocol": {"en": "Protocol", "pt-BR": "Protocolo"},
    "system": {"en": "Mail system", "pt-BR": "Sistema de e-mail"},
    "connector": {"en": "Connectors (Microsoft 365)", "pt-BR": "Conectores (Microsoft 365)"},
    "other": {"en": "Other", "pt-BR": "Outros"},
}

SYSTEMS: dict[str, str] = {
    "exchange-online": "Exchange Online / EOP",
    "exchange-server": "Exchange Server",
    "postfix": "Postfix",
    "exim": "Exim",
    "sendmail": "Sendmail",
    "qmail": "qmail",
    "gmail": "Gmail",
    "outlook-com": "Outlook.com",
    "yahoo": "Yahoo",
    "mailtriage-probe": "mailtriage probe",
    "other": "Other",
    "any": "Any system",
}

# Enhanced status code subjects (RFC 3463), for the by-code index headings.
SUBJECTS: dict[str, dict[str, str]] = {
    "0": {"en": "Other or undefined status", "pt-BR": "Outro status ou indefinido"},
    "1": {"en": "Addressing status", "pt-BR": "Endereçamento"},
    "2": {"en": "Mailbox status", "pt-BR": "Caixa postal"},
    "3": {"en": "Mail system status", "pt-BR": "Sistema de e-mail"},
    "4": {"en": "Network and routing status", "pt-BR": "Rede e roteamento"},
    "5": {"en": "Mail delivery protocol status", "pt-BR": "Protocolo de entrega"},
    "6": {"en": "Message content or media status", "pt-BR": "Conteúdo da mensagem"},
    "7": {"en": "Security or policy status", "pt-BR": "Segurança ou política"},
}


def ui(lang: str, key: str, **values: object) -> str:
    """A fixed phrase in `lang` (English if the language or phrase is unknown)."""
    table = UI.get(lang, UI["en"])
    text = table.get(key, UI["en"][key])
    return text.format(**values) if values else text


def family_name(family: str, lang: str) -> str:
    names = FAMILIES.get(family)
    return names.get(lang, names["en"]) if names else family


def system_name(system: str, lang: str) -> str:
    if system == "any":
        return ui(lang, "system.any").capitalize() if lang != "en" else SYSTEMS["any"]
    if system == "other":
        return ui(lang, "system.other").capitalize()
    return SYSTEMS.get(system, system)
