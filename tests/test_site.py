"""The troubleshooting site: a strict build of the real site, its pages and links, the paste page's
matcher against the Python engine (under Node), hostile rule text, and a headless browser.

Two builds per session (module-scoped): the real site from `rules/`, and a fixture site from
`tests/data/site/` (a hostile rule, a deprecated rule, full and stale translations) built with the
offline plugin on, so it is also checked from file:// URLs.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import example as hypothesis_example
from hypothesis import given, settings
from hypothesis import strategies as st

from mailtriage.cli.reference import iter_commands, wrap_long_lines
from mailtriage.engine import Engine
from mailtriage.facts import coerce_value, vocabulary
from mailtriage.intake.reply import parse_reply, read_reply
from mailtriage.loader import load_knowledge_base
from mailtriage.model import Rule, Status
from mailtriage.site_export import UnsupportedPattern, export_pattern, export_reading, reporting_systems
from mailtriage.site_text import md_text, plain_title, safe_url

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data" / "site"
PASTE_JS = REPO / "engine" / "mailtriage" / "site_assets" / "paste.js"
NODE = shutil.which("node")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
LANGS = {"en": "", "pt-BR": "pt-BR/"}
# The default of `site_url: !ENV [SITE_URL, "..."]`: where the published site lives.
SITE_PATH = urlsplit(re.search(r'^site_url: !ENV \[SITE_URL, "([^"]+)"\]', (REPO / "mkdocs.yml").read_text(encoding="utf-8"), re.M).group(1)).path  # type: ignore[union-attr]

needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed (the paste page's matcher runs under Node)")


@dataclass
class BuiltSite:
    root: Path
    rules: dict[str, Rule]
    seconds: float
    log: str
    directory_urls: bool = True

    def page(self, lang: str, path: str) -> Path:
        """The HTML file of a page given by its directory-style path (`rules/x/`)."""
        base = self.root / LANGS[lang]
        if self.directory_urls:
            return base / path / "index.html" if path else base / "index.html"
        return base / (path.rstrip("/") + ".html") if path else base / "index.html"

    def html(self, lang: str, path: str) -> str:
        return self.page(lang, path).read_text(encoding="utf-8")


def build(site_dir: Path, config: Path, offline: bool = False) -> tuple[subprocess.CompletedProcess[str], float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "engine"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["NO_MKDOCS_2_WARNING"] = "1"
    env["OFFLINE"] = "true" if offline else "false"
    env.pop("SITE_URL", None)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site_dir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result, time.perf_counter() - started


def fixture_config(tmp: Path, rules_dir: Path) -> Path:
    """A config that inherits the real one and points the plugin at other rules."""
    config = tmp / "mkdocs.yml"
    config.write_text(
        f"INHERIT: {REPO / 'mkdocs.yml'}\n"
        f"docs_dir: {REPO / 'site'}\n"
        # Relative paths of the inherited config resolve against this file's folder.
        "theme:\n"
        "  name: material\n"
        f"  custom_dir: {REPO / 'engine' / 'mailtriage' / 'site_assets' / 'theme'}\n"
        "plugins:\n"
        "  mailtriage:\n"
        f"    rules_dir: {rules_dir}\n"
        f"    repo_root: {REPO}\n",
        encoding="utf-8",
    )
    return config


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> BuiltSite:
    out = tmp_path_factory.mktemp("site") / "public"
    result, seconds = build(out, REPO / "mkdocs.yml")
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    rules = load_knowledge_base([REPO / "rules"]).rules
    return BuiltSite(out, rules, seconds, result.stderr)


@pytest.fixture(scope="module")
def fixture_site(tmp_path_factory: pytest.TempPathFactory) -> BuiltSite:
    tmp = tmp_path_factory.mktemp("fixture-site")
    result, seconds = build(tmp / "public", fixture_config(tmp, DATA), offline=True)
    assert result.returncode == 0, f"fixture site build failed:\n{result.stdout}\n{result.stderr}"
    rules = load_knowledge_base([DATA]).rules
    return BuiltSite(tmp / "public", rules, seconds, result.stderr, directory_urls=False)


# ---------------------------------------------------------------------------------------------
# HTML inspection


class _Elements(HTMLParser):
    """Every start tag with its attributes, and the page text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self._in_script = False
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)
        else:
            self.text.append(data)


def parse(html: str) -> _Elements:
    parser = _Elements()
    parser.feed(html)
    return parser


def html_files(root: Path) -> Iterator[Path]:
    yield from sorted(root.rglob("*.html"))


# ---------------------------------------------------------------------------------------------
# The real site


def test_strict_build_passes_and_reports_rule_pages(site: BuiltSite) -> None:
    assert f"Generated {len(site.rules)} rule pages" in site.log
    assert "WARNING" not in site.log


def test_every_rule_has_a_page_in_each_language(site: BuiltSite) -> None:
    missing = [
        f"{lang}:{rule_id}"
        for rule_id in site.rules
        for lang in LANGS
        if not site.page(lang, f"rules/{rule_id}/").is_file()
    ]
    assert not missing


def test_rule_page_shows_codes_causes_numbered_fixes_conditions_and_edit_link(site: BuiltSite) -> None:
    rule = site.rules["exo-connector-connection-refused"]
    page = parse(site.html("en", f"rules/{rule.id}/"))
    text = "".join(page.text)
    for code in rule.codes:
        assert code in text
    for cause in rule.causes:
        assert cause.title in text
    for fix in rule.fixes:
        assert fix.title in text
        # Backtick spans are shown as code, without the backticks.
        assert all(" ".join(step.replace("`", "").split()) in " ".join(text.split()) for step in fix.steps)
    assert "smtp.enhanced" in text and "is one of" in text
    ordered_lists = [tag for tag, _ in page.tags if tag == "ol"]
    assert len(ordered_lists) >= len(rule.fixes)
    edit_links = [attrs["href"] for tag, attrs in page.tags if tag == "a" and "edit/main/rules/" in attrs.get("href", "")]
    assert edit_links and edit_links[0].endswith("rules/exchange-online/connector-connection-refused.yaml")
    references = {attrs.get("href") for tag, attrs in page.tags if tag == "a"}
    assert {r.url for r in rule.references} <= references


@pytest.mark.parametrize(("lang", "sender", "admin"), [("en", "What the sender can do", "What the admin can do"),
                                                      ("pt-BR", "O que o remetente pode fazer", "O que o administrador pode fazer")])
def test_rule_page_splits_fixes_by_audience_renders_commands_and_collapses_conditions(site: BuiltSite, lang: str, sender: str, admin: str) -> None:
    rule = site.rules["exo-connector-connection-refused"]
    html = site.html(lang, f"rules/{rule.id}/")
    page = parse(html)
    text = " ".join(" ".join(page.text).split())
    raw = "".join(page.text)
    assert sender in text and admin in text
    ids = {attrs.get("id") for _, attrs in page.tags}
    split_links = [attrs["href"] for tag, attrs in page.tags if tag == "a" and attrs.get("href", "").startswith("#fix-")]
    assert {f"#fix-{fix.id}" for fix in rule.fixes if fix.audience} <= set(split_links)
    assert all(href[1:] in ids for href in split_links)
    # Commands are highlighted code blocks (PowerShell and shell), exactly as the rule gives them.
    classes = " ".join(attrs.get("class", "") for _, attrs in page.tags)
    assert "language-powershell" in classes and "language-sh" in classes
    for fix in rule.fixes:
        for command in fix.commands:
            assert command.run in raw
    # How to confirm: checks to run, then the matching conditions in a closed <details>.
    assert "Test-NetConnection mail.fabrikam.example -Port 25" in raw
    assert "openssl s_client -starttls smtp" in raw and "mailtriage probe fabrikam.example" in raw
    details = [attrs for tag, attrs in page.tags if tag == "details" and "mt-conditions" in attrs.get("class", "")]
    assert len(details) == 1 and "open" not in details[0]
    conditions = html[html.index('class="mt-conditions"'):]
    assert "smtp.enhanced" in conditions[: conditions.index("</details>")]


def test_portuguese_rule_page_shows_translated_captions(site: BuiltSite) -> None:
    rule = site.rules["exo-connector-connection-refused"]
    text = " ".join(" ".join(parse(site.html("pt-BR", f"rules/{rule.id}/")).text).split())
    captions = [(i, e) for i, e in enumerate(rule.examples_match) if e.note]
    assert captions
    for index, example in captions:
        portuguese = rule.note("match", index, "pt-BR")
        assert portuguese != example.note
        assert " ".join(portuguese.split()) in text
        assert example.note not in text


@pytest.mark.parametrize("lang", list(LANGS))
def test_untranslated_rule_pages_say_so_and_translated_ones_do_not(site: BuiltSite, lang: str) -> None:
    for rule in site.rules.values():
        html = site.html(lang, f"rules/{rule.id}/")
        expect_note = lang != "en" and not rule.is_translated(lang)
        assert ("mt-untranslated" in html) == expect_note, rule.id
        if lang != "en":
            assert rule.text("title", lang) in " ".join(parse(html).text)


def test_internal_links_resolve(site: BuiltSite) -> None:
    broken = []
    checked = 0
    for file in html_files(site.root):
        for tag, attrs in parse(file.read_text(encoding="utf-8")).tags:
            target = attrs.get("href") if tag in ("a", "link") else attrs.get("src") if tag in ("script", "img") else None
            if not target:
                continue
            parts = urlsplit(target)
            if parts.scheme or parts.netloc or not parts.path:
                continue
            if parts.path.startswith("/"):  # the 404 page links from the site_url's path
                assert parts.path.startswith(SITE_PATH), f"{file} -> {target}"
                resolved = (site.root / unquote(parts.path[len(SITE_PATH):])).resolve()
            else:
                resolved = (file.parent / unquote(parts.path)).resolve()
            if target.endswith("/") or resolved.is_dir():
                resolved = resolved / "index.html"
            checked += 1
            if not resolved.is_file():
                broken.append(f"{file.relative_to(site.root)} -> {target}")
    assert checked > 100
    assert not broken, broken[:20]


def test_index_pages_link_every_active_rule(site: BuiltSite) -> None:
    for lang in LANGS:
        for index in ("browse/by-code/", "browse/by-family/", "browse/by-system/", "browse/codes/"):
            html = site.html(lang, index)
            for rule in site.rules.values():
                if rule.status is not Status.DEPRECATED:
                    assert f"rules/{rule.id}/" in html, (lang, index, rule.id)


@pytest.mark.parametrize("lang", list(LANGS))
def test_cli_reference_lists_every_command_with_its_help(site: BuiltSite, lang: str) -> None:
    text = " ".join(parse(site.html(lang, "cli-reference/")).text)
    for command in iter_commands():
        assert command.path in text
        usage = command.help_text.splitlines()[0]
        assert usage in text, usage


def test_language_switcher_links_a_rule_page_to_its_other_language(site: BuiltSite) -> None:
    rule_id = next(iter(site.rules))
    page = parse(site.html("en", f"rules/{rule_id}/"))
    hreflangs = {attrs.get("hreflang"): attrs.get("href", "") for tag, attrs in page.tags if tag == "a" and attrs.get("hreflang")}
    assert hreflangs.get("pt-BR", "").endswith(f"pt-BR/rules/{rule_id}/")


def test_offline_friendly_theme_has_no_external_fonts_or_scripts(site: BuiltSite) -> None:
    page = parse(site.html("en", "paste/"))
    external = [
        attrs.get("href") or attrs.get("src")
        for tag, attrs in page.tags
        if (tag == "script" or (tag == "link" and attrs.get("rel") in ("stylesheet", "preload", "modulepreload", "preconnect")))
        and urlsplit(attrs.get("href") or attrs.get("src") or "").netloc
    ]
    assert not external


# ---------------------------------------------------------------------------------------------
# rules.json and the paste page's matcher


def exported(site: BuiltSite) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((site.root / "assets" / "mailtriage" / "rules.json").read_text(encoding="utf-8"))
    return data


def test_rules_json_has_every_active_rule_with_titles_urls_and_match(site: BuiltSite) -> None:
    data = exported(site)
    by_id = {r["id"]: r for r in data["rules"]}
    active = {r.id for r in site.rules.values() if r.status is not Status.DEPRECATED}
    assert set(by_id) == active
    assert data["skipped"] == []
    for rule_id, entry in by_id.items():
        assert set(entry["title"]) == set(LANGS)
        assert entry["title"]["en"] == site.rules[rule_id].title
        assert site.page("en", entry["url"]).is_file()
        assert entry["match"] == json.loads(json.dumps(entry["match"]))


def test_rules_json_carries_the_log_readers_patterns_and_tables(site: BuiltSite) -> None:
    """The page reads a log line with Python's own patterns and tables (intake.logs, detect_kind),
    exported whole, and infers who wrote it from the log-tag markers."""
    from mailtriage.intake import DETECTION_PATTERNS
    from mailtriage.intake.logs import EXPORTED_PATTERNS

    context = exported(site)["context"]
    assert context == json.loads(json.dumps(export_reading()))
    assert set(context["logs"]["patterns"]) == set(EXPORTED_PATTERNS)
    assert set(DETECTION_PATTERNS) <= set(context["detection"])
    assert context["skipped"] == []
    systems = {m["value"] for m in context["markers"] if m["sources"] == ["log-tag"]}
    assert {"postfix", "sendmail", "exim"} <= systems
    assert context["source_labels"]["log-tag"] == {"en": "log tag", "pt-BR": "identificador do log"}


def run_node(cases: list[dict[str, Any]], rules_json: Path | None, parse_only: bool = False) -> dict[str, Any]:
    assert NODE is not None
    request = {"script": str(PASTE_JS), "rules": str(rules_json) if rules_json else None, "cases": cases,
               "parse_only": parse_only, "context": None if rules_json else export_reading()}
    result = subprocess.run([NODE, str(DATA / "node_harness.js")], input=json.dumps(request), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def example_requests(rules: dict[str, Rule]) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, reply, extra facts coerced to their types) of every example with a reply."""
    fields = vocabulary()
    cases = []
    for rule in rules.values():
        for kind, examples in (("match", rule.examples_match), ("no_match", rule.examples_no_match)):
            for index, example in enumerate(examples):
                if example.reply is None:
                    continue
                extra = {name: coerce_value(fields[name], value) for name, value in example.facts.items()}
                cases.append((f"{rule.id} {kind}[{index}]", example.reply, extra))
    return cases


def assert_page_agrees_with_engine(site: BuiltSite, rules_dir: Path) -> int:
    from mailtriage.triage import diagnose_text

    engine = Engine.load([rules_dir], bundled=False, backend="python", use_cache=False)
    cases = example_requests(site.rules)
    answer = run_node([{"text": reply, "extra": extra} for _, reply, extra in cases], site.root / "assets" / "mailtriage" / "rules.json")
    assert answer["broken"] == []
    disagreements = []
    for (label, reply, extra), result in zip(cases, answer["results"], strict=True):
        # As `mailtriage diagnose REPLY --fact ...` reads it (a log line with the log reader).
        found = diagnose_text(reply, facts=extra, engine=engine)
        expected = sorted(m.rule.id for m in found[0].diagnosis.matches) if found else []
        inferred = found[0].diagnosis.inferred if found else []
        if sorted(result["matches"]) != expected:
            disagreements.append(f"{label}: {reply!r} page={result['matches']} engine={expected}")
        # What the page says it inferred, and from what, is what `diagnose` says.
        if result["inferred"] != [fact.to_dict() for fact in inferred]:
            disagreements.append(f"{label}: {reply!r} page inferred {result['inferred']}, diagnose {inferred}")
    assert not disagreements, "\n".join(disagreements)
    return len(cases)


@needs_node
def test_paste_page_matcher_agrees_with_python_engine_on_every_example(site: BuiltSite) -> None:
    assert assert_page_agrees_with_engine(site, REPO / "rules") >= 1


@needs_node
def test_paste_page_matcher_agrees_on_fixture_rules(fixture_site: BuiltSite) -> None:
    assert assert_page_agrees_with_engine(fixture_site, DATA) >= 5


@needs_node
def test_paste_page_orders_specific_before_generic(fixture_site: BuiltSite) -> None:
    answer = run_node([{"text": "552 5.2.3 Message too big", "extra": {}}, {"text": "552 5.2.2 Mailbox full", "extra": {}}], fixture_site.root / "assets" / "mailtriage" / "rules.json")
    assert answer["results"][0]["matches"] == ["site-fixture-stale"]
    assert answer["results"][1]["matches"] == ["site-fixture-new"]


REPLY_SAMPLES = [
    "450 4.4.316 Connection refused [Message=Socket error code 10061] [LastAttemptedServerName=mail.contoso.com] [LastAttemptedIP=192.0.2.10:25]",
    "550 5.4.316 Message expired, connection refused",
    "550-5.7.26 Unauthenticated email\n550 5.7.26 is not accepted",
    "4.4.7 Message delayed",
    "Remote server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'",
    "[LastAttemptedIP=2001:db8::1:25] 451 4.4.0 DNS query failed",
    "451 #4.4.0 [LastAttemptedIP=192.0.2.1] x",
    "421\t4.3.2   Service   not available ",
    "550 5.7.1 [Message=]",
    "no code here",
    "",
    "250 2.0.0 OK 1.2.3.4",
    "the error 5.7.1 came after 10.0.0.1",
    "550 5.7.1 [MESSAGE=Upper] [lastattemptedservername=  host.example. ]",
    "ſocket error code 10060 in 451 4.4.1",
    "host mx.example.com[192.0.2.7] refused to talk to me: 421 4.3.2 Service not available",
    "SMTP error from remote mail server after initial connection: 554 5.7.1 Access denied",
    "451 4.4.2 SMTP timeout after sending EHLO: Connection timed out",
    "451 4.4.2 conversation with mx.example.com[192.0.2.7] timed out while receiving the initial server greeting",
    # Bounces pasted whole: the returned message's headers are not part of the error.
    "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; not found'\n\nOriginal message headers:\n\n"
    "Received: from a.example (192.0.2.1) by mx.example.com\nTo: bob@contoso.com\nSubject: 550 5.7.1 rejected",
    "<bob@example.net>: host mx.example.net[192.0.2.9] said: 550 5.1.1 User unknown\n"
    "--- Below this line is a copy of the message.\n\nReceived: by mail.example.org (Postfix)",
    "  ----- Original message -----\n550 5.7.1 at the start: nothing is cut",
    "550 5.7.1 x\r\n\u2028original message\n  == Returned message ==\nReceived: 452 4.2.2",
    # A code that closes the sentence; DNS wordings of DragonFly and OpenSMTPD.
    "Sorry, I couldn't find any host named nowhere.example. (#5.1.2)",
    "550 5.1.1 (#5.1.1)",
    "DNS lookup failure: host gone.example.jp not found",
    "451 4.4.3 Temporary failure in MX lookup",
    "No MX found for domain example.jp 4.4.4",
    "  |---- Message text follows: ----|\n550 5.7.1 quoted",
]


def assert_same_reading(page: dict[str, Any], text: str) -> None:
    """The page's readReply gives read_reply's facts and inferred context, evidence included."""
    facts, inferred = read_reply(text)
    assert page["facts"] == facts, repr(text)
    assert page["inferred"] == [fact.to_dict() for fact in inferred], repr(text)


# Replies as they really appear, one per kind of evidence the context step reads from a pasted text.
INFERENCE_CASES = [
    "postfix/smtp[123]: ABC: to=<a@b.example>, relay=none, delay=30, status=deferred (connect to mx.b.example[192.0.2.1]:25: Connection refused)",
    "sendmail[77]: x05A0: to=<b@c.example>, dsn=4.0.0, stat=Deferred: Connection refused by mx.c.example.",
    "connect to mx.b.example[192.0.2.1]:25: Connection refused [LastAttemptedServerName=mx.b.example]",
    "550 5.7.520 Access denied, Your organization does not allow external forwarding. AS(7555) "
    "[BN8NAM12FT054.eop-nam12.prod.protection.outlook.com 2024-05-01T10:00:00.000Z 08DC6A1B2C3D4E5F]",
    "550-5.7.26 Unauthenticated email from example.org is not accepted due to domain's DMARC policy. - gsmtp",
    "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
    "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent (S3150). http://mail.live.com/mail/troubleshooting.aspx#errors "
    "[AM4PEPF00025F9A.EURPRD83.prod.outlook.com 2024-05-01T10:00:00.000Z]",
    "host gmail-smtp-in.l.google.com[192.0.2.3] said: 452 4.2.2 The recipient's inbox is out of storage space.",
    "host mta7.am0.yahoodns.net[192.0.2.4] said: 554 5.7.9 Message not accepted for policy reasons",
    "host hotmail-com.olc.protection.outlook.com[192.0.2.5] said: 550 5.5.0 Requested action not taken: mailbox unavailable",
    "host contoso-com.mail.protection.outlook.com[192.0.2.6] said: 550 5.7.606 Access denied, banned sending IP",
    "550 5.4.316 Message expired, connection refused(Socket error code 10061)",
    "450 4.4.316 Connection refused [Message=Socket error code 10061] [LastAttemptedIP=192.0.2.10:25]",
    "Generating server: DM6PR12MB1234.namprd12.prod.outlook.com 550 5.1.10 RESOLVER.ADR.RecipientNotFound",
    "451 4.4.0 DNS query failed for the outbound connector contoso-to-partner",
    "530 5.7.57 Client not authenticated to send mail. \x1b[31m smtp.office365.com",
]


@needs_node
def test_paste_page_and_diagnose_agree_on_every_inference_case() -> None:
    answer = run_node([{"text": t} for t in INFERENCE_CASES], None, parse_only=True)
    inferred_fields = set()
    for text, result in zip(INFERENCE_CASES, answer["results"], strict=True):
        assert_same_reading(result["read"], text)
        inferred_fields.update(f["field"] for f in result["read"]["inferred"])
    # The table exercises every context field the pasted text can show.
    assert inferred_fields == {"context.system", "context.remote_provider", "context.direction", "context.destination"}


# MTA log lines pasted whole or without their syslog prefix, several per MTA, as `diagnose` reads
# them with intake.logs (the page gets its patterns in rules.json), and lines that are not
# failure lines: the page and `diagnose` must give the same answer on every one.
LOG_CASES = [
    # Postfix
    "May 16 08:00:03 relay postfix/smtp[1002]: 4AB12C3D4E: to=<bob@example.net>, relay=mx1.example.net[192.0.2.25]:25, "
    "delay=1.2, delays=0.1/0/0.6/0.5, dsn=5.1.1, status=bounced (host mx1.example.net[192.0.2.25] said: 550 5.1.1 "
    "<bob@example.net>: Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command))",
    "Jun  3 14:22:10 mx1 postfix/smtp[28812]: 9F1E2A0C3B: to=<carol@gmail.com>, relay=gmail-smtp-in.l.google.com[142.250.27.26]:25, "
    "delay=2.1, delays=0.02/0/0.51/1.6, dsn=5.7.26, status=bounced (host gmail-smtp-in.l.google.com[142.250.27.26] said: "
    "550-5.7.26 Unauthenticated email from example.org is not accepted due to domain's DMARC policy. 550 5.7.26 gsmtp "
    "(in reply to end of DATA command))",
    "2024-06-03T14:22:11.123456+02:00 mx1 postfix/smtp[28813]: 1A2B3C4D5E: to=<dan@slow.example>, relay=none, delay=3600, "
    "delays=3570/0.01/30/0, dsn=4.4.1, status=deferred (connect to mx.slow.example[203.0.113.9]:25: Connection timed out)",
    "postfix/smtp[2211]: 77AA88BB99: to=<erin@nowhere.example>, relay=none, delay=0.3, dsn=5.4.4, status=bounced "
    "(Host or domain name not found. Name service error for name=nowhere.example type=A: Host not found)",
    "Jun  3 14:25:00 mx1 postfix/smtp[28900]: 5C6D7E8F90: to=<frank@tls.example>, relay=mx.tls.example[198.51.100.77]:25, "
    "delay=5, dsn=4.7.4, status=deferred (TLS is required, but was not offered by host mx.tls.example[198.51.100.77])",
    "Jun  3 14:26:00 mx1 postfix/smtp[28901]: connect to mx.b.example[192.0.2.1]:25: Connection refused",
    "postfix-out/smtp[3131]: 0A1B2C3D4E: to=<g@contoso.com>, relay=contoso-com.mail.protection.outlook.com[52.101.1.1]:25, "
    "dsn=5.7.606, status=bounced (host contoso-com.mail.protection.outlook.com[52.101.1.1] said: 550 5.7.606 Access denied, "
    "banned sending IP [192.0.2.5]. (in reply to MAIL FROM command))",
    "Jun  3 14:30:00 mx1 postfix/smtp[28950]: 6E7F8A9B0C: to=<h@example.net>, orig_to=<h@alias.example>, relay=none, "
    "delay=432000, dsn=4.4.1, status=expired, returned to sender",
    # A delivered line first: the failure on the next line is the answer.
    "Jun  3 14:31:00 mx1 postfix/smtp[28951]: 1B2C3D4E5F: to=<ok@example.org>, relay=mx.example.org[192.0.2.60]:25, dsn=2.0.0, "
    "status=sent (250 2.0.0 Ok: queued as 4Xyz)\nJun  3 14:31:02 mx1 postfix/smtp[28951]: 1B2C3D4E5F: to=<no@example.org>, "
    "relay=mx.example.org[192.0.2.60]:25, dsn=5.2.2, status=bounced (host mx.example.org[192.0.2.60] said: 552 5.2.2 Mailbox full "
    "(in reply to RCPT TO command))",
    # Exim
    "** bob@example.com R=dnslookup T=remote_smtp H=mx.example.com [198.51.100.20]: SMTP error from remote mail server after "
    "RCPT TO:<bob@example.com>: 550 5.1.1 User unknown",
    "** nobody@gone.example: Unrouteable address",
    "** carol@example.org R=dnslookup T=remote_smtp: retry timeout exceeded",
    "== heidi@example.net R=dnslookup T=remote_smtp defer (111): Connection refused",
    "2024-05-16 09:00:01 1sABCD-000123-EF ** grace@example.com R=dnslookup T=remote_smtp H=mx.example.com [198.51.100.20] "
    "X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=yes: SMTP error from remote mail server after end of data: 552 5.3.4 Message size "
    "exceeds fixed maximum message size",
    "2024-05-16 09:00:02 1sABCD-000123-EF == ivan@example.org R=dnslookup T=remote_smtp defer (110): Connection timed out "
    "H=mx.example.org [203.0.113.40]",
    "2024-05-16 09:00:03 1sABCD-000124-EF ** judy@example.com <judy@alias.example> R=dnslookup T=remote_smtp "
    "H=alt1.aspmx.l.google.com [142.250.150.27]: SMTP error from remote mail server after pipelined end of data: "
    "421-4.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP address. 421 4.7.28 gsmtp",
    # Sendmail
    "sendmail[77]: x05A0: to=<b@c.example>, dsn=4.0.0, stat=Deferred: Connection refused by mx.c.example.",
    "May 16 11:00:01 smtp sendmail[12346]: 44GB0aX0012345: to=<judy@example.net>, delay=00:00:01, xdelay=00:00:01, "
    "mailer=esmtp, pri=120, relay=mx.example.net. [198.51.100.30], dsn=5.1.1, stat=User unknown",
    "May 16 11:00:03 smtp sm-mta[12347]: 44GB0aX0012346: to=<m@slow.example>, ctladdr=<a@example.org> (1000/1000), "
    "delay=04:00:00, xdelay=00:02:00, mailer=esmtp, pri=30000, relay=mx.slow.example., dsn=4.0.0, "
    "stat=Deferred: Connection timed out with mx.slow.example.",
    "May 16 11:00:04 smtp sendmail[12348]: 44GB0aX0012347: to=<n@example.com>, delay=00:00:02, mailer=esmtp, "
    "relay=mx.example.com. [192.0.2.44], dsn=5.0.0, stat=Service unavailable",
    "sm-mta[901]: 44GB0aX0012350: to=<o@yahoo.com>, delay=00:00:03, mailer=esmtp, relay=mta7.am0.yahoodns.net. [67.195.204.72], "
    "dsn=4.7.0, stat=Deferred: 421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or "
    "user complaints",
    # Exchange message tracking and protocol logs (intake.logs reads none of them: both say nothing).
    "2024-05-01T10:00:00.123Z,192.0.2.10,EXCH01,203.0.113.5,mx.fabrikam.example,;250 2.0.0 OK;ClientSubmitTime:,Outbound,"
    "FAIL,<abc@contoso.com>,bob@fabrikam.example,550 5.1.1 User unknown",
    "2024-05-01T10:00:00.456Z,Outbound to Internet,08DC6A1B2C3D4E5F,4,192.0.2.10:41234,203.0.113.5:25,<,"
    "550 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using Spamhaus,",
    "2024-05-01T10:00:01.789Z,EXCH01\\Default Frontend EXCH01,08DC6A1B2C3D4E60,7,10.0.0.5:25,192.0.2.77:50123,>,"
    "451 4.7.0 Temporary server error. Please try again later. PRX5,",
    # Not failure lines, or not log lines at all.
    "Jun  3 14:31:00 mx1 postfix/smtp[28951]: 1B2C3D4E5F: to=<ok@example.org>, relay=mx.example.org[192.0.2.60]:25, "
    "delay=0.4, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4XyzAbC)",
    "Jun  3 14:22:10 mx1 postfix/smtpd[1001]: connect from client.example.org[192.0.2.50]",
    "Jun  3 14:22:10 mx1 kernel: eth0: link up, 1000 Mbps",
    "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown in virtual mailbox table",
    "status=deferred is what the queue said, nothing else",
    "The mailbox is full, try later",
]


@needs_node
def test_paste_page_reads_log_lines_as_parse_input_does() -> None:
    """The facts and the inferred context (evidence: the log tag) of the first record, or none."""
    from mailtriage.intake import parse_input

    answer = run_node([{"text": t} for t in LOG_CASES], None, parse_only=True)
    kinds = []
    for text, result in zip(LOG_CASES, answer["results"], strict=True):
        records = parse_input(text)
        page = result["paste"]
        if not records:
            assert page == {"facts": {}, "inferred": [], "kind": None}, text
            continue
        assert (page["kind"], page["facts"]) == (records[0].kind, records[0].facts), text
        assert page["inferred"] == [fact.to_dict() for fact in records[0].inferred], text
        kinds.append(page["kind"])
    assert kinds.count("log") >= 15 and "reply" in kinds


# Pieces of Postfix, Exim and Sendmail lines, the fields their readers look for, and the characters
# on which JavaScript and Python differ (Unicode digits and spaces, line separators).
_LOG_PIECES = st.sampled_from([
    "May 16 08:00:03 relay ", "2024-05-16 09:00:01 ", "2024-06-03T14:22:11.123+02:00 mx1 ", "postfix/smtp[1002]: ",
    "postfix-out/lmtp[7]: ", "sendmail[77]: ", "sm-mta[901]: ", "1sABCD-000123-EF ", "** ", "== ", " ** ", " == ",
    "4AB12C3D4E: ", "to=<bob@example.net>, ", "to=<a@b>,<c@d>, ", "orig_to=<x@y>, ", "relay=mx1.example.net[192.0.2.25]:25, ",
    "relay=mx.example.net. [198.51.100.30], ", "relay=none, ", "relay=[2001:db8::1]:587, ", "relay=local, ", "dsn=5.1.1, ",
    "dsn=4.0.0, ", "dsn=2.0.0, ", "status=bounced ", "status=deferred ", "status=expired, returned to sender",
    "status=sent ", "stat=Deferred: ", "stat=User unknown", "stat=Sent (Ok)", " stat=", " status=",
    "(host mx1.example.net[192.0.2.25] said: 550 5.1.1 User unknown (in reply to RCPT TO command))",
    "(connect to mx.b.example[192.0.2.1]:25: Connection refused)", "connect to mx.b.example[192.0.2.1]:25: Connection timed out",
    "lost connection with mx.example[192.0.2.9] while sending RCPT TO", "warning: TLS is required", "SSL_connect error",
    "bob@example.com R=dnslookup T=remote_smtp H=mx.example.com [198.51.100.20]: ", "defer (111): Connection refused",
    "defer (-53): retry time not reached", "SMTP error from remote mail server after end of data: 552 5.3.4 Too big",
    "nobody@gone.example: Unrouteable address", "Connection refused by mx.c.example.", "421 4.7.0 [TSS04] deferred gsmtp",
    "(", ")", "<", ">", "[", "]", ",", ":", "=", " ", "\n", "\r\n", "\t", "\u00a0", "\u2028", "\x1c", "\x85", "\u0663",
    "\u0967\u0967\u0967", "\u00e9", "ſ", "K",
])
_LOG_CHARS = st.characters(max_codepoint=0xFFFF, blacklist_categories=("No", "Cs"), blacklist_characters="\u0130\u0131")
_LOG_TEXT = st.lists(st.one_of(_LOG_PIECES, st.text(alphabet=_LOG_CHARS, max_size=3)), max_size=14).map("".join)


@needs_node
@settings(max_examples=25, deadline=None)
@given(st.lists(_LOG_TEXT, min_size=1, max_size=30))
@hypothesis_example(["postfix/smtp[1]: to=<a@b.example>, relay=mx.\u0663.example[192.0.2.1]:\u0662\u0665, status=deferred (x 450 4.4.1 y)",
                     "== a@b.example defer (\u0661\u0661\u0661): x", "sendmail[1]: to=<a@b>, relay=h.\u00a0, dsn=5.1.1, stat=x"])
def test_paste_page_reads_log_lines_as_parse_input_does_fuzzed(texts: list[str]) -> None:
    from mailtriage.intake import parse_input

    answer = run_node([{"text": t} for t in texts], None, parse_only=True)
    for text, result in zip(texts, answer["results"], strict=True):
        records = parse_input(text)
        page = result["paste"]
        every = [{"facts": r.facts, "inferred": [f.to_dict() for f in r.inferred], "kind": r.kind} for r in records]
        assert page == (every[0] if every else {"facts": {}, "inferred": [], "kind": None}), repr(text)
        assert result["records"] == every, repr(text)


@needs_node
def test_paste_page_and_diagnose_give_the_same_answer_on_every_inference_case(site: BuiltSite) -> None:
    """End to end, as `mailtriage diagnose TEXT` reads a pasted text (a log line with the log
    reader, its `dsn=` field and its log tag as evidence): the same rules, best first, and the same
    inferred context with its evidence. The page shows the first record of a paste."""
    from mailtriage.triage import diagnose_text

    engine = Engine.load([REPO / "rules"], bundled=False, backend="python", use_cache=False)
    texts = [*INFERENCE_CASES, NDR_PASTE, *LOG_CASES]
    answer = run_node([{"text": t} for t in texts], site.root / "assets" / "mailtriage" / "rules.json")
    disagreements = []
    log_tags = 0
    for text, result in zip(texts, answer["results"], strict=True):
        found = diagnose_text(text, engine=engine)
        expected = [m.rule.id for m in found[0].diagnosis.matches] if found else []
        inferred = [f.to_dict() for f in found[0].diagnosis.inferred] if found else []
        if sorted(result["matches"]) != sorted(expected) or result["matches"][:1] != expected[:1]:
            disagreements.append(f"{text[:60]!r}: page={result['matches']} diagnose={expected}")
        if result["inferred"] != inferred:
            disagreements.append(f"{text[:60]!r}: page inferred {result['inferred']}, diagnose {inferred}")
        log_tags += any(f["source"] == "log-tag" for f in inferred)
    assert not disagreements, "\n".join(disagreements)
    assert log_tags >= 15


# A many-line log paste: three recipients, two kinds of failure, a delivery and a line of noise.
MANY_LINES = "\n".join([LOG_CASES[0], "May 16 08:00:04 relay postfix/qmgr[99]: 4AB12C3D4E: removed", LOG_CASES[2],
                         LOG_CASES[0].replace("bob@", "carl@"), "May 16 08:00:05 relay postfix/smtp[1003]: 5BC: to=<ok@example.net>, "
                         "relay=mx1.example.net[192.0.2.25]:25, delay=1, dsn=2.0.0, status=sent (250 2.0.0 Ok)"])


def _best_rules_grouped(text: str) -> list[list[Any]]:
    """`diagnose TEXT`'s best rule for each record, counted in order of first appearance."""
    from mailtriage.triage import diagnose_text

    engine = Engine.load([REPO / "rules"], bundled=False, backend="python", use_cache=False)
    counts: dict[str | None, int] = {}
    for found in diagnose_text(text, engine=engine):
        best = found.diagnosis.matches[0].rule.id if found.diagnosis.matches else None
        counts[best] = counts.get(best, 0) + 1
    return [[rule, count] for rule, count in counts.items()]


@needs_node
def test_paste_page_counts_every_failure_line_of_a_log_paste_under_the_rule_diagnose_gives_it(site: BuiltSite) -> None:
    """A many-line paste is not cut to its first line: every failure line `diagnose` reads is
    counted under the same best rule; deliveries and other lines are no records on either side."""
    texts = [MANY_LINES, "\n".join(LOG_CASES), LOG_CASES[0]]
    answer = run_node([{"text": t} for t in texts], site.root / "assets" / "mailtriage" / "rules.json")
    many, every_case, one = answer["results"]
    assert many["records"] == 3
    assert many["groups"] == _best_rules_grouped(MANY_LINES)
    assert [count for _rule, count in many["groups"]] == [2, 1]
    assert every_case["groups"] == _best_rules_grouped("\n".join(LOG_CASES))
    assert every_case["records"] >= 15
    assert (one["records"], one["groups"]) == (1, [])



@needs_node
def test_paste_page_matches_at_most_its_limit_of_a_huge_log_paste_and_counts_the_rest(site: BuiltSite) -> None:
    """A pasted log of thousands of failure lines: every line is counted, the first 500 are
    matched (a bounded cost per keystroke), and nothing is dropped without being counted."""
    lines = [LOG_CASES[0].replace("bob@", f"user{n}@") for n in range(1200)]
    answer = run_node([{"text": "\n".join(lines)}], site.root / "assets" / "mailtriage" / "rules.json")
    [result] = answer["results"]
    assert result["records"] == 1200
    assert sum(count for _rule, count in result["groups"]) == 500


@pytest.mark.parametrize(("lang", "heading"), [("en", "All 3 failure lines in your text"),
                                               ("pt-BR", "As 3 linhas de falha do seu texto")])
def test_paste_page_in_browser_lists_every_failure_line_of_a_log_paste(browser: Any, served: str, lang: str, heading: str) -> None:
    page, errors = _open_paste(browser, served, lang, width=390)
    _diagnose_in_page(page, MANY_LINES)
    section = page.locator(".mt-paste-records")
    section.wait_for(timeout=5000)
    _screenshot(page, f"paste-many-lines-390-{lang}")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390  # no sideways scroll on a phone
    assert _axe(page) == []
    assert section.locator("h2").inner_text() == heading
    groups = section.locator("ul.mt-paste-record-groups > li")
    expected = _best_rules_grouped(MANY_LINES)
    assert groups.count() == len(expected)
    for index, (rule, count) in enumerate(expected):
        item = groups.nth(index)
        assert item.get_attribute("data-count") == str(count)
        assert item.locator("a.mt-paste-link").get_attribute("data-rule-id") == rule
        assert item.locator("a.mt-paste-link").get_attribute("href").endswith(f"rules/{rule}/")
    # The cards still explain the first line, and say so.
    assert page.locator("#mt-paste-output > h2").first.inner_text() != section.locator("h2").inner_text()
    _diagnose_in_page(page, LOG_CASES[0])  # one line: no list
    page.wait_for_function("() => !document.querySelector('.mt-paste-records')", timeout=5000)
    assert not errors
    page.close()


@needs_node
def test_paste_page_parser_matches_parse_reply_on_samples() -> None:
    answer = run_node([{"text": t} for t in REPLY_SAMPLES], None, parse_only=True)
    for text, result in zip(REPLY_SAMPLES, answer["results"], strict=True):
        assert result["facts"] == parse_reply(text), text
        assert_same_reading(result["read"], text)


# Text close to real replies: codes, brackets, separators, phrases the symptom reader looks for, odd
# whitespace and other scripts' digits. Left out, as documented in paste.js: characters outside the
# BMP and the Turkish dotted/dotless i (and No digits such as '²', on which parse_reply raises).
_PIECES = st.sampled_from(
    ["450", "550", "421", "250", "5.7.1", "4.4.316", "5.4.316", "2.0.0", "#", "-", " ", "  ", "\t", "\n", "[", "]", "=", ":",
     "(", ")", "'", '"', "<", ">", "25", "100", "Message", "LastAttemptedIP", "lastattemptedservername", "192.0.2.1",
     "2001:db8::1", "Socket error code 10061", "SOCKET ERROR CODE 10060", "winsock error 10054", ".", ",", ";", "é",
     "\u00a0", "\u2028", "\x1c", "\ufeff", "ſ", "K", "٣", "Message expired", "expired", "connection refused",
     "timed out", "connection reset", "lost connection", "conversation with", "InfoNoRecords", "ErrorTimeout", " MX ",
     "name service error for name=example.com type=MX: Host not found", "dns type 'MX' lookup of example.com responded with code NXDOMAIN",
     "host mx.example.com[192.0.2.7]:25", "said:", "remote server at mx.example.net (192.0.2.9)", "version", "Exim v",
     "in reply to RCPT TO command", "after end of data", "refused to talk to me", "after initial connection", "SMTP timeout", "while sending MAIL FROM", "TLS", "certificate expired",
     "self-signed", "STARTTLS is required", "(#5.5.0)", "bob@example.net", "<bob@example.net>:", " - gsmtp",
     "support.google.com/mail", "mail.protection.outlook.com", "SuspiciousRemoteServerError", "null MX", "nxdomain",
     "[BN8NAM12FT054.eop-nam12.prod.protection.outlook.com 2024-05-01T10:00:00.000Z]", "gsmtp", "(AS3130)",
     "AS(1430)", "postmaster.yahoo", "yahoodns.net", "mail.live.com/mail/troubleshooting", "hotmail.com",
     "host gmail-smtp-in.l.google.com[192.0.2.3]", "host mx.hotmail.com[192.0.2.4]", "outbound connector",
     "Generating server: DM6PR12MB1234.namprd12.prod.outlook.com", "[LastAttemptedServerName=mx.example]",
     "\nOriginal message headers:\n", "\n--- Below this line is a copy of the message.", "\r\n", "\n  ==== ",
     "returned message", "Content-Type: message/rfc822", "ORIGINAL MESSAGE", "(#5.1.2)", " (", "#",
     "DNS lookup failure: host ", " not found", "No MX found for domain", "Temporary failure in MX lookup",
     "Unsent message follows", "|---"]
)
_CHARS = st.characters(max_codepoint=0xFFFF, blacklist_categories=("No", "Cs"), blacklist_characters="\u0130\u0131")
_TEXT = st.lists(st.one_of(_PIECES, st.text(alphabet=_CHARS, max_size=4)), max_size=16).map("".join)


@needs_node
@settings(max_examples=25, deadline=None)
@given(st.lists(_TEXT, min_size=1, max_size=40))
# Found by this test: the page read the Arabic-Indic digit in "5.7.1\u0663" as part of the code.
@hypothesis_example(["5.7.1\u0663", "45\u0663 busy", "550 5.7.1\u0663 denied", "550 5.\u0667.1 denied"])
def test_paste_page_parser_matches_parse_reply_fuzzed(texts: list[str]) -> None:
    answer = run_node([{"text": t} for t in texts], None, parse_only=True)
    for text, result in zip(texts, answer["results"], strict=True):
        assert result["facts"] == parse_reply(text), repr(text)
        assert_same_reading(result["read"], text)


# ---------------------------------------------------------------------------------------------
# Regex translation and escaping (no build needed)


@pytest.mark.parametrize(
    ("python", "exported"),
    [
        ("connection refused|socket error code 10061", "connection refused|socket error code 10061"),
        (r"(?P<host>\w+)\.(?P<tld>\w+)", r"(?P<host>\w+)\.(?P<tld>\w+)"),
        (r"\Aabc\Z", r"\Aabc\z"),
        (r"a\\Z", r"a\\Z"),  # an escaped backslash then Z: not end of text
        ("(?s)a.b", "(?s)a.b"),
        ("[]a]", "[]a]"),
        ("a+?b", "a+?b"),
    ],
)
def test_export_pattern_is_re2_syntax(python: str, exported: str) -> None:
    assert export_pattern(python) == exported


@pytest.mark.parametrize("python", ["a++", "(?>a)", "(?x) a b", r"(?P=x)", "(?(1)a|b)", r"(?<=5\.)7(?!\d)", r"(a)\1"])
def test_export_refuses_what_re2_cannot_compile(python: str) -> None:
    with pytest.raises(UnsupportedPattern):
        export_pattern(python)


@needs_node
def test_paste_page_runs_catastrophic_patterns_in_linear_time(tmp_path: Path) -> None:
    """A contributed `(a|a)*b` hangs a backtracking RegExp for minutes on 30 characters; the page
    runs rule patterns on RE2JS and answers at once (a generous bound, as a hang detector)."""
    rules = [
        {"id": f"redos-{i}", "kind": "specific", "generic_level": None, "specificity": 3, "experimental": False, "codes": [],
         "title": {"en": "x"}, "url": "x", "match": {"field": "smtp.text", "matches": export_pattern(pattern), "flags": "i"}}
        for i, pattern in enumerate(["(a|a)*b", r"((\w+\s?))*$", ".*.*.*.*.*.*=$"])
    ]
    rules_json = tmp_path / "rules.json"
    rules_json.write_text(json.dumps({"version": 2, "languages": ["en"], "rules": rules, "skipped": []}), encoding="utf-8")
    texts = ["550 5.7.1 " + "a" * 5000, "550 5.7.1 " + "word " * 2000 + "!", "550 5.7.1 " + "x" * 5000]
    started = time.perf_counter()
    answer = run_node([{"text": text} for text in texts], rules_json)
    assert time.perf_counter() - started < 30
    assert answer["broken"] == []
    assert [sorted(r["matches"]) for r in answer["results"]] == [["redos-1"]] * 3  # the 2nd matches empty at the end


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        "[x](javascript:alert(1))",
        "![x](javascript:alert(1))",
        "<javascript:alert(1)>",
        "{: onclick=alert(1) }",
        "a | b",
        "&lt;script&gt;",
        "`<b>code</b>` and `[x](javascript:y)`",
        "*emph* _u_ \\[",
    ],
)
def test_md_text_leaves_no_markup_characters(hostile: str) -> None:
    rendered = md_text(hostile)
    outside_code = re.sub(r"<code>.*?</code>", "", rendered)
    assert not set(outside_code) & set("<>[](){}|`*_\\")
    assert not re.search(r"<(?!/?code>)", rendered)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://learn.microsoft.com/x", True),
        ("http://example.com/a?b=c#d", True),
        ("javascript:alert(1)", False),
        ("JaVaScRiPt:alert(1)", False),
        ("data:text/html,<script>", False),
        ("https://example.com/?q=\"><script>", False),
        ("https:/no-host", False),
        ("//example.com/x", False),
        ("https://example.com/a b", False),
    ],
)
def test_safe_url_allows_only_plain_http_links(url: str, ok: bool) -> None:
    assert (safe_url(url) is not None) == ok


def test_plain_title_has_no_html_characters() -> None:
    assert not set(plain_title("<script>\"x\" & 'y'</script>")) & set("<>&\"'")


# ---------------------------------------------------------------------------------------------
# The fixture site: hostile text, deprecation, translations


def test_hostile_rule_text_is_shown_as_text_never_as_markup(fixture_site: BuiltSite) -> None:
    allowed_scripts = re.compile(r"^(/mailtriage/|[./]*)(assets/javascripts/|assets/mailtriage/(rules|re2js|paste|iframe-worker-shim)\.js$|search/search_index\.js$)")
    seen_text = False
    for file in html_files(fixture_site.root):
        page = parse(file.read_text(encoding="utf-8"))
        for tag, attrs in page.tags:
            handlers = [name for name in attrs if name.startswith("on")]
            assert not handlers, (file, tag, attrs)
            for name in ("href", "src", "action", "formaction"):
                assert not attrs.get(name, "").strip().lower().startswith(("javascript:", "data:")), (file, tag, attrs)
            assert tag not in ("iframe", "svg", "img", "details") or "__pwned" not in json.dumps(attrs), (file, tag, attrs)
            if tag == "script" and attrs.get("src"):
                assert allowed_scripts.search(attrs["src"]), (file, attrs)
        for script in page.scripts:
            assert "__pwned" not in script, file
        if "hostile-script-injection" in file.name:
            text = "".join(page.text)
            in_portuguese = file.parent.parent.name == "pt-BR"
            assert ('<script>window.__pwned="pt-title"</script>' if in_portuguese else '<script>window.__pwned="title"</script>') in text
            assert "[click me](javascript:window.__pwned='link')" in text
            seen_text = True
    assert seen_text


def test_bad_reference_url_fails_the_build(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    text = (DATA / "lifecycle" / "new-rule.yaml").read_text(encoding="utf-8")
    (rules / "bad.yaml").write_text(text.replace("url: https://www.rfc-editor.org/rfc/rfc3463", "url: javascript:alert(1)"), encoding="utf-8")
    result, _ = build(tmp_path / "public", fixture_config(tmp_path, rules))
    assert result.returncode != 0
    assert "error(s) in the rules under" in result.stderr
    assert "MT003" in result.stderr and "bad.yaml" in result.stderr


def test_deprecated_rule_page_points_to_its_replacement(fixture_site: BuiltSite) -> None:
    for lang in LANGS:
        page = parse(fixture_site.html(lang, "rules/site-fixture-old/"))
        links = [attrs.get("href", "") for tag, attrs in page.tags if tag == "a"]
        assert any(link.endswith("site-fixture-new.html") for link in links), lang


def test_translated_rule_is_in_portuguese_and_stale_one_falls_back_with_a_note(fixture_site: BuiltSite) -> None:
    translated = fixture_site.html("pt-BR", "rules/site-fixture-new/")
    assert "A caixa postal do destinatário está cheia" in translated and "mt-untranslated" not in translated
    stale = fixture_site.html("pt-BR", "rules/site-fixture-stale/")
    assert "mt-untranslated" in stale
    assert "Message too big for the recipient&#39;s mailbox (changed)" in stale or "Message too big for the recipient’s mailbox (changed)" in stale
    assert "A mensagem é maior do que o destinatário aceita." in stale
    assert "stale-rule.pt-BR.yaml" in stale and "contributing.html#translations" in stale


# ---------------------------------------------------------------------------------------------
# In a real browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium package (./dev check does) to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def served(site: BuiltSite) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(site.root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _screenshot(page: Any, name: str) -> None:
    folder = os.environ.get("MAILTRIAGE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


@pytest.mark.parametrize(("lang", "expected_title_of"), [("en", "en"), ("pt-BR", "pt-BR")])
def test_paste_page_in_browser_links_the_matching_rule(browser: Any, served: str, site: BuiltSite, lang: str, expected_title_of: str) -> None:
    rule = site.rules["exo-connector-connection-refused"]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{served}{LANGS[lang]}paste/")
    page.fill("#mt-paste-input", "450 4.4.316 Connection refused")
    page.click("#mt-paste button[type=submit]")
    link = page.locator('a[data-rule-id="exo-connector-connection-refused"]')
    link.wait_for(timeout=5000)
    assert link.inner_text() == rule.text("title", expected_title_of)
    href = link.get_attribute("href")
    assert href is not None
    _screenshot(page, f"paste-{lang}")
    page.click('a[data-rule-id="exo-connector-connection-refused"]')
    page.wait_for_load_state()
    assert page.url == f"{served}{LANGS[lang]}rules/{rule.id}/"
    _screenshot(page, f"rule-{lang}")
    assert not errors
    page.close()


@pytest.mark.parametrize("lang", list(LANGS))
def test_rule_page_in_browser_has_a_copy_button_on_every_command_block(browser: Any, served: str, lang: str) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{served}{LANGS[lang]}rules/exo-connector-connection-refused/")
    blocks = page.locator(".language-powershell pre, .language-sh pre")
    blocks.first.wait_for(timeout=5000)
    # Material's copy button (content.code.copy): one per block, aimed at that block's code.
    copy = page.locator('button.md-code__button[data-md-type="copy"]')
    copy.first.wait_for(state="attached", timeout=5000)
    assert copy.count() == blocks.count() >= 5
    assert all(copy.nth(i).get_attribute("data-clipboard-target", timeout=1000) for i in range(copy.count()))
    # The conditions stay folded until asked for.
    assert not page.locator("details.mt-conditions").evaluate("element => element.open")
    assert not errors
    page.close()


@pytest.mark.parametrize(("lang", "said"), [
    ("en", "context.system=postfix (from log tag postfix/smtp)"),
    ("pt-BR", "context.system=postfix (de identificador do log postfix/smtp)"),
])
def test_paste_page_in_browser_shows_what_it_inferred_and_from_what(browser: Any, served: str, lang: str, said: str) -> None:
    """The line `diagnose --lang` prints, place name included, in the page's language."""
    from mailtriage.cli.render import inferred_lines
    from mailtriage.triage import diagnose_text

    [found] = diagnose_text(INFERENCE_CASES[0])
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{served}{LANGS[lang]}paste/")
    page.fill("#mt-paste-input", INFERENCE_CASES[0])
    page.click("#mt-paste button[type=submit]")
    page.click(".mt-paste-details > summary")  # the facts are folded away, after the answer
    item = page.locator('.mt-paste-inferred li[data-field="context.system"]')
    item.wait_for(timeout=5000)
    assert item.inner_text() == said
    assert inferred_lines(found.diagnosis, lang) == [said]
    # The page reads the log line like `diagnose` and names the Postfix rule.
    page.locator('a[data-rule-id^="postfix-"]').first.wait_for(timeout=5000)
    assert not errors
    page.close()


def test_paste_page_in_browser_reads_log_lines_as_diagnose_does(browser: Any, served: str, site: BuiltSite) -> None:
    """The page in Chromium, on every log case: the same rules (best first) and inferred facts, with
    their evidence, as `diagnose` (the library on all of them, the CLI itself on one line per MTA),
    and the evidence shown says it was the log tag."""
    from mailtriage.triage import diagnose_text

    engine = Engine.load([REPO / "rules"], bundled=False, backend="python", use_cache=False)
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{served}paste/")
    answers = page.evaluate("""(texts) => {
        const paste = window.mailtriagePaste;
        const prepared = paste.prepareRules(window.MAILTRIAGE_RULES);
        return texts.map((text) => {
            const result = paste.diagnose(prepared, text, {});
            return {matches: result.matches.map((rule) => rule.id), inferred: result.inferred, kind: result.kind};
        });
    }""", LOG_CASES)
    disagreements = []
    for text, answer in zip(LOG_CASES, answers, strict=True):
        found = diagnose_text(text, engine=engine)
        expected = {"matches": [m.rule.id for m in found[0].diagnosis.matches] if found else [],
                    "inferred": [f.to_dict() for f in found[0].diagnosis.inferred] if found else [],
                    "kind": found[0].record.kind if found else None}
        if answer["matches"][:1] != expected["matches"][:1] or sorted(answer["matches"]) != sorted(expected["matches"]) \
                or answer["inferred"] != expected["inferred"] or answer["kind"] != expected["kind"]:
            disagreements.append(f"{text[:70]!r}: page={answer} diagnose={expected}")
    assert not disagreements, "\n".join(disagreements)
    assert sum(answer["kind"] == "log" for answer in answers) >= 15

    by_mta = {"postfix/smtp": LOG_CASES[0], "** R=dnslookup": LOG_CASES[11], "1sABCD-000123-EF **": LOG_CASES[13],
              "sm-mta": LOG_CASES[18]}
    for tag, text in by_mta.items():
        cli = subprocess.run([sys.executable, "-m", "mailtriage", "diagnose", text, "--format", "json"],
                             capture_output=True, text=True, timeout=120, cwd=REPO)
        assert cli.returncode in (0, 1), cli.stderr
        document = json.loads(cli.stdout)
        answer = answers[LOG_CASES.index(text)]
        assert answer["matches"][0] == document["matches"][0]["rule"], text
        assert answer["inferred"] == document["inferred"], text
        assert {"field": "context.system", "source": "log-tag", "evidence": tag} in [
            {k: f[k] for k in ("field", "source", "evidence")} for f in document["inferred"]], text
        # What the reader sees: the inferred fact and where it came from.
        _diagnose_in_page(page, text)
        page.click(".mt-paste-details > summary")
        item = page.locator('.mt-paste-inferred li[data-field="context.system"]')
        assert item.inner_text().endswith(f"(from log tag {tag})"), text
        page.click(".mt-paste-details > summary")
    assert not errors
    page.close()


def test_paste_page_in_browser_shows_pasted_html_as_text(browser: Any, served: str) -> None:
    page = browser.new_page()
    page.goto(f"{served}paste/")
    page.fill("#mt-paste-input", "550 5.7.1 <img src=x onerror=\"window.__pwned=1\"> [Message=<b>bold</b>]")
    page.click("#mt-paste button[type=submit]")
    page.click(".mt-paste-details > summary")
    page.locator(".mt-paste-facts").wait_for(timeout=5000)
    page.wait_for_timeout(200)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#mt-paste-output img").count() == 0
    assert "<b>bold</b>" in page.locator(".mt-paste-facts").inner_text()
    page.close()


# The paste page as a user meets it (issue 16): the answer first, cards that say what to do, a
# quiet live region, a hint when empty, no silent cut, a shareable address, on the home page too.

NDR_PASTE = """Delivery has failed to these recipients or groups:

bob@contoso.com
The email address you entered couldn't be found.

Diagnostic information for administrators:

Generating server: DM6PR12MB1234.namprd12.prod.outlook.com

bob@contoso.com
Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'

Original message headers:

Received: from mail.fabrikam.example (192.0.2.1) by mx.fabrikam.example with Microsoft SMTP Server id 15.2.1118.40;
 Mon, 1 May 2024 10:00:00 +0000
From: Alice <alice@fabrikam.example>
To: bob@contoso.com
Subject: Quarterly report 550 5.7.1
Message-ID: <abc@fabrikam.example>
"""
NDR_TEXT = "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"


def _open_paste(browser: Any, served: str, lang: str, path: str = "paste/", width: int = 1280) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{served}{LANGS[lang]}{path}")
    return page, errors


def _diagnose_in_page(page: Any, text: str) -> str:
    """Paste `text`, press the button, and return the status line once it is there."""
    page.fill("#mt-paste-input", text)
    page.click("#mt-paste button[type=submit]")
    page.wait_for_function("() => document.getElementById('mt-paste-status').textContent.length > 0", timeout=5000)
    return str(page.inner_text("#mt-paste-status"))


@needs_node
def test_pasted_ndr_text_stops_before_the_returned_headers() -> None:
    """`smtp.text` and the context evidence are the error, never the original's headers: read_reply
    and the page both stop at "Original message headers"."""
    facts, _ = read_reply(NDR_PASTE)
    assert facts["smtp.text"] == NDR_TEXT and facts["smtp.enhanced"] == "5.1.10"
    answer = run_node([{"text": NDR_PASTE}], None, parse_only=True)
    assert answer["results"][0]["facts"] == parse_reply(NDR_PASTE)
    assert_same_reading(answer["results"][0]["read"], NDR_PASTE)


@pytest.mark.parametrize("lang", list(LANGS))
def test_paste_page_reads_an_ndr_up_to_the_returned_message(browser: Any, served: str, lang: str) -> None:
    page, errors = _open_paste(browser, served, lang)
    _diagnose_in_page(page, NDR_PASTE)
    page.locator('a[data-rule-id="exo-ndr-5-1-10-recipient-not-found"]').wait_for(timeout=5000)
    assert page.locator(".mt-paste-cut").count() == 1
    page.click(".mt-paste-details > summary")
    facts = page.inner_text(".mt-paste-facts")
    assert f"smtp.text = {NDR_TEXT}" in facts
    assert "Received" not in facts and "Subject" not in facts and "fabrikam" not in facts
    assert not errors
    page.close()


@pytest.mark.parametrize("lang", list(LANGS))
def test_paste_page_puts_the_answer_before_the_facts(browser: Any, served: str, lang: str) -> None:
    page, errors = _open_paste(browser, served, lang)
    # Exchange's brackets: facts and an inferred context (Exchange Online, from the server name).
    _diagnose_in_page(page, "450 4.4.316 Connection refused [Message=Socket error code 10061] [LastAttemptedServerName=mail.contoso.com]")
    order = page.eval_on_selector_all(
        "#mt-paste-output > *", "els => els.map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : ''))"
    )
    assert order[:2] == ["h2", "ol.mt-paste-results"] and order[-1] == "details.mt-paste-details", order
    # Fact names are for whoever asks: folded away until the summary is clicked.
    assert page.locator(".mt-paste-details").get_attribute("open") is None
    assert not page.locator(".mt-paste-facts").is_visible() and not page.locator(".mt-paste-inferred").is_visible()
    page.click(".mt-paste-details > summary")
    assert page.locator(".mt-paste-facts").is_visible() and page.locator(".mt-paste-inferred").is_visible()
    assert "smtp.enhanced = 4.4.316" in page.inner_text(".mt-paste-facts")
    assert not errors
    page.close()


def _plain(text: str) -> str:
    """A rule string as the page shows it as text: backtick spans lose their backticks."""
    return " ".join(text.replace("`", "").split())


@pytest.mark.parametrize("lang", list(LANGS))
def test_paste_page_cards_show_summary_and_first_fix_in_the_page_language(browser: Any, served: str, site: BuiltSite, lang: str) -> None:
    rule = site.rules["exo-connector-connection-refused"]
    page, errors = _open_paste(browser, served, lang)
    _diagnose_in_page(page, "450 4.4.316 Connection refused [Message=Socket error code 10061]")
    card = page.locator(".mt-paste-result", has=page.locator('a[data-rule-id="exo-connector-connection-refused"]'))
    assert card.locator(".mt-paste-link").inner_text() == rule.text("title", lang)
    assert card.locator(".mt-badge").inner_text() == {"en": "specific", "pt-BR": "específica"}[lang]
    assert "4.4.316" in card.locator(".mt-paste-meta").inner_text()
    assert _plain(card.locator(".mt-paste-summary").inner_text()) == _plain(rule.text("summary", lang))
    fix = rule.fix_dict(rule.fixes[0], lang)
    title = card.locator(".mt-paste-fix-title").inner_text()
    assert _plain(title).endswith(_plain(fix["title"])) and title.startswith({"en": "Try first", "pt-BR": "Tente primeiro"}[lang])
    steps = card.locator(".mt-paste-steps > li").all_inner_texts()
    assert [_plain(s) for s in steps] == [_plain(s) for s in fix["steps"]]
    # Summary and fix are in the page's language (this rule is translated).
    assert lang == "en" or rule.text("summary", lang) != rule.text("summary", "en")
    for link in (card.locator(".mt-paste-link"), card.locator(".mt-paste-more")):
        href = link.evaluate("a => a.href")
        assert href == f"{served}{LANGS[lang]}rules/{rule.id}/" and page.request.get(href).status == 200
    # Cards with commands in their steps fit a phone's width.
    page.set_viewport_size({"width": 390, "height": 844})
    scroll, client = _overflow(page)
    assert scroll <= client, (scroll, client)
    assert not errors
    page.close()


@pytest.mark.parametrize("lang", list(LANGS))
def test_paste_page_announces_a_short_status_not_the_result_area(browser: Any, served: str, site: BuiltSite, lang: str) -> None:
    page, errors = _open_paste(browser, served, lang)
    assert page.get_attribute("#mt-paste-output", "aria-live") is None
    assert page.get_attribute("#mt-paste-status", "aria-live") == "polite"
    assert page.get_attribute("#mt-paste-status", "role") == "status"
    page.evaluate(
        "() => { window.__redraws = 0; window.__said = [];"
        " new MutationObserver(() => window.__redraws++).observe(document.getElementById('mt-paste-output'), {childList: true});"
        " new MutationObserver(() => window.__said.push(document.getElementById('mt-paste-status').textContent))"
        ".observe(document.getElementById('mt-paste-status'), {childList: true, characterData: true, subtree: true}); }"
    )
    # 30 input events, one per character, as typing sends them; dispatched in one go so that a loaded
    # machine cannot stretch a gap between two keystrokes past the page's 400 ms pause.
    page.evaluate(
        "(text) => { const box = document.getElementById('mt-paste-input');"
        " for (let i = 1; i <= text.length; i++) { box.value = text.slice(0, i);"
        " box.dispatchEvent(new InputEvent('input', {bubbles: true, data: text[i - 1], inputType: 'insertText'})); } }",
        "450 4.4.316 Connection refused",
    )
    page.wait_for_function("() => window.__said.length > 0", timeout=5000)
    page.wait_for_timeout(800)
    # One redraw and one announcement after typing stops, not one per keystroke.
    assert page.evaluate("window.__redraws") == 1
    said = page.evaluate("window.__said")
    rule = site.rules["exo-connector-connection-refused"]
    count = page.locator(".mt-paste-result").count()
    assert len(said) == 1 and len(said[0]) < 200
    best = page.locator(".mt-paste-link").first.inner_text()
    assert best == rule.text("title", lang)
    expected = {"en": f"{count} matches; best: {best}", "pt-BR": f"{count} correspondências; a melhor: {best}"}[lang]
    assert said[0] == (expected if count > 1 else {"en": f"1 match: {best}", "pt-BR": f"1 correspondência: {best}"}[lang])
    assert not errors
    page.close()


@pytest.mark.parametrize("lang", list(LANGS))
def test_empty_paste_shows_a_hint_with_an_example_that_fills_the_box(browser: Any, served: str, lang: str) -> None:
    page, errors = _open_paste(browser, served, lang)
    hint = page.locator(".mt-paste-hint")
    hint.wait_for(timeout=5000)
    assert {"en": "Paste an SMTP reply", "pt-BR": "Cole uma resposta SMTP"}[lang] in hint.inner_text()
    example = page.locator(".mt-paste-example")
    shown = example.inner_text().strip()
    example.click()
    assert page.input_value("#mt-paste-input") == shown and "4.4.316" in shown
    page.locator('a[data-rule-id="exo-connector-connection-refused"]').wait_for(timeout=5000)
    assert page.locator(".mt-paste-hint").count() == 0
    # Emptied again, the box shows the hint again and nothing is announced.
    page.fill("#mt-paste-input", "")
    page.click("#mt-paste button[type=submit]")
    page.locator(".mt-paste-hint").wait_for(timeout=5000)
    assert page.inner_text("#mt-paste-status") == "" and page.locator(".mt-paste-result").count() == 0
    assert not errors
    page.close()


@pytest.mark.parametrize("lang", list(LANGS))
def test_long_paste_says_only_the_first_20000_characters_were_read(browser: Any, served: str, lang: str) -> None:
    page, errors = _open_paste(browser, served, lang)
    filler = ("lorem ipsum " * 2000)[:20_000]
    _diagnose_in_page(page, filler + " 450 4.4.316 Connection refused")  # the code lies past the limit
    note = page.locator(".mt-paste-capped").inner_text()
    total = f"{len(filler) + 31:,}".replace(",", {"en": ",", "pt-BR": "."}[lang])
    assert ("20,000" if lang == "en" else "20.000") in note and total in note, note
    assert page.locator(".mt-paste-result").count() == 0
    _diagnose_in_page(page, "450 4.4.316 Connection refused " + "x" * 19_000)
    page.locator('a[data-rule-id="exo-connector-connection-refused"]').wait_for(timeout=5000)
    assert page.locator(".mt-paste-capped").count() == 0
    assert not errors
    page.close()


def _query(url: str) -> dict[str, list[str]]:
    from urllib.parse import parse_qs

    return parse_qs(urlsplit(url).query)


@pytest.mark.parametrize("lang", list(LANGS))
def test_paste_page_puts_the_paste_in_the_address_bar_to_share(browser: Any, served: str, lang: str) -> None:
    text = "550 5.7.1 Service unavailable; client host [192.0.2.1] blocked using zen.spamhaus.org"
    page, errors = _open_paste(browser, served, lang)
    history = page.evaluate("history.length")
    page.fill("#mt-paste-input", text)  # typed, not submitted: the debounced redraw updates the address
    page.wait_for_function("t => new URL(location.href).searchParams.get('q') === t", arg=text, timeout=5000)
    page.select_option("#mt-paste-system", "postfix")
    page.wait_for_function("() => new URL(location.href).searchParams.get('system') === 'postfix'", timeout=5000)
    assert page.evaluate("history.length") == history  # replaced, not a new entry per keystroke
    shared = page.url
    first = page.locator(".mt-paste-link").all_inner_texts()
    assert first
    # Opening the shared address gives the same diagnosis.
    other, other_errors = _open_paste(browser, served, lang)
    other.goto(shared)
    other.locator(".mt-paste-link").first.wait_for(timeout=5000)
    assert other.input_value("#mt-paste-input") == text and other.input_value("#mt-paste-system") == "postfix"
    # The theme's search, which reads ?q= too, stays closed; the address keeps the paste.
    assert other.evaluate("document.getElementById('__search').checked") is False
    assert other.input_value("input.md-search__input") == ""
    assert _query(other.url) == {"q": [text], "system": ["postfix"]}
    assert other.locator(".mt-paste-link").all_inner_texts() == first
    # Too long for an address: the query goes, rather than a truncated or stale one.
    page.fill("#mt-paste-input", text + " " + "x" * 2100)
    page.wait_for_function("() => !new URL(location.href).searchParams.has('q')", timeout=5000)
    assert "system" not in _query(page.url)
    assert not errors and not other_errors
    page.close()
    other.close()


@pytest.mark.parametrize("base", ["/", SITE_PATH])
@pytest.mark.parametrize("lang", list(LANGS))
def test_no_match_message_links_the_codes_table(browser: Any, served_anywhere: str, base: str, lang: str) -> None:
    page, errors = _open_paste(browser, served_anywhere + base, lang)
    status = _diagnose_in_page(page, "host mx.example.com[192.0.2.1] said: hello")  # facts, but no rule for them
    assert status == {"en": "No rule matches.", "pt-BR": "Nenhuma regra corresponde."}[lang]
    link = page.locator(".mt-paste-no-match a")
    assert link.inner_text() == {"en": "codes table", "pt-BR": "tabela de códigos"}[lang]
    link.click()
    page.wait_for_load_state()
    assert page.url == f"{served_anywhere}{base}{LANGS[lang]}browse/codes/"
    assert page.locator("table").count() >= 1
    assert not errors
    page.close()


def test_reporting_systems_are_those_some_rule_asks_for() -> None:
    document = {"rules": [
        {"match": {"all": [{"field": "context.system", "equals": "postfix"}, {"not": {"field": "context.system", "equals": "gmail"}}]}},
        {"match": {"any": [{"field": "context.system", "one_of": ["exim", "qmail"]}, {"field": "smtp.reply_code", "equals": 550}]}},
        {"match": {"not": {"not": {"field": "context.system", "equals": "yahoo"}}}},
    ]}
    assert reporting_systems(document) == ["exim", "postfix", "qmail", "yahoo"]


@pytest.mark.parametrize("lang", list(LANGS))
def test_reported_by_offers_only_systems_with_rules_of_their_own(browser: Any, served: str, site: BuiltSite, lang: str) -> None:
    page, errors = _open_paste(browser, served, lang)
    offered = page.eval_on_selector_all("#mt-paste-system option", "os => os.map(o => o.value)")
    assert offered[0] == "" and len(offered) == len(set(offered))
    asked = set(reporting_systems(exported(site)))
    assert set(offered[1:]) == asked
    # Each offered system has a rule that names it; the vocabulary has systems no rule names.
    named = {s for rule in site.rules.values() if rule.status is not Status.DEPRECATED for s in _systems_in(rule.match)}
    assert asked <= named
    spec = vocabulary()["context.system"]
    assert spec.enum is not None and set(spec.enum) - asked, "every system has rules: nothing to leave out"
    assert not errors
    page.close()


def _systems_in(condition: Any) -> set[str]:
    """The context.system values a condition tree tests (from the loaded rule, not the export)."""
    from mailtriage.model import All, AnyOf, Not

    if isinstance(condition, (All, AnyOf)):
        return set().union(*(_systems_in(c) for c in condition.children))
    if isinstance(condition, Not):
        return _systems_in(condition.child)
    if condition.field != "context.system":
        return set()
    return {str(v) for v in condition.value} if condition.op == "one_of" else {str(condition.value)}


@pytest.mark.parametrize("lang", list(LANGS))
def test_home_page_has_the_paste_box_with_the_same_script_and_data(browser: Any, served: str, site: BuiltSite, lang: str) -> None:
    scripts = {}
    for path in ("", "paste/"):
        page, errors = _open_paste(browser, served, lang, path)
        scripts[path] = page.eval_on_selector_all("script[src*='assets/mailtriage/']", "els => els.map(e => e.src)")
        # The language switcher works here too (on home pages its links had lost their `=`: no href).
        switcher = page.eval_on_selector_all("a.md-select__link", "els => els.map(e => e.getAttribute('href') && e.href)")
        assert sorted(switcher) == [served, f"{served}pt-BR/"] if path == "" else all(switcher), switcher
        assert page.get_attribute("#mt-paste", "data-lang") == lang
        _diagnose_in_page(page, "450 4.4.316 Connection refused")
        link = page.locator('a[data-rule-id="exo-connector-connection-refused"]')
        assert link.inner_text() == site.rules["exo-connector-connection-refused"].text("title", lang)
        assert link.evaluate("a => a.href") == f"{served}{LANGS[lang]}rules/exo-connector-connection-refused/"
        assert not errors
        page.close()
    assert scripts[""] == scripts["paste/"] and any(s.endswith("/rules.js") for s in scripts[""])


def test_fixture_site_offline_from_file_urls_runs_no_hostile_script(browser: Any, fixture_site: BuiltSite) -> None:
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    for lang in LANGS:
        page.goto(fixture_site.page(lang, "rules/hostile-script-injection/").as_uri())
        page.wait_for_timeout(300)
        assert page.evaluate("window.__pwned") is None
        page.goto(fixture_site.page(lang, "paste/").as_uri())
        page.fill("#mt-paste-input", "550 5.7.1 <script>window.__pwned='reply'</script>")
        page.click("#mt-paste button[type=submit]")
        link = page.locator('a[data-rule-id="hostile-script-injection"]')
        link.wait_for(timeout=5000)
        assert "<script>" in link.inner_text()
        assert link.get_attribute("href", timeout=1000).endswith("rules/hostile-script-injection.html")  # type: ignore[union-attr]
        assert page.evaluate("window.__pwned") is None
        # Search works from file:// too (the vendored iframe-worker shim, no CDN).
        page.fill("input.md-search__input", "mailbox")
        page.locator(".md-search-result__item").first.wait_for(timeout=10000)
    assert not dialogs
    page.close()


# ---------------------------------------------------------------------------------------------
# Served anywhere: a site root or a sub-path


def test_only_the_404_pages_link_absolutely(site: BuiltSite) -> None:
    """Pages are reached at any base; only a 404 (served at any depth) needs site_url's path."""
    for file in html_files(site.root):
        if file.name == "404.html":
            continue
        text = file.read_text(encoding="utf-8")
        assert f'href="{SITE_PATH}' not in text, file.relative_to(site.root)


def test_each_language_has_its_own_404_and_english_is_at_the_root(site: BuiltSite) -> None:
    root = site.root / "404.html"
    portuguese = site.root / "pt-BR" / "404.html"
    assert re.search(r'<html lang="en"', root.read_text(encoding="utf-8"))
    assert re.search(r'<html lang="pt', portuguese.read_text(encoding="utf-8"))


def test_no_page_asks_github_for_repository_facts(site: BuiltSite) -> None:
    for file in html_files(site.root):
        assert 'data-md-component="source"' not in file.read_text(encoding="utf-8"), file


class _PrefixHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the site both at `/` and under SITE_PATH."""

    def translate_path(self, path: str) -> str:
        if path.startswith(SITE_PATH):
            path = "/" + path[len(SITE_PATH):]
        return super().translate_path(path)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def served_anywhere(site: BuiltSite) -> Iterator[str]:
    handler = functools.partial(_PrefixHandler, directory=str(site.root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("base", ["/", SITE_PATH])
@pytest.mark.parametrize("path", ["", "pt-BR/", "rules/exo-connector-connection-refused/", "pt-BR/browse/codes/"])
def test_pages_served_at_a_root_or_a_sub_path_have_no_broken_links(browser: Any, served_anywhere: str, base: str, path: str) -> None:
    page = browser.new_page()
    failed: list[str] = []
    outside: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    def route(request_route: Any) -> None:
        if request_route.request.url.startswith(served_anywhere):
            request_route.continue_()
        else:
            outside.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    page.goto(f"{served_anywhere}{base}{path}")
    page.wait_for_load_state("networkidle")
    hrefs = page.eval_on_selector_all(
        "a[href], link[rel=alternate][href]", "els => els.map(e => e.href).filter(h => h.startsWith(location.origin))"
    )
    broken = []
    for href in sorted(set(h.split("#")[0] for h in hrefs)):
        status = page.request.get(href).status
        if status >= 400:
            broken.append(f"{status} {href}")
    page.close()
    assert failed == [] and broken == [], (failed, broken[:10])
    assert outside == []


# ---------------------------------------------------------------------------------------------
# Search: one index per language; a pasted error finds the rule that explains it


def _search(page: Any, query: str) -> list[str]:
    """The result links of the theme's search box, best first (paths without the `?h=` part)."""
    page.fill("input.md-search__input", query)
    page.locator(".md-search-result__item").first.wait_for(timeout=10000)
    page.wait_for_timeout(200)  # the worker answers once per keystroke batch; take the final list
    hrefs = page.eval_on_selector_all(".md-search-result__item > a", "els => els.map(e => new URL(e.href).pathname)")
    return [str(h) for h in hrefs]


SEARCH_CASES = [
    # (page the search starts from, query, rule page expected, how high)
    ("", "450 4.4.316 Connection refused [Message=Socket error code 10061]", "rules/exo-connector-connection-refused/", 1),
    ("", "450 4.4.316 Connection refused [Message=Socket error code 10061] [LastAttemptedServerName=mail.contoso.com]", "rules/exo-connector-connection-refused/", 1),
    ("", "certificate validation failed", "rules/exo-connector-certificate-validation-failed/", 4),
    ("", "4.7.320", "rules/exo-connector-certificate-validation-failed/", 1),
    ("", "NoSuchUser", "rules/gmail-no-such-user/", 4),
    ("", "550 5.1.1 The email account that you tried to reach does not exist", "rules/gmail-no-such-user/", 1),
    ("pt-BR/", "450 4.4.316 Connection refused [Message=Socket error code 10061]", "pt-BR/rules/exo-connector-connection-refused/", 1),
    ("pt-BR/", "certificate validation failed", "pt-BR/rules/exo-connector-certificate-validation-failed/", 4),
    ("pt-BR/rules/common-recipient-unknown/", "NoSuchUser", "pt-BR/rules/gmail-no-such-user/", 4),
]


@pytest.mark.parametrize(("start", "query", "expected", "within"), SEARCH_CASES)
def test_search_ranks_the_rule_of_a_pasted_error_high(browser: Any, served: str, start: str, query: str, expected: str, within: int) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{served}{start}")
    results = _search(page, query)
    page.close()
    assert f"/{expected}" in results[:within], results[:6]


@pytest.mark.parametrize("query", ["connection refused", "TLS", "4.4.316", "mailbox full"])
def test_search_on_a_portuguese_page_lists_only_portuguese_pages(browser: Any, served: str, query: str) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{served}pt-BR/browse/codes/")
    results = _search(page, query)
    page.goto(f"{served}browse/codes/")
    english = _search(page, query)
    page.close()
    assert results and all(r.startswith("/pt-BR/") for r in results), results[:6]
    assert english and not any(r.startswith("/pt-BR/") for r in english), english[:6]


def test_search_snippet_of_a_rule_is_its_summary(browser: Any, served: str, site: BuiltSite) -> None:
    rule = site.rules["exo-connector-connection-refused"]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    for lang in LANGS:
        page.goto(f"{served}{LANGS[lang]}")
        _search(page, "4.4.316")
        first = page.locator(".md-search-result__item").first
        snippet = " ".join(first.locator("p").first.inner_text().split())
        assert snippet[:60] == " ".join(rule.text("summary", lang).split())[:60], (lang, snippet)
        _screenshot(page, f"search-{lang}")
    page.close()


def test_each_language_has_its_own_search_index(site: BuiltSite) -> None:
    english = json.loads((site.root / "search" / "search_index.json").read_text(encoding="utf-8"))
    portuguese = json.loads((site.root / "pt-BR" / "search" / "search_index.json").read_text(encoding="utf-8"))
    assert not any(d["location"].startswith("pt-BR/") for d in english["docs"])
    assert {d["location"] for d in portuguese["docs"]} >= {f"rules/{rule_id}/" for rule_id in site.rules}
    assert english["config"]["lang"] == ["en"] and "pt" in portuguese["config"]["lang"]
    refused = next(d for d in portuguese["docs"] if d["location"] == "rules/exo-connector-connection-refused/")
    assert "4.4.316" in refused["codes"] and "Connection refused" in refused["samples"]


# ---------------------------------------------------------------------------------------------
# Small screens and accessibility

AXE = DATA.parent / "axe" / "axe.min.js"  # vendored test data (tests/data/axe/README.md), never in the site
PAGE_TYPES = ["", "rules/exo-connector-connection-refused/", "paste/", "browse/codes/", "cli-reference/", "contributing/"]


def _overflow(page: Any) -> tuple[int, int]:
    return page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")


@pytest.mark.parametrize("lang", list(LANGS))
def test_phone_width_pages_do_not_scroll_sideways(browser: Any, served: str, lang: str) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844})
    wide: list[str] = []
    for path in PAGE_TYPES:
        page.goto(f"{served}{LANGS[lang]}{path}")
        scroll, client = _overflow(page)
        if scroll > client:
            wide.append(f"{path or 'home'}: {scroll} > {client}")
    # The codes table is wider than a phone: it scrolls inside its own container.
    page.goto(f"{served}{LANGS[lang]}browse/codes/")
    inner = page.evaluate("() => { const w = document.querySelector('.md-typeset__scrollwrap'); return [w.scrollWidth, w.clientWidth, getComputedStyle(w).overflowX]; }")
    _screenshot(page, f"codes-390-{lang}")
    page.close()
    assert wide == []
    assert inner[0] > inner[1] and inner[2] in ("auto", "scroll"), inner


def test_cli_reference_help_blocks_fit_a_narrow_screen(site: BuiltSite) -> None:
    html = site.html("en", "cli-reference/")
    blocks = re.findall(r"<pre[^>]*>(.*?)</pre>", html, re.S)
    lines = [line for block in blocks for line in re.sub(r"<[^>]+>", "", block).splitlines()]
    assert lines and max(len(unescape(line)) for line in lines) <= 100


def test_wrap_long_lines_breaks_choice_lists_under_their_bracket() -> None:
    line = "  --tls-error [" + "|".join(f"choice-{n}" for n in range(30)) + "]  Why TLS failed."
    wrapped = wrap_long_lines(line, 60).splitlines()
    assert len(wrapped) > 1 and all(len(w) <= 60 for w in wrapped)
    assert all(w.startswith(" " * len("  --tls-error [")) for w in wrapped[1:])
    assert "".join(w.strip() for w in wrapped).replace(" ", "") == line.replace(" ", "")
    assert wrap_long_lines("short\n  lines", 60) == "short\n  lines"


def _axe(page: Any) -> list[str]:
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')}`)"
    )
    return [str(f) for f in found]


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [1280, 390])
def test_no_serious_accessibility_violations(browser: Any, served: str, scheme: str, width: int) -> None:
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    problems: list[str] = []
    for lang, prefix in LANGS.items():
        for path in ["", "rules/exo-connector-connection-refused/", "paste/", "browse/codes/"]:
            page.goto(f"{served}{prefix}{path}")
            if path == "paste/":
                page.fill("#mt-paste-input", "450 4.4.316 Connection refused")
                page.click("#mt-paste button[type=submit]")
                page.locator('a[data-rule-id="exo-connector-connection-refused"]').wait_for(timeout=5000)
            problems.extend(f"{lang} /{path}: {found}" for found in _axe(page))
    page.close()
    assert problems == []


def test_theme_icon_buttons_have_names(browser: Any, served: str) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844})
    for lang, prefix in LANGS.items():
        page.goto(f"{served}{prefix}")
        names = page.eval_on_selector_all(
            "label.md-header__button[for=__drawer], label.md-header__button[for=__search]",
            "els => els.map(e => e.innerText.trim())",
        )
        assert len(names) == 2 and all(names), (lang, names)
        assert page.get_attribute(".md-search[role=dialog]", "aria-label")
    page.close()


def test_footer_speaks_the_page_language(site: BuiltSite) -> None:
    assert "Feito com" in site.html("pt-BR", "") and "Made with" not in site.html("pt-BR", "rules/exo-connector-connection-refused/")
    assert "Made with" in site.html("en", "")
