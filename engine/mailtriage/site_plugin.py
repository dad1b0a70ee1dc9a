"""The `mailtriage` MkDocs plugin: renders the knowledge base as site pages at build time.

Written the way MkDocs writes its own plugins (`mkdocs/contrib/search`): a typed config class, only
the events it needs, a `mkdocs.plugins.<module>` logger, and `PluginError` for rules that cannot be
used. Nothing it generates is written to the docs folder.

- `on_config` loads the rules once (every problem is reported; any error aborts the build).
- `on_files` adds, for the language being built, one page per rule (`rules/<id>/`), the index
  pages (`browse/...`), and the assets of the "paste your error" page (`assets/mailtriage/`).
- `on_page_markdown` fills the placeholders of hand-written pages (the CLI reference, the fact
  vocabulary and the paste form) and points the "edit" link of rule pages at the rule's YAML file.

Languages: with mkdocs-static-i18n, each language is a separate build of the same config. That
plugin rebuilds the file list of a build from the docs folder, so generated pages are added after
it (priority -110, it runs at -100) under the language's URL prefix, with the alternates its
language switcher reads.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mkdocs.config import base
from mkdocs.config import config_options as c
from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin, event_priority
from mkdocs.structure.files import File, Files

from .i18n import LANGUAGES, SOURCE_LANGUAGE
from .site_render import INDEX_PAGES, PageLayout, RuleLinks, fact_fields_table, rule_page
from .site_search import RuleSearchTerms, add_rule_terms, dumps, lunr_languages, split_index
from .site_text import escape_literal, html_attribute, url_path, url_query_value

if TYPE_CHECKING:
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.pages import Page

    from .loader import KnowledgeBase
    from .model import Rule

log = logging.getLogger(f"mkdocs.plugins.{__name__}")

ASSETS_DIR = Path(__file__).resolve().parent / "site_assets"
ASSET_PREFIX = "assets/mailtriage"
CLI_REFERENCE_MARKER = "<!-- mailtriage:cli-reference -->"
PASTE_FORM_MARKER = "<!-- mailtriage:paste-form -->"
FACT_FIELDS_MARKER = "<!-- mailtriage:fact-fields -->"
MAX_PROBLEMS_SHOWN = 10


class _PluginConfig(base.Config):  # type: ignore[no-untyped-call]  # mkdocs leaves __init_subclass__ untyped
    rules_dir = c.Dir(exists=True, default="rules")
    # The repository checkout: rule paths in edit links are relative to it.
    repo_root = c.Dir(exists=True, default=".")
    rules_prefix = c.Type(str, default="rules")
    browse_prefix = c.Type(str, default="browse")
    reading_page = c.Type(str, default="reading-errors.md")
    translation_guide = c.Type(str, default="contributing.md#translations")
    # Under `repo_url`: where repository files are edited / created (GitHub's layout by default).
    repo_edit_uri = c.Type(str, default="edit/main/")
    repo_new_uri = c.Type(str, default="new/main/")


@dataclass(frozen=True)
class _Build:
    """The language being built and where its pages go."""

    lang: str  # language of the rule text
    languages: tuple[str, ...]  # every language built, default first
    prefixes: dict[str, str]  # language -> URL prefix ("" or "pt-BR/")

    @property
    def prefix(self) -> str:
        return self.prefixes[self.lang]


class MailtriagePlugin(BasePlugin[_PluginConfig]):  # type: ignore[no-untyped-call]
    """Generate rule pages, rule indexes, the CLI reference and the paste page's data."""

    def __init__(self) -> None:
        self.kb: KnowledgeBase | None = None
        self.rules: dict[str, Rule] = {}
        self.layout = PageLayout()
        self.project_root = Path.cwd()
        self._generated: dict[str, Rule] = {}  # src_uri -> rule, for the current build
        self._default_404: str | None = None
        # Page URL -> the codes and sample replies of its search entry (every language's pages).
        self._search_terms: dict[str, RuleSearchTerms] = {}

    # -- events -------------------------------------------------------------------------------

    def on_config(self, config: MkDocsConfig) -> MkDocsConfig | None:
        self.layout = PageLayout(
            rules_prefix=self.config.rules_prefix.strip("/"),
            browse_prefix=self.config.browse_prefix.strip("/"),
            reading_page=self.config.reading_page,
            translation_guide=self.config.translation_guide,
        )
        self.project_root = Path(self.config.repo_root).resolve()
        if self.kb is None:  # i18n builds each language with the same plugin instance
            self.kb = self._load(Path(self.config.rules_dir))
            self.rules = dict(sorted(self.kb.rules.items()))
        css = f"{ASSET_PREFIX}/mailtriage.css"
        if css not in config.extra_css:
            config.extra_css.append(css)
        return config

    @event_priority(-110)  # after mkdocs-static-i18n has rebuilt the file list (-100)
    def on_files(self, files: Files, config: MkDocsConfig) -> Files:
        build = _current_build(config)
        self._generated = {}
        for rule in self.rules.values():
            links = self._rule_links(config, rule, build.lang)
            content = rule_page(rule, self.rules, build.lang, self.layout, links)
            src_uri = self.layout.rule(rule.id)
            self._add_page(files, config, build, src_uri, content)
            self._generated[src_uri] = rule
        for name, render in INDEX_PAGES.items():
            self._add_page(files, config, build, self.layout.index(name), render(self.rules, build.lang, self.layout))
        self._add_assets(files, config, build)
        log.info(f"Generated {len(self.rules)} rule pages and {len(INDEX_PAGES)} indexes in '{build.lang}'")
        return files

    def on_page_markdown(self, markdown: str, /, *, page: Page, config: MkDocsConfig, files: Files) -> str | None:
        rule = self._generated.get(page.file.src_uri)
        if rule is not None:
            page.edit_url = self._rule_links(config, rule, _current_build(config).lang).edit_url
            self._search_terms[page.url] = RuleSearchTerms.of(rule)
            return None
        if CLI_REFERENCE_MARKER in markdown:
            from .cli.reference import reference_markdown

            markdown = markdown.replace(CLI_REFERENCE_MARKER, reference_markdown())
        if FACT_FIELDS_MARKER in markdown:
            markdown = markdown.replace(FACT_FIELDS_MARKER, fact_fields_table(_current_build(config).lang))
        if PASTE_FORM_MARKER in markdown:
            markdown = markdown.replace(PASTE_FORM_MARKER, self._paste_form(page, _current_build(config)))
        return markdown

    def on_post_page(self, output: str, /, *, page: Page, config: MkDocsConfig) -> str | None:
        """Links into the site must work wherever it is served (a sub-path or a site root): the
        language switcher and `rel=alternate` of home pages come out absolute (`/mailtriage/...`);
        make them relative.

        Material's script takes every `<link rel="alternate" hreflang>` for a language root and
        fetches `sitemap.xml` under it: on any page but a home page that is a 404 per language
        and page view. Those head links go (the visible language switcher stays)."""
        build = _current_build(config)
        if page.url not in ("", build.prefix, "index.html", f"{build.prefix}index.html"):
            output = _HEAD_ALTERNATE.sub("", output)
        output = _search_base(output, build.prefix)
        base = urlsplit(config.site_url or "").path or "/"
        if base == "/" or f'href="{base}' not in output:
            return output
        directory = page.url if page.url.endswith("/") else posixpath.dirname(page.url)

        def relative(match: re.Match[str]) -> str:
            target = match.group(2)[len(base):]
            link = posixpath.relpath("/" + target, "/" + directory) if target else posixpath.relpath("/", "/" + directory)
            if target.endswith("/") or not target:
                link = link.rstrip("/") + "/"
            return f'{match.group(1)}"{"./" if link == "./" or link == "/" else link}"'

        return re.sub(r'((?:href|content))="(' + re.escape(base) + r'[^"]*)"', relative, output)

    def on_post_template(self, output_content: str, /, *, template_name: str, config: MkDocsConfig) -> str | None:
        """Each language's build writes `404.html` at the site root; the default language's must be
        the one served there (English visitors got the Portuguese page), the others go under
        their prefix. Its links stay absolute (from `site_url`): a 404 is served at any depth."""
        if template_name != "404.html":
            return None
        build = _current_build(config)
        site_dir = Path(config.site_dir)
        output = output_content
        if not build.prefix:
            self._default_404 = output
            return None
        # Written by the default language's build; this language's own goes under its prefix.
        target = site_dir / build.prefix / "404.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_search_base(output, build.prefix), encoding="utf-8")
        return self._default_404 or output

    @event_priority(-120)  # after the search plugin, mkdocs-static-i18n (-100) and offline (-100)
    def on_post_build(self, *, config: MkDocsConfig) -> None:
        """One search index per language (see `site_search`), rule pages with their codes and
        sample replies. mkdocs-static-i18n builds the other languages inside the default one's
        build and writes the stacked index at its end: only then is there an index to split."""
        i18n: Any = config.plugins.get("i18n")
        if i18n is not None and getattr(i18n, "building", False):
            return
        site_dir = Path(config.site_dir)
        index_file = site_dir / "search" / "search_index.json"
        if not index_file.is_file():
            return
        index = json.loads(index_file.read_text(encoding="utf-8"))
        added = add_rule_terms(index.get("docs", []), self._search_terms)
        build = _current_build(config)
        search: Any = config.plugins.get("material/search") or config.plugins.get("search")
        available = list(getattr(search, "config", {}).get("lang") or ["en"])
        prefixes = {lang: build.prefixes[lang] for lang in build.languages}
        indexes = split_index(index, prefixes, lunr_languages(build.languages, available, build.languages[0]))
        offline = (site_dir / "search" / "search_index.js").is_file()
        for prefix, own in indexes.items():
            folder = site_dir / prefix / "search"
            folder.mkdir(parents=True, exist_ok=True)
            data = dumps(own)
            (folder / "search_index.json").write_text(data, encoding="utf-8")
            if offline:  # what the offline plugin writes for file:// pages, per language
                (folder / "search_index.js").write_text(f"var __index = {data}", encoding="utf-8")
        sizes = ", ".join(f"{prefix or '/'}: {len(own['docs'])}" for prefix, own in indexes.items())
        log.info(f"Search: one index per language ({sizes} entries); {added} rule entries carry codes and samples")

    # -- helpers ------------------------------------------------------------------------------

    def _load(self, rules_dir: Path) -> KnowledgeBase:
        # The engine's cache: parsing and validating a few hundred YAML files is most of a build.
        from .cache import load_cached_knowledge_base
        from .engine import rule_dirs

        # The same rules the CLI uses: the configured folder, then MAILTRIAGE_RULES folders.
        kb = load_cached_knowledge_base([rules_dir, *rule_dirs(None, bundled=False)])
        if kb.errors:
            for problem in kb.errors[:MAX_PROBLEMS_SHOWN]:
                log.error(self._shown(str(problem)))
            more = len(kb.errors) - MAX_PROBLEMS_SHOWN
            raise PluginError(
                f"{len(kb.errors)} error(s) in the rules under {self._shown(str(rules_dir))}"
                + (f" ({more} more not shown)" if more > 0 else "")
                + "; run `mailtriage lint` for the full list"
            )
        # Warnings (missing translations, missing references) do not stop the site: the pages say
        # so themselves. Counted here so nothing is dropped silently.
        if kb.warnings:
            log.info(f"{len(kb.warnings)} rule warning(s); run `mailtriage lint` to see them")
        if not kb.rules:
            raise PluginError(f"no rules found under {rules_dir}")
        return kb

    def _shown(self, text: str) -> str:
        """Paths in messages relative to the repository, as the linter shows them."""
        return text.replace(f"{self.project_root}{os.sep}", "")

    def _repo_path(self, path: str) -> str | None:
        try:
            return Path(path).resolve().relative_to(self.project_root).as_posix()
        except ValueError:
            return None

    def _add_page(self, files: Files, config: MkDocsConfig, build: _Build, src_uri: str, content: str) -> None:
        page = File.generated(config, src_uri, content=content)
        _move_under(page, build.prefix)
        # What mkdocs-static-i18n's language switcher reads (harmless without that plugin).
        alternates = {}
        for lang in build.languages:
            twin = File.generated(config, src_uri, content="")
            _move_under(twin, build.prefixes[lang])
            alternates[lang] = twin
        page.alternates = alternates  # type: ignore[attr-defined]
        page.locale = build.lang  # type: ignore[attr-defined]
        page.locale_alternate_of = build.lang  # type: ignore[attr-defined]
        page.localization = build.lang  # type: ignore[attr-defined]
        files.append(page)

    def _add_assets(self, files: Files, config: MkDocsConfig, build: _Build) -> None:
        from .site_export import export_rules

        sample = File.generated(config, self.layout.rule("x"), content="")
        rule_url = sample.url[: -len("x/")] if sample.url.endswith("x/") else sample.url[: -len("x.html")]
        export = export_rules(self.rules.values(), build.languages, lambda rule: f"{rule_url}{rule.id}" + ("/" if sample.url.endswith("/") else ".html"))
        for rule_id, reason in export.skipped.items():
            log.warning(f"rule {rule_id} is left out of the paste page: {reason}")
        data = export.to_json()
        assets = {
            f"{ASSET_PREFIX}/rules.json": data,
            # The same data as a script, because browsers refuse fetch() on file:// pages.
            f"{ASSET_PREFIX}/rules.js": f"window.MAILTRIAGE_RULES = {data};\n",
            f"{ASSET_PREFIX}/paste.js": (ASSETS_DIR / "paste.js").read_text(encoding="utf-8"),
            # RE2JS (MIT, github.com/le0pard/re2js), the linear-time engine the page runs rule patterns on.
            f"{ASSET_PREFIX}/re2js.js": (ASSETS_DIR / "re2js.js").read_text(encoding="utf-8"),
            f"{ASSET_PREFIX}/mailtriage.css": (ASSETS_DIR / "mailtriage.css").read_text(encoding="utf-8"),
            f"{ASSET_PREFIX}/iframe-worker-shim.js": (ASSETS_DIR / "iframe-worker-shim.js").read_text(encoding="utf-8"),
        }
        for src_uri, content in assets.items():
            existing = files.get_file_from_path(src_uri)
            if existing is not None:
                files.remove(existing)
            files.append(File.generated(config, src_uri, content=content))

    def _rule_links(self, config: MkDocsConfig, rule: Rule, lang: str) -> RuleLinks:
        relative = self._repo_path(rule.source_file or rule.source_path)
        if relative is None:
            return RuleLinks()
        existing = rule.translations.get(lang)
        translation = (self._repo_path(existing.path) if existing else None) or relative.rsplit(".", 1)[0] + f".{lang}.yaml"
        repo = (config.repo_url or "").rstrip("/")
        if not repo:
            return RuleLinks(translation_path=translation)
        # File names come from pull requests: every path that goes into a URL is percent-encoded
        # (lint refuses unusual names too, MT014; this holds for rules it never saw).
        edit = f"{repo}/{self.config.repo_edit_uri.strip('/')}/"
        if lang == SOURCE_LANGUAGE:
            return RuleLinks(edit_url=edit + url_path(relative), translation_path=translation)
        if existing is not None:
            edited = edit + url_path(translation)
            return RuleLinks(edit_url=edited, translation_path=translation, translation_url=edited)
        folder, _, name = translation.rpartition("/")
        new = f"{repo}/{self.config.repo_new_uri.strip('/')}/{url_path(folder)}?filename={url_query_value(name)}"
        return RuleLinks(edit_url=edit + url_path(relative), translation_path=translation, translation_url=new)

    def _paste_form(self, page: Page, build: _Build) -> str:
        from .facts import vocabulary
        from .site_text import system_name

        words = PASTE_WORDS.get(build.lang, PASTE_WORDS[SOURCE_LANGUAGE])
        directory = (page.url if page.url.endswith("/") else posixpath.dirname(page.url)).strip("/")
        to_root = "../" * (len(directory.split("/")) if directory else 0)
        lang_root = posixpath.relpath(build.prefix.strip("/") or ".", directory or ".")
        lang_root = "" if lang_root == "." else lang_root + "/"
        spec = vocabulary().get("context.system")
        systems = [str(v) for v in (spec.enum if spec and spec.enum else ())]
        options = "".join(f'<option value="{escape_literal(s)}">{escape_literal(system_name(s, build.lang))}</option>' for s in systems)
        return (
            f'<form id="mt-paste" class="mt-paste" data-lang="{html_attribute(build.lang)}" data-site-root="{html_attribute(lang_root)}" autocomplete="off">\n'
            f'<label for="mt-paste-input">{words["label"]}</label>\n'
            f'<textarea id="mt-paste-input" rows="6" spellcheck="false" placeholder="450 4.4.316 Connection refused [Message=Socket error code 10061] [LastAttemptedServerName=mail.contoso.com] [LastAttemptedIP=192.0.2.10:25]"></textarea>\n'
            f'<div class="mt-paste-row"><label for="mt-paste-system">{words["system"]}</label>\n'
            f'<select id="mt-paste-system"><option value="">{words["unknown"]}</option>{options}</select>\n'
            f'<button type="submit" class="md-button md-button--primary">{words["submit"]}</button></div>\n'
            f'<p class="mt-paste-privacy">{words["privacy"]}</p>\n'
            "</form>\n"
            '<div id="mt-paste-output" class="mt-paste-output" aria-live="polite"></div>\n'
            f'<script src="{html_attribute(to_root)}{ASSET_PREFIX}/rules.js"></script>\n'
            f'<script src="{html_attribute(to_root)}{ASSET_PREFIX}/re2js.js"></script>\n'
            f'<script src="{html_attribute(to_root)}{ASSET_PREFIX}/paste.js"></script>\n'
        )


_CONFIG_BASE = re.compile(r'(<script id="__config" type="application/json">[^<]*?"base": ")([^"]*)(")')


def _search_base(output: str, prefix: str) -> str:
    """Point a page's search at its language's index: the theme loads `search/search_index.json`
    under its `base` and resolves result links against it. Only the search uses `base` here (no
    instant navigation, no versions)."""
    if not prefix:
        return output
    return _CONFIG_BASE.sub(lambda m: f"{m.group(1)}{m.group(2).rstrip('/')}/{prefix}{m.group(3)}", output, count=1)


_HEAD_ALTERNATE = re.compile(r'<link rel="alternate" href="[^"]*" hreflang="[^"]*">\n?')

PASTE_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "label": "Your error (an SMTP reply, a queue error or the relevant lines of a bounce)",
        "system": "Reported by",
        "unknown": "Not sure",
        "submit": "Diagnose",
        "privacy": "Runs in your browser: nothing you paste is sent anywhere.",
    },
    "pt-BR": {
        "label": "Seu erro (uma resposta SMTP, um erro de fila ou as linhas relevantes de um NDR)",
        "system": "Reportado por",
        "unknown": "Não sei",
        "submit": "Diagnosticar",
        "privacy": "Roda no seu navegador: nada do que você cola é enviado a lugar algum.",
    },
}


def _move_under(file: File, prefix: str) -> None:
    """Put a generated file under a language's URL prefix (`pt-BR/`)."""
    if prefix:
        file.dest_uri = prefix + file.dest_uri
        file.url = file._get_url(file.use_directory_urls)  # MkDocs' own rule for URLs from dest_uri
        file.abs_dest_path = os.path.normpath(os.path.join(file.dest_dir, file.dest_uri))


def _current_build(config: MkDocsConfig) -> _Build:
    """The language of this build: from mkdocs-static-i18n when it runs, else the theme's."""
    i18n: Any = config.plugins.get("i18n")
    current = getattr(i18n, "current_language", None) if i18n is not None else None
    if i18n is not None and current:
        default = i18n.default_language
        languages = tuple(sorted(i18n.build_languages, key=lambda lang: lang != default))
        prefixes = {lang: "" if lang == default else f"{lang}/" for lang in languages}
        lang = current
    else:
        lang = str(config.theme.get("language") or SOURCE_LANGUAGE)
        languages = (lang,)
        prefixes = {lang: ""}
    rule_lang = lang if lang in LANGUAGES else SOURCE_LANGUAGE
    if rule_lang != lang:
        log.info(f"Rules have no '{lang}' text; rule pages of this build are in English")
    return _Build(lang=rule_lang, languages=languages, prefixes={**prefixes, rule_lang: prefixes.get(lang, "")})
