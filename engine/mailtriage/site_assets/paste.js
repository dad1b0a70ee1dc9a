/* mailtriage "paste your error" page: read a pasted SMTP reply or NDR excerpt, match it against the
 * exported rules (window.MAILTRIAGE_RULES, from rules.js) and list the matching rule pages.
 *
 * Runs entirely in the browser: no network, no server, works from file://. The parsing mirrors
 * mailtriage.intake.reply.parse_reply and the matching mirrors mailtriage.evaluate.holds; the test
 * suite runs this same file under Node against the Python engine on every rule example.
 * Pasted text is never inserted as HTML: results are built with createElement and textContent.
 */
(function (root) {
  "use strict";

  // Python's str.split() whitespace (str.isspace), which differs from JavaScript's \s.
  var PY_SPACE = "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
  var SPACES = new RegExp("[" + PY_SPACE + "]+", "g");

  // Same patterns as intake/reply.py (digits are ASCII here; see the README of the site tests).
  var REPLY = /(?<![0-9.])([2-5][0-9][0-9])(?:[ -]+|$)(?:#?([245]\.[0-9]{1,3}\.[0-9]{1,3})(?![0-9.]))?/;
  var ENHANCED = /(?<![0-9.])#?([245]\.[0-9]{1,3}\.[0-9]{1,3})(?![0-9.])/;
  var BRACKET = /\[([\p{L}\p{N}_]+)=([^\]]*)\]/gu;
  var SOCKET = /socket error code ([0-9]{5})/iu;
  var ENHANCED_PARTS = /^([245])\.([0-9]{1,3})\.([0-9]{1,3})$/;

  function pyWords(text) {
    return text.split(SPACES).filter(function (w) { return w.length > 0; });
  }

  function stripChars(text, chars) {
    var start = 0;
    var end = text.length;
    while (start < end && chars.indexOf(text[start]) >= 0) start++;
    while (end > start && chars.indexOf(text[end - 1]) >= 0) end--;
    return text.slice(start, end);
  }

  // The line has single spaces only (pyWords), so Python's strip() only removes spaces here.
  function strip(text) {
    return stripChars(text, " ");
  }

  /** Facts read from one pasted reply: the same fields, values and rules as parse_reply. */
  function parseReply(text) {
    var facts = {};
    var line = pyWords(String(text)).join(" ");
    var rest = line;
    var found = REPLY.exec(line);
    if (found) {
      facts["smtp.reply_code"] = parseInt(found[1], 10);
      if (found[2]) facts["smtp.enhanced"] = found[2];
      rest = line.slice(found.index + found[0].length);
    } else {
      var enhanced = ENHANCED.exec(line);
      if (enhanced) {
        facts["smtp.enhanced"] = enhanced[1];
        rest = line.slice(enhanced.index + enhanced[0].length);
      }
    }
    var pair;
    BRACKET.lastIndex = 0;
    while ((pair = BRACKET.exec(rest)) !== null) {
      var key = pair[1].toLowerCase();
      var value = pair[2];
      if (key === "message") {
        facts["smtp.details_message"] = strip(value);
      } else if (key === "lastattemptedservername") {
        facts["smtp.remote_host"] = strip(value);
      } else if (key === "lastattemptedip") {
        var full = strip(value);
        var colon = full.lastIndexOf(":");
        var address = colon >= 0 ? full.slice(0, colon) : "";
        var port = colon >= 0 ? full.slice(colon + 1) : full;
        if (address && /^[0-9]+$/.test(port)) {
          facts["smtp.remote_ip"] = address;
          facts["smtp.remote_port"] = parseInt(port, 10);
        } else {
          facts["smtp.remote_ip"] = full;
        }
      }
    }
    var socket = SOCKET.exec(line);
    if (socket) facts["smtp.socket_error"] = parseInt(socket[1], 10);
    var message = stripChars(strip(rest.replace(BRACKET, "")), " -:;,");
    if (message && Object.keys(facts).length > 0) facts["smtp.text"] = message;
    return facts;
  }

  /** Normalise like mailtriage.facts.normalize_facts for the fields a paste can produce, and add
   * the derived enhanced-code fields. Values the engine would refuse are dropped (and listed). */
  function normalizeFacts(raw) {
    var facts = {};
    var dropped = [];
    Object.keys(raw).forEach(function (name) {
      if (raw[name] !== null && raw[name] !== undefined) facts[name] = raw[name];
    });
    var port = facts["smtp.remote_port"];
    if (port !== undefined && (typeof port !== "number" || port < 1 || port > 65535)) {
      dropped.push("smtp.remote_port");
      delete facts["smtp.remote_port"];
    }
    var parts = typeof facts["smtp.enhanced"] === "string" ? ENHANCED_PARTS.exec(facts["smtp.enhanced"]) : null;
    if (parts) {
      var cls = parseInt(parts[1], 10);
      var subject = parseInt(parts[2], 10);
      var detail = parseInt(parts[3], 10);
      facts["smtp.enhanced"] = cls + "." + subject + "." + detail;
      if (!("smtp.enhanced_class" in facts)) facts["smtp.enhanced_class"] = cls;
      if (!("smtp.enhanced_subject" in facts)) facts["smtp.enhanced_subject"] = "X." + subject;
      if (!("smtp.enhanced_generic" in facts)) facts["smtp.enhanced_generic"] = "X." + subject + "." + detail;
    }
    return { facts: facts, dropped: dropped };
  }

  function compilePattern(leaf) {
    // Python's IGNORECASE folds case like the `u` flag does; patterns that are not valid in
    // unicode mode (identity escapes such as \-) fall back to the plain `i` flag.
    try {
      return new RegExp(leaf.matches, leaf.flags + "u");
    } catch (unicodeError) {
      return new RegExp(leaf.matches, leaf.flags);
    }
  }

  /** Compile every pattern once; a rule whose pattern does not compile is left out and reported. */
  function prepareRules(doc) {
    var ready = [];
    var broken = [];
    (doc && doc.rules ? doc.rules : []).forEach(function (rule) {
      try {
        ready.push({ rule: rule, match: prepare(rule.match) });
      } catch (error) {
        broken.push({ id: rule.id, error: String(error) });
      }
    });
    return { rules: ready, broken: broken };
  }

  function prepare(node) {
    if (Array.isArray(node.all)) return { all: node.all.map(prepare) };
    if (Array.isArray(node.any)) return { any: node.any.map(prepare) };
    if (node.not !== undefined) return { not: prepare(node.not) };
    var leaf = {};
    Object.keys(node).forEach(function (k) { leaf[k] = node[k]; });
    if (typeof leaf.matches === "string") leaf.regex = compilePattern(leaf);
    return leaf;
  }

  function same(fact, expected) {
    if (typeof fact === "boolean" || typeof expected === "boolean") return fact === expected;
    return fact === expected;
  }

  function leafHolds(leaf, facts) {
    var value = Object.prototype.hasOwnProperty.call(facts, leaf.field) ? facts[leaf.field] : undefined;
    if ("exists" in leaf) return (value !== undefined && value !== null) === Boolean(leaf.exists);
    if (value === undefined || value === null) return false;
    if ("equals" in leaf) return same(value, leaf.equals);
    if ("one_of" in leaf) return leaf.one_of.some(function (v) { return same(value, v); });
    if ("matches" in leaf) return typeof value === "string" && leaf.regex.test(value);
    if (typeof value !== "number") return false;
    if ("less_than" in leaf) return value < leaf.less_than;
    if ("at_most" in leaf) return value <= leaf.at_most;
    if ("greater_than" in leaf) return value > leaf.greater_than;
    if ("at_least" in leaf) return value >= leaf.at_least;
    return false;
  }

  /** Two-valued evaluation, as mailtriage.evaluate.holds: a test of a missing field is false and
   * `not` inverts whatever its child gave. */
  function holds(node, facts) {
    if (node.all) return node.all.every(function (c) { return holds(c, facts); });
    if (node.any) return node.any.some(function (c) { return holds(c, facts); });
    if (node.not) return !holds(node.not, facts);
    return leafHolds(node, facts);
  }

  /** Matching rules, most specific first (specific, then generic detail, subject, class). */
  function matchRules(prepared, facts) {
    var found = prepared.rules.filter(function (p) { return holds(p.match, facts); }).map(function (p) { return p.rule; });
    found.sort(function (a, b) {
      if (a.specificity !== b.specificity) return b.specificity - a.specificity;
      if (a.experimental !== b.experimental) return a.experimental ? 1 : -1;
      return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
    });
    return found;
  }

  /** Everything at once: text (+ extra facts) to facts and matching rules. */
  function diagnose(prepared, text, extra) {
    var raw = parseReply(text);
    Object.keys(extra || {}).forEach(function (k) { raw[k] = extra[k]; });
    var normal = normalizeFacts(raw);
    return { facts: normal.facts, dropped: normal.dropped, matches: matchRules(prepared, normal.facts) };
  }

  // ------------------------------------------------------------------------------------------
  // The page

  var WORDS = {
    en: {
      read: "What we read from your text",
      none_read: "No SMTP reply code or enhanced status code found. Paste the line with the code, e.g. 450 4.4.316 Connection refused.",
      matches: "Matching rules",
      no_match: "No rule matches these facts. Try choosing who reported the error, or browse the codes table.",
      specific: "specific",
      generic: "generic",
      dropped: "Ignored (out of range): ",
      loading_failed: "The rule list did not load, so nothing can be matched. Rebuild the site or reload the page."
    },
    "pt-BR": {
      read: "O que lemos no seu texto",
      none_read: "Nenhum código de resposta SMTP ou código de status estendido encontrado. Cole a linha com o código, por exemplo 450 4.4.316 Connection refused.",
      matches: "Regras correspondentes",
      no_match: "Nenhuma regra corresponde a estes fatos. Tente escolher quem reportou o erro, ou consulte a tabela de códigos.",
      specific: "específica",
      generic: "genérica",
      dropped: "Ignorado (fora do intervalo): ",
      loading_failed: "A lista de regras não carregou, então nada pode ser comparado. Gere o site de novo ou recarregue a página."
    }
  };

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function render(container, result, words, lang, siteRoot) {
    while (container.firstChild) container.removeChild(container.firstChild);
    var names = Object.keys(result.facts);
    if (names.length === 0) {
      container.appendChild(el("p", "mt-paste-empty", words.none_read));
      return;
    }
    container.appendChild(el("h2", null, words.read));
    var list = el("ul", "mt-paste-facts");
    names.forEach(function (name) {
      var item = el("li");
      item.appendChild(el("code", null, name));
      item.appendChild(document.createTextNode(" = "));
      item.appendChild(el("code", null, String(result.facts[name])));
      list.appendChild(item);
    });
    container.appendChild(list);
    if (result.dropped.length) container.appendChild(el("p", "mt-paste-dropped", words.dropped + result.dropped.join(", ")));
    container.appendChild(el("h2", null, words.matches));
    if (result.matches.length === 0) {
      container.appendChild(el("p", "mt-paste-empty", words.no_match));
      return;
    }
    var ol = el("ol", "mt-paste-results");
    result.matches.forEach(function (rule) {
      var item = el("li", "mt-paste-result mt-kind-" + (rule.kind === "specific" ? "specific" : "generic"));
      var link = el("a", "mt-paste-link", (rule.title && (rule.title[lang] || rule.title.en)) || rule.id);
      link.setAttribute("href", siteRoot + rule.url);
      link.setAttribute("data-rule-id", rule.id);
      item.appendChild(link);
      var meta = el("span", "mt-paste-meta");
      var kind = rule.kind === "specific" ? words.specific : words.generic + (rule.generic_level ? " · " + rule.generic_level : "");
      meta.appendChild(el("span", "mt-badge", kind));
      (rule.codes || []).slice(0, 3).forEach(function (code) { meta.appendChild(el("code", null, code)); });
      item.appendChild(meta);
      ol.appendChild(item);
    });
    container.appendChild(ol);
  }

  function start() {
    var form = document.getElementById("mt-paste");
    if (!form) return;
    var lang = form.getAttribute("data-lang") || "en";
    var words = WORDS[lang] || WORDS.en;
    var siteRoot = form.getAttribute("data-site-root") || "";
    var input = document.getElementById("mt-paste-input");
    var system = document.getElementById("mt-paste-system");
    var output = document.getElementById("mt-paste-output");
    var prepared = prepareRules(root.MAILTRIAGE_RULES);
    if (!root.MAILTRIAGE_RULES) {
      output.appendChild(el("p", "mt-paste-empty", words.loading_failed));
      return;
    }
    if (prepared.broken.length && root.console) root.console.warn("mailtriage: rules left out", prepared.broken);
    function run() {
      if (!input.value.trim()) {
        while (output.firstChild) output.removeChild(output.firstChild);
        return;
      }
      var extra = {};
      if (system && system.value) extra["context.system"] = system.value;
      render(output, diagnose(prepared, input.value, extra), words, lang, siteRoot);
    }
    var timer = null;
    input.addEventListener("input", function () {
      if (timer) clearTimeout(timer);
      timer = setTimeout(run, 150);
    });
    if (system) system.addEventListener("change", run);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      run();
    });
    var query = new URLSearchParams(root.location ? root.location.search : "").get("q");
    if (query) {
      input.value = query;
      run();
    }
  }

  var api = {
    parseReply: parseReply,
    normalizeFacts: normalizeFacts,
    prepareRules: prepareRules,
    holds: holds,
    matchRules: matchRules,
    diagnose: diagnose
  };
  if (typeof module === "object" && module.exports) {
    module.exports = api;
  } else {
    root.mailtriagePaste = api;
    if (typeof document !== "undefined") {
      if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
      else start();
    }
  }
})(typeof window !== "undefined" ? window : globalThis);
