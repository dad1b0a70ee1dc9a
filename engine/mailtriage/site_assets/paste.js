/* mailtriage "paste your error" page: read a pasted SMTP reply, NDR excerpt or MTA log line, match
 * it against the exported rules (window.MAILTRIAGE_RULES, from rules.js) and list the matching rule
 * pages.
 *
 * Runs entirely in the browser: no network, no server, works from file://. The parsing is a
 * line-by-line port of mailtriage.intake.reply.parse_reply (with intake.symptoms.text_symptoms) and
 * of intake.logs.parse_log_line (whose patterns and tables come in rules.json), and the matching
 * mirrors mailtriage.evaluate.holds. tests/test_site.py runs this same file under Node
 * against the Python code: on every rule example, on sample replies and on fuzzed text. Change the
 * Python parser and those tests tell you what to port here. Known limits of the port: indexes
 * count UTF-16 units where Python counts code points (differs only after characters outside the
 * BMP), and Python's case-insensitive literals also match the Turkish dotted/dotless i.
 * Pasted text is never inserted as HTML: results are built with createElement and textContent.
 * Rule patterns run on RE2JS (linear time), never on the browser's RegExp.
 *
 * The page (the paste page and the home pages carry the same form): the answer first (a card per
 * matching rule with its summary and first fix, in the page's language), the facts it came from
 * folded away after it; redrawn once typing pauses, and only a one-line status is a live region;
 * the text goes into the address (?q=) so a diagnosis can be shared.
 */
(function (root) {
  "use strict";

  // --- mirror of mailtriage/intake/reply.py and intake/symptoms.py ---------------------------
  // Python's regexes are Unicode-aware; these spell out the same classes: W is Python's \w, D its \d
  // and S its \s (str.isspace), which differ from JavaScript's own \w, \d and \s.
  var W = "\\p{L}\\p{N}_";
  var D = "\\p{Nd}";
  var S = "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
  var B = "(?:(?<=[" + W + "])(?![" + W + "])|(?<![" + W + "])(?=[" + W + "]))"; // Python's \b
  // Python's [A-Za-z] under IGNORECASE also takes these two (the `u` flag folds the other two, ſ and K).
  var AZ = "A-Za-z\\u0130\\u0131";
  function rx(source, flags) { return new RegExp(source, (flags || "") + "u"); }

  var MAX_REPLY_CHARS = 20000;
  var MAX_TEXT_FACT_CHARS = 1000;
  var SPACES = rx("[" + S + "]+", "g");
  // [0-9], not D: codes are ASCII digits ("45\u0663" is not reply 453), as in reply.py's _CANDIDATE.
  var CANDIDATE = rx(
    "(?<![" + W + "./\\-=+@\\[$%])(?<![0-9]:)" +
    "(?:" +
    "(?<code>[245][0-5][0-9])(?:[ \\-]+['\"]?#?|(?=$|['\"()\\]<>,;]|\\.(?![0-9])))(?<enh1>[245]\\.[0-9]{1,3}\\.[0-9]{1,3}(?![0-9]|\\.[0-9]))?" +
    "|#?(?<enh2>[45]\\.[0-9]{1,3}\\.[0-9]{1,3})(?![0-9]|\\.[0-9]|-[0-9])" +
    ")", "g");
  var VERSION_BEFORE = rx("(?:version|release|ver\\.?|" + B + "v)[" + S + "]*$", "i");
  // [Field=value] brackets are read by brackets(), in one pass (as reply.py's _brackets): the
  // regex \[(\w+)=([^\]]*)\] rescans the rest of the text from every unclosed "[key=".
  var BRACKET_START = rx("\\[([" + W + "]+)=", "g");
  var EXPIRY = rx("^(?:message expired|expired|retry time(?:out)? (?:exceeded|expired)|delivery time expired|" +
    "unable to deliver in [" + D + "]+ minutes|too long in (?:the )?queue)", "i");
  var LEADING_ADDRESS = rx("^<?[^" + S + "<>@]+@[^" + S + "<>]+?>?(?:\\.\\.\\.|:|[" + S + "])[" + S + "]*");
  var STRIP_TEXT = " -:;,'\"";

  var SOCKET_ERRORS = { 10060: "timeout", 10061: "refused", 10054: "reset", 10065: "unreachable", 10051: "unreachable" };
  var SOCKET_CODE = rx("(?:socket error(?: code)?|winsock error|error code)[:= ]*(100[" + D + "][" + D + "])" + B, "i");
  var BARE_SOCKET = rx(B + "(100(?:5[14]|6[015]))" + B);
  var DNS_DETAIL = rx(B + "((?:Info|Error)(?:NoRecords|DomainNonexistent|Retry|NoServers|Timeout|ServerFailure|" +
    "NotAuthoritative|Refused|NameError|Unknown|DnsServerError|Failed)[" + W + "]*)" + B);
  var DNS_DETAIL_RESULT = {
    infodomainnonexistent: "nxdomain", errordomainnonexistent: "nxdomain", errorrefused: "refused",
    errortimeout: "timeout", errorserverfailure: "servfail"
  };
  var MX_WORD = rx(B + "mx" + B);
  var ADDRESS_WORD = rx(B + "(?:a|aaaa|address|smart ?host|host name)" + B);
  var POSTFIX_DNS = rx("name service error for (?:name=)?(?<name>[" + W + ".\\-]+)(?: type=(?<type>[" + W + "]+))?:? ?(?<why>[^;()]*)", "i");
  var GOOGLE_DNS = rx("dns type '(?<type>[" + W + "]+)' lookup of (?<name>[" + W + ".\\-]+) responded with code (?<rcode>[A-Z\\u0130\\u0131]+)", "i");
  var LOOKUP_FAILURE = rx("dns lookup failure:? (?:host )?(?<name>[" + W + ".\\-]+) not found", "i");
  var RCODE_RESULT = { nxdomain: "nxdomain", servfail: "servfail", refused: "refused" };
  var HOST_BRACKET_IP = rx("(?:host|connect to|with|from|to|server)[" + S + "]+(?<host>[" + AZ + "0-9][" + W + ".\\-]*)[" + S + "]?\\[(?<ip>[0-9a-fA-F:.]+)\\](?::(?<port>[" + D + "]{1,5}))?", "i");
  var REMOTE_HOST_SAID = rx("(?:remote host (?<ip>[0-9a-fA-F:.]{7,}) said|(?<ip2>[" + D + "]{1,3}(?:\\.[" + D + "]{1,3}){3}) does not like)", "i");
  var REMOTE_SERVER_AT = rx("remote server at (?<host>[" + W + ".\\-]+)(?: \\((?<ip>[0-9a-fA-F:.]+)\\))?", "i");
  var LOOKS_LIKE_IP = /^(?:[0-9.]+|[0-9a-fA-F:]+:[0-9a-fA-F:.]*)$/;
  var STAGES = [
    ["end of data", "end-of-data"], ["final dot", "end-of-data"], ["final data", "end-of-data"],
    ["message body", "data"], ["rcpt to", "rcpt"], ["rcpt", "rcpt"], ["recipient", "rcpt"],
    ["mail from", "mail"], ["data command", "data"], ["after data", "data"], ["starttls", "starttls"],
    ["ehlo", "ehlo"], ["helo", "helo"], ["initial server greeting", "banner"], ["initial connection", "banner"], ["greeting", "banner"],
    ["banner", "banner"], ["auth", "auth"]
  ];
  var STAGE_TRIGGERS = [
    "in reply to", "after", "while sending", "while receiving", "while performing", "in response to",
    "most progress was", "did not like our", "does not like", "during", "while"
  ];

  // Python's int() of decimal digits of any script (Nd digits come in runs of ten from zero).
  var ND = rx("^[" + D + "]$");
  function toInt(text) {
    var value = 0;
    Array.from(text).forEach(function (ch) {
      var cp = ch.codePointAt(0);
      var digit = 0;
      if (cp >= 48 && cp <= 57) digit = cp - 48;
      else while (digit < 9 && ND.test(String.fromCodePoint(cp - digit - 1))) digit++;
      value = value * 10 + digit;
    });
    return value;
  }
  function pySlice(text, count) { return Array.from(text).slice(0, count).join(""); } // code points
  function pyWords(text) { return text.split(SPACES).filter(function (w) { return w.length > 0; }); }
  function stripChars(text, chars) {
    var start = 0;
    var end = text.length;
    while (start < end && chars.indexOf(text[start]) >= 0) start++;
    while (end > start && chars.indexOf(text[end - 1]) >= 0) end--;
    return text.slice(start, end);
  }
  function lstripChars(text, chars) { return stripChars(text + "\u0000", chars).replace(/\u0000$/, ""); }
  function rstripChars(text, chars) { return stripChars("\u0000" + text, chars).slice(1); }
  function setDefault(facts, key, value) { if (!(key in facts)) facts[key] = value; }
  function escapeRegex(text) { return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); }
  function has(lower, needle) { return lower.indexOf(needle) >= 0; }

  function strength(c) {
    if (c.code !== null && c.enhanced !== null) return 3;
    return c.enhanced !== null ? 2 : 1;
  }

  /** [start, end, key, value] of each [key=value], in time linear in the line. */
  function brackets(line) {
    var found = [];
    var position = 0;
    for (;;) {
      BRACKET_START.lastIndex = position;
      var start = BRACKET_START.exec(line);
      if (start === null) return found;
      var keyEnd = start.index + start[0].length;
      var close = line.indexOf("]", keyEnd);
      if (close < 0) return found; // no "]" after this one: none after any later "[" either
      found.push([start.index, close + 1, start[1], line.slice(keyEnd, close)]);
      position = close + 1;
    }
  }

  function withoutBrackets(text) {
    var parts = [];
    var position = 0;
    brackets(text).forEach(function (b) { parts.push(text.slice(position, b[0])); position = b[1]; });
    parts.push(text.slice(position));
    return parts.join("");
  }

  function findCandidates(line) {
    var spans = has(line, "=") ? brackets(line) : [];
    var m;
    var found = [];
    var spanIndex = -1;
    CANDIDATE.lastIndex = 0;
    while ((m = CANDIDATE.exec(line)) !== null) {
      var codeText = m.groups.code;
      var enhanced = m.groups.enh1 || m.groups.enh2 || null;
      if (codeText === undefined && enhanced === null) continue;
      var start = m.index;
      if (codeText === undefined) {
        var before = VERSION_BEFORE.exec(line.slice(0, start));
        if (before && before.index >= Math.max(0, start - 12)) continue;
      }
      // Brackets do not overlap and come in order: only the last one opening before start can hold it.
      while (spanIndex + 1 < spans.length && spans[spanIndex + 1][0] < start) spanIndex++;
      var inside = spanIndex >= 0 && spans[spanIndex][0] < start && start < spans[spanIndex][1];
      found.push({ start: start, end: m.index + m[0].length, code: codeText !== undefined ? toInt(codeText) : null, enhanced: enhanced, inBracket: inside });
    }
    return found;
  }

  function mergeMultiline(cands) {
    var merged = [];
    cands.forEach(function (c) {
      var last = merged[merged.length - 1];
      if (last && c.code === last.code && c.enhanced === last.enhanced && c.inBracket === last.inBracket) return;
      merged.push(c);
    });
    return merged;
  }

  function cleanText(text, cand) {
    text = withoutBrackets(text);
    if (cand && cand.code !== null) {
      var prefix = "(?<![" + W + "])" + cand.code + "[ \\-]" + (cand.enhanced ? escapeRegex(cand.enhanced) + " ?" : "");
      text = text.replace(rx(prefix, "g"), " ");
    }
    text = pyWords(text).join(" ");
    text = stripChars(text, STRIP_TEXT).replace(LEADING_ADDRESS, "");
    return pySlice(stripChars(text, STRIP_TEXT), MAX_TEXT_FACT_CHARS);
  }

  function isExpiry(cand, following) {
    if (cand.enhanced !== null) {
      var parts = cand.enhanced.split(".");
      if (parts[1] === "4" && (parts[2] === "7" || parts[2] === "300")) return true;
    }
    return EXPIRY.test(pySlice(lstripChars(following, STRIP_TEXT), 80));
  }

  function bracketFacts(line, facts) {
    brackets(line).forEach(function (b) {
      var key = b[2].toLowerCase();
      var value = stripChars(b[3], " ");
      if (key === "message") {
        setDefault(facts, "smtp.details_message", pySlice(value, MAX_TEXT_FACT_CHARS));
      } else if (key === "lastattemptedservername") {
        setDefault(facts, "smtp.remote_host", rstripChars(value, "."));
      } else if (key === "lastattemptedip") {
        var colon = value.lastIndexOf(":");
        var address = colon >= 0 ? value.slice(0, colon) : "";
        var port = colon >= 0 ? value.slice(colon + 1) : value;
        var number = rx("^[" + D + "]+$").test(port) ? toInt(port) : -1;
        if (address && number > 0 && number < 65536) {
          setDefault(facts, "smtp.remote_ip", stripChars(address, "[]"));
          setDefault(facts, "smtp.remote_port", number);
        } else if (value) {
          setDefault(facts, "smtp.remote_ip", value);
        }
      }
    });
  }

  function best(cands) {
    var outside = cands.filter(function (c) { return !c.inBracket && (c.enhanced === null || c.enhanced[0] !== "2"); });
    if (!outside.length) outside = cands.filter(function (c) { return !c.inBracket && c.code !== null && String(c.code)[0] === "2"; });
    if (!outside.length) return null;
    var top = Math.max.apply(null, outside.map(strength));
    return outside.filter(function (c) { return strength(c) === top; })[0];
  }

  function complete(chosen, cands) {
    if (chosen.code === null && chosen.enhanced !== null) {
      var before = cands.filter(function (c) { return c.start < chosen.start && !c.inBracket; });
      if (before.length) {
        var prev = before[before.length - 1];
        if (prev.enhanced === null && prev.code !== null && String(prev.code)[0] === chosen.enhanced[0] && chosen.start - prev.end < 400) {
          return { start: prev.start, end: prev.end, code: prev.code, enhanced: chosen.enhanced, inBracket: false };
        }
      }
      return chosen;
    }
    if (chosen.enhanced !== null || chosen.code === null) return chosen;
    for (var i = 0; i < cands.length; i++) {
      var c = cands[i];
      if (c.start <= chosen.start || c.inBracket) continue;
      if (c.code !== null) break;
      if (c.enhanced !== null && c.enhanced[0] === String(chosen.code)[0] && c.start - chosen.end < 400) {
        return { start: chosen.start, end: chosen.end, code: chosen.code, enhanced: c.enhanced, inBracket: false };
      }
    }
    return chosen;
  }

  function socketError(text, lower) {
    if (!has(text, "100")) return null;
    var found = SOCKET_CODE.exec(text);
    if (found) return toInt(found[1]);
    if (has(lower, "socket") || has(lower, "winsock")) {
      var bare = BARE_SOCKET.exec(text);
      if (bare) return toInt(bare[1]);
    }
    return null;
  }

  function tcpState(lower, code) {
    if (code !== null && Object.prototype.hasOwnProperty.call(SOCKET_ERRORS, code)) return SOCKET_ERRORS[code];
    if (has(lower, "refused") && (has(lower, "connection refused") || has(lower, "connectionrefused"))) return "refused";
    if ((has(lower, "timed out") || has(lower, "timedout") || has(lower, "timeout")) && !has(lower, "conversation with") && !has(lower, "smtp timeout") && (
      has(lower, "connection timed out") || has(lower, "connect timed out") || has(lower, "sockete") ||
      has(lower, "timed out while connecting") || has(lower, "connection timeout"))) return "timeout";
    if (has(lower, "unreachable") || has(lower, "no route to host")) return "unreachable";
    if (has(lower, "connection reset") || has(lower, "connectionreset")) return "reset";
    return null;
  }

  function anyOf(lower, needles) { return needles.some(function (n) { return has(lower, n); }); }

  function tlsError(lower) {
    if (!anyOf(lower, ["tls", "ssl", "cert", "untrusted"])) return null;
    if (anyOf(lower, ["untrustedroot", "unable to get local issuer", "incomplete chain"])) return "missing-intermediate";
    if (has(lower, "expired") && has(lower, "cert")) return "certificate-expired";
    if (has(lower, "not yet valid")) return "certificate-not-yet-valid";
    if (anyOf(lower, ["self signed", "self-signed", "selfsigned"])) return "self-signed";
    if (has(lower, "revoked")) return "revoked";
    if (has(lower, "cert") && anyOf(lower, ["name mismatch", "namemismatch", "hostname mismatch", "host-mismatch", "does not match", "doesn't match"])) return "name-mismatch";
    if (anyOf(lower, ["unknown ca", "untrusted", "unknown issuer"])) return "untrusted-issuer";
    if (anyOf(lower, ["wrong version number", "unsupported protocol", "protocol version", "no protocols available"])) return "protocol-mismatch";
    if (anyOf(lower, ["no shared cipher", "no ciphers available", "cipher mismatch"])) return "cipher-mismatch";
    if ((has(lower, "starttls") || has(lower, "tls")) &&
      anyOf(lower, ["required", "not offered", "not supported", "not-supported"]) &&
      anyOf(lower, ["not offer", "not support", "is required", "must issue"])) return "required-not-offered";
    if (anyOf(lower, ["tls negotiation failed", "handshake fail", "cannot start tls", "tls session", "ssl routines", "attempt to start tls failed", "tls error"])) return "handshake-failed";
    return null;
  }

  function dnsFacts(text, lower, facts) {
    var found;
    if (has(lower, "info") || has(lower, "error")) {
      var detail = DNS_DETAIL.exec(text);
      if (detail) {
        var word = detail[1];
        facts["dns.detail"] = word;
        var result = DNS_DETAIL_RESULT[word.toLowerCase()];
        if (result === undefined && /norecords$/.test(word.toLowerCase())) {
          if (MX_WORD.test(lower)) result = "no-mx";
          else if (ADDRESS_WORD.test(lower)) result = "no-address";
        }
        if (result) facts["dns.result"] = result;
      }
    }
    if (has(lower, "name service error")) {
      found = POSTFIX_DNS.exec(text);
      if (found) {
        facts["dns.query_name"] = rstripChars(found.groups.name, ".");
        var why = (found.groups.why || "").toLowerCase();
        var qtype = (found.groups.type || "").toUpperCase();
        if (has(why, "try again")) facts["dns.result"] = "servfail";
        else if (has(why, "host not found")) facts["dns.result"] = "nxdomain";
        else if (has(why, "no address") || has(why, "no data")) facts["dns.result"] = qtype === "MX" ? "no-mx" : "no-address";
        else if (has(why, "malformed") || has(why, "unexpected")) facts["dns.result"] = "servfail";
      }
    } else if (has(lower, "dns type")) {
      found = GOOGLE_DNS.exec(text);
      if (found) {
        facts["dns.query_name"] = rstripChars(found.groups.name, ".");
        var rcode = found.groups.rcode.toLowerCase();
        if (Object.prototype.hasOwnProperty.call(RCODE_RESULT, rcode)) facts["dns.result"] = RCODE_RESULT[rcode];
        else if (rcode === "noerror" && found.groups.type.toLowerCase() === "mx" && has(lower, "no mx")) facts["dns.result"] = "no-mx";
      }
    }
    if (has(lower, "nullmx") || has(lower, "null mx") || has(lower, "indicated no smtp service")) facts["dns.result"] = "null-mx";
    else if (has(lower, "point to non-existent hosts") || has(lower, "couldn't find a mail exchanger or ip")) setDefault(facts, "dns.result", "no-address");
    else if (has(lower, "host lookup did not complete")) setDefault(facts, "dns.result", "servfail");
    else if (has(lower, "couldn't find any host named") || has(lower, "domain does not exist") || has(lower, "nxdomain")) setDefault(facts, "dns.result", "nxdomain");
    else if (has(lower, "dns lookup failure") || has(lower, "mx lookup") || has(lower, "no mx found")) {
      // As symptoms.py: DragonFly's "DNS lookup failure: host X not found", OpenSMTPD's MX wordings.
      found = LOOKUP_FAILURE.exec(text);
      if (found && found.groups.name) {
        setDefault(facts, "dns.query_name", rstripChars(found.groups.name, "."));
        setDefault(facts, "dns.result", "nxdomain");
      } else if (has(lower, "temporary failure in mx lookup")) setDefault(facts, "dns.result", "servfail");
      else if (has(lower, "no mx found")) setDefault(facts, "dns.result", "no-mx");
    }
    else if (has(lower, "dnssec") && (has(lower, "invalid") || has(lower, "bogus") || has(lower, "fail"))) setDefault(facts, "dns.result", "dnssec-failure");
  }

  function stage(lower) {
    var bestAt = -1;
    var bestName = null;
    STAGE_TRIGGERS.forEach(function (trigger) {
      var at = lower.indexOf(trigger);
      while (at >= 0 && (bestAt < 0 || at < bestAt)) {
        var phrase = lower.slice(at + trigger.length, at + trigger.length + 42).split(";")[0].split(":")[0];
        phrase = phrase.split("(")[0].split(")")[0];
        var name = null;
        for (var i = 0; i < STAGES.length; i++) {
          if (has(phrase, STAGES[i][0])) { name = STAGES[i][1]; break; }
        }
        if (name !== null) { bestAt = at; bestName = name; break; }
        at = lower.indexOf(trigger, at + 1);
      }
    });
    return bestName;
  }

  function remoteEndpoint(text, facts) {
    if (has(text, "[")) {
      var found = HOST_BRACKET_IP.exec(text);
      if (found) {
        var host = rstripChars(found.groups.host, ".");
        if (!LOOKS_LIKE_IP.test(host)) setDefault(facts, "smtp.remote_host", host);
        setDefault(facts, "smtp.remote_ip", found.groups.ip);
        if (found.groups.port) {
          var port = toInt(found.groups.port);
          if (port > 0 && port < 65536) setDefault(facts, "smtp.remote_port", port);
        }
        return;
      }
    }
    if (has(text, "said") || has(text, "does not like") || has(text, "emote Server at") || has(text, "emote server at")) {
      var said = REMOTE_HOST_SAID.exec(text);
      if (said) {
        setDefault(facts, "smtp.remote_ip", said.groups.ip || said.groups.ip2);
        return;
      }
      var at = REMOTE_SERVER_AT.exec(text);
      if (at) {
        setDefault(facts, "smtp.remote_host", rstripChars(at.groups.host, "."));
        if (at.groups.ip) setDefault(facts, "smtp.remote_ip", at.groups.ip);
      }
    }
  }

  function textSymptoms(text, facts) {
    var lower = text.toLowerCase();
    var code = socketError(text, lower);
    if (code !== null) setDefault(facts, "smtp.socket_error", code);
    var state = tcpState(lower, code);
    if (state) {
      setDefault(facts, "tcp.state", state);
      if (state === "refused" || state === "timeout" || state === "unreachable") setDefault(facts, "smtp.stage", "connect");
    }
    var tls = tlsError(lower);
    if (tls) setDefault(facts, "tls.error", tls);
    if (has(lower, "lost connection") || has(lower, "closed connection") || has(lower, "closed abruptly") || (has(lower, "connection") && has(lower, "dropped"))) {
      setDefault(facts, "smtp.closed_abruptly", true);
      setDefault(facts, "tcp.state", "connected");
    } else if ((has(lower, "conversation with") && has(lower, "timed out")) || has(lower, "smtp timeout")) {
      setDefault(facts, "tcp.state", "connected");
      setDefault(facts, "smtp.timed_out", true);
    }
    dnsFacts(text, lower, facts);
    if (has(lower, "refused to talk to me")) setDefault(facts, "smtp.stage", "banner");
    var foundStage = stage(lower);
    if (foundStage) setDefault(facts, "smtp.stage", foundStage);
    remoteEndpoint(text, facts);
  }

  /** Where `text` starts quoting the returned original message (reply.before_returned_message),
   * or -1: the pattern is reply.RETURNED_MESSAGE, exported in rules.json's context. */
  function returnedMessageAt(context, text) {
    var pattern = context && context.returnedMessage;
    if (!pattern) return -1;
    pattern.lastIndex = 0;
    var found = pattern.exec(text);
    return found && found.index > 0 ? found.index : -1;
  }

  /** How much of `text` is read: up to any returned message (`cutAt`, -1 if none), then the first
   * MAX_REPLY_CHARS characters of that (`capped` when there was more; `chars` counts them). */
  function readLimits(context, text) {
    text = String(text);
    var cutAt = returnedMessageAt(context, text);
    var read = cutAt >= 0 ? text.slice(0, cutAt) : text;
    var chars = read.length > MAX_REPLY_CHARS ? Array.from(read).length : read.length;
    return { cutAt: cutAt, chars: chars, capped: chars > MAX_REPLY_CHARS, limit: MAX_REPLY_CHARS, text: read };
  }

  /** The text parse_reply reads (reply.reply_line): the error before any returned message,
   * capped, on one line. */
  function replyLine(text, context) { return pyWords(pySlice(readLimits(context, text).text, MAX_REPLY_CHARS)).join(" "); }

  /** Facts read from one pasted error: the same fields, values and rules as parse_reply.
   * `context` is prepareContext's (it holds where a returned message starts). */
  function parseReply(text, context) {
    var line = replyLine(text, context);
    if (!line) return {};
    var facts = {};
    var cands = mergeMultiline(findCandidates(line));
    var chosen = best(cands);
    var outer = null;
    var message;
    if (chosen !== null) {
      var after = line.slice(chosen.end);
      if (isExpiry(chosen, after)) {
        var later = cands.filter(function (c) {
          return c.start > chosen.start && !c.inBracket && c.code !== null && !(c.code === chosen.code && c.enhanced === chosen.enhanced);
        });
        if (later.length) {
          var top = Math.max.apply(null, later.map(strength));
          outer = chosen;
          chosen = later.filter(function (c) { return strength(c) === top; })[0];
        }
        facts["outer.expired"] = true;
      }
      chosen = complete(chosen, cands);
      if (chosen.code !== null) facts["smtp.reply_code"] = chosen.code;
      if (chosen.enhanced !== null) facts["smtp.enhanced"] = chosen.enhanced;
      if (outer !== null) {
        if (outer.code !== null) facts["outer.reply_code"] = outer.code;
        if (outer.enhanced !== null) facts["outer.enhanced"] = outer.enhanced;
        var outerText = cleanText(line.slice(outer.end, chosen.start), outer);
        if (outerText) facts["outer.text"] = outerText;
      }
      message = cleanText(line.slice(chosen.end), chosen);
      if (outer === null && !/\p{L}/u.test(message)) {
        // The code closes the sentence (qmail's "... host named example.com. (#5.1.2)"), as parse_reply.
        message = cleanText(line.slice(0, chosen.start).replace(/[ (#[<]+$/, ""), null);
      }
    } else {
      message = cleanText(line, null);
    }
    if (has(line, "=")) bracketFacts(line, facts);
    textSymptoms(line, facts);
    if (Object.keys(facts).length === 0) return {};
    if (message) facts["smtp.text"] = message;
    return facts;
  }

  // --- mirror of mailtriage/intake/context.py: the marker table itself comes from Python ------
  // (rules.json's "context", written by site_export from intake.context.MARKERS), never a copy.
  var MAX_SOURCE_CHARS = 20000;
  var MAX_EVIDENCE_CHARS = 120;
  var SPACE_CHAR = rx("^[" + S + "]$");
  var NOT_PRINTABLE = rx("[\\p{Cc}\\p{Cf}\\p{Cs}\\p{Co}\\p{Cn}\\p{Zl}\\p{Zp}\\p{Zs}]");

  function prepareContext(doc) {
    var context = doc && doc.context ? doc.context : {};
    var markers = [];
    (context.markers || []).forEach(function (marker) {
      try {
        markers.push({ field: marker.field, value: marker.value, sources: marker.sources,
          regex: compileMarker(marker) });
      } catch (error) { /* left out, as a rule whose pattern does not compile */ }
    });
    var returned = null;
    if (context.returned_message) {
      try { returned = compileMarker(context.returned_message); } catch (error) { returned = null; }
    }
    var prepared = { markers: markers, derived: context.derived || [], labels: context.source_labels || {}, returnedMessage: returned,
      logs: null };
    prepared.logs = prepareLogs(context);
    return prepared;
  }

  /** A marker is the package's own code (not a pull request's rule), written for Python's `re`
   * and exported in RegExp spelling (look-behind included; jsregex spells Python's Unicode \w, \d,
   * \s, \b, `.` and `$` for the `u` flag), so it runs on RegExp, not RE2JS. Python's IGNORECASE
   * folds case like the `u` flag. */
  function compileMarker(marker) {
    return new RegExp(marker.pattern, marker.flags + "u");
  }

  /** The matched text widened to whole words, printable only (as context._snippet). */
  function snippet(text, found) {
    var chars = Array.from(text);
    var start = Array.from(text.slice(0, found.index)).length;
    var end = start + Array.from(found[0]).length;
    var limit = Math.max(0, start - 40);
    while (start > limit && !SPACE_CHAR.test(chars[start - 1]) && "[(<'\"".indexOf(chars[start - 1]) < 0) start -= 1;
    limit = Math.min(chars.length, end + 60);
    while (end < limit && !SPACE_CHAR.test(chars[end]) && "])>'\",;".indexOf(chars[end]) < 0) end += 1;
    var words = pyWords(chars.slice(start, end).join("")).join(" ");
    return Array.from(words).slice(0, MAX_EVIDENCE_CHARS).map(function (ch) {
      return ch === " " || !NOT_PRINTABLE.test(ch) ? ch : "?";
    }).join("");
  }

  /** Context facts the text shows that `facts` does not hold, as context.infer: [{field, value,
   * evidence, source}]. */
  function inferContext(context, facts, evidence) {
    var inferred = [];
    var known = {};
    Object.keys(facts).forEach(function (k) { known[k] = true; });
    context.markers.forEach(function (marker) {
      if (known[marker.field]) return;
      for (var i = 0; i < marker.sources.length; i++) {
        var text = evidence[marker.sources[i]];
        if (!text) continue;
        marker.regex.lastIndex = 0;
        var capped = pySlice(text, MAX_SOURCE_CHARS);
        var found = marker.regex.exec(capped);
        if (found) {
          known[marker.field] = true;
          inferred.push({ field: marker.field, value: marker.value, evidence: snippet(capped, found), source: marker.sources[i] });
          return;
        }
      }
    });
    var values = {};
    inferred.forEach(function (f) { values[f.field] = f.value; });
    Object.keys(facts).forEach(function (k) { values[k] = facts[k]; });
    context.derived.forEach(function (rule) {
      if (rule.field in values) return;
      var cause = values[rule.when_field];
      if (rule.when_values.indexOf(cause) >= 0 && values["context.system"] !== cause) {
        values[rule.field] = rule.value;
        inferred.push({ field: rule.field, value: rule.value, evidence: rule.when_field + "=" + cause, source: "fact" });
      }
    });
    return inferred;
  }

  /** parseReply, then the context its words show (as reply.read_reply); `known` facts win. */
  function readReply(context, text, known) {
    var facts = parseReply(text, context);
    if (Object.keys(facts).length === 0) return { facts: facts, inferred: [] };
    var merged = {};
    Object.keys(facts).forEach(function (k) { merged[k] = facts[k]; });
    Object.keys(known || {}).forEach(function (k) { merged[k] = known[k]; });
    var evidence = { text: replyLine(text, context) };
    if (typeof merged["smtp.remote_host"] === "string") evidence["remote-host"] = merged["smtp.remote_host"];
    var inferred = inferContext(context, merged, evidence);
    inferred.forEach(function (f) { facts[f.field] = f.value; });
    return { facts: facts, inferred: inferred };
  }

  // --- mirror of intake/__init__.py's detect_kind and intake/logs.py ---------------------------
  // The patterns and tables come from Python (rules.json's context.detection and context.logs,
  // written by intake.export_detection and intake.logs.export_log_reading), never a copy; these
  // functions port the steps between them. A pasted text is read as parse_input reads it: log
  // lines when detect_kind says "log" (and, when no line was a failure line, a reply if it holds an
  // error code), else a reply, and log lines again when the reply shows nothing (Exim's
  // "** addr: ..." pasted without its timestamp). The page shows the first record.
  var MAX_FALLBACK_LOG_LINES = 1000; // parse_input reads this many lines of a codeless reply as a log
  var LINE_BREAKS = /\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]/; // str.splitlines()
  var ASCII_SPACES = " \t\n\r\x0b\x0c"; // bytes.strip()
  var DECIMAL = rx("^[" + D + "]+$");
  var PY_STRIP = rx("^[" + S + "]+|[" + S + "]+$", "g");

  function pyStrip(text) { return text.replace(PY_STRIP, ""); }
  function pyInt(text) { return text[0] === "-" ? -toInt(text.slice(1)) : toInt(text); }
  function hasOwn(map, key) { return Object.prototype.hasOwnProperty.call(map, key); }
  function startsWithAny(text, prefixes) { return prefixes.some(function (p) { return text.slice(0, p.length) === p; }); }
  function splitLines(text) {
    var lines = text.split(LINE_BREAKS);
    if (lines.length && lines[lines.length - 1] === "") lines.pop();
    return lines;
  }

  /** The exported detection and log tables, compiled; null when rules.json has none (or a
   * pattern does not compile: the page then reads every paste as a reply, as it used to). */
  function prepareLogs(context) {
    var detection = context.detection;
    var logs = context.logs;
    if (!detection || !logs) return null;
    try {
      var p = logs.patterns;
      var compile = function (spec, extra) { return new RegExp(spec.pattern, spec.flags + "u" + (extra || "")); };
      return {
        logLine: new RegExp(detection.log_line.pattern, detection.log_line.flags),  // bytes patterns: no `u`
        bareLogLine: new RegExp(detection.bare_log_line.pattern, detection.bare_log_line.flags),
        hints: detection.hints, headBytes: detection.head_bytes,
        maxLineChars: logs.max_line_chars,
        key: compile(p.key, "g"), statusCode: compile(p.status_code), relay: compile(p.relay),
        eximLine: compile(p.exim_line), eximHost: compile(p.exim_host), eximErrno: compile(p.exim_errno),
        postfixAttempt: compile(p.postfix_attempt), postfixTag: compile(p.postfix_tag), sendmailTag: compile(p.sendmail_tag),
        errnoTcp: logs.errno_tcp, statusAction: logs.postfix_status_action, postfixDelivered: logs.postfix_delivered,
        sendmailDelivered: logs.sendmail_delivered, attemptWords: logs.postfix_attempt_words,
        attemptWarnings: logs.postfix_attempt_warnings, attemptFacts: logs.postfix_attempt_facts
      };
    } catch (error) {
      return null;
    }
  }

  /** detect_kind's "log" verdict, on the text's UTF-8 bytes as detect_kind reads them. */
  function looksLikeLog(L, text) {
    var bytes = new TextEncoder().encode(text.slice(0, L.headBytes));
    var head = "";
    for (var i = 0; i < bytes.length && i < L.headBytes; i++) head += String.fromCharCode(bytes[i]);
    if (head.slice(0, 3) === "\xef\xbb\xbf") head = head.slice(3);  // a byte-order mark is not text
    head = lstripChars(head, "\r\n\t ");
    var lines = head.replace(/\r/g, "\n").split("\n").slice(0, 12).filter(function (line) {
      return stripChars(line, ASCII_SPACES).length > 0;
    });
    if (!lines.length) return false;
    var first = lines.slice(0, 5);
    var logLines = first.filter(function (line) { return L.logLine.test(line) || L.bareLogLine.test(line); }).length;
    if (logLines && logLines >= Math.min(2, first.length)) return true;
    return logLines > 0 && L.hints.some(function (hint) { return has(head, hint); });
  }

  /** logs._field: the value between `start` and `end` ("" when absent). */
  function logField(text, start, end) {
    var at = text.indexOf(start);
    if (at < 0) return "";
    at += start.length;
    var stop = text.indexOf(end, at);
    return stop < 0 ? text.slice(at) : text.slice(at, stop);
  }

  function afterParen(line, start) {
    var openAt = line.indexOf("(", start);
    if (openAt < 0) return "";
    var closeAt = line.lastIndexOf(")");
    return line.slice(openAt + 1, closeAt > openAt ? closeAt : line.length);
  }

  /** logs._kv_fields: Sendmail's `key=value, key=<a,b>, ...`, in time linear in the text. */
  function kvFields(L, text) {
    var fields = new Map();
    var position = 0;
    var noClosingAfter = text.length + 1;
    for (;;) {
      L.key.lastIndex = position;
      var found = L.key.exec(text);
      if (found === null) return fields;
      var start = found.index + found[0].length;
      var end = -1;
      if (text.charAt(start) === "<" && start < noClosingAfter) {
        var close = text.indexOf(">", start);
        if (close < 0) noClosingAfter = start;
        else end = close + 1;
      }
      if (end < 0) {
        var comma = text.indexOf(",", start);
        end = comma < 0 ? text.length : comma;
      }
      fields.set(found[1], text.slice(start, end));
      position = end;
    }
  }

  function relayFacts(L, relay, facts) {
    relay = pyStrip(relay);
    if (!relay || relay === "none" || relay === "local" || has(relay, "/")) return;
    var found = L.relay.exec(relay);
    if (!found) return;
    var host = found.groups.host;
    if (DECIMAL.test(host.replace(/\./g, ""))) setDefault(facts, "smtp.remote_ip", host);
    else setDefault(facts, "smtp.remote_host", rstripChars(host, "."));
    if (found.groups.ip) setDefault(facts, "smtp.remote_ip", found.groups.ip);
    if (found.groups.port) {
      var port = toInt(found.groups.port);
      if (port > 0 && port < 65536) setDefault(facts, "smtp.remote_port", port);
    }
  }

  function recipientDomain(recipient) {
    if (!recipient || !has(recipient, "@")) return null;
    var domain = stripChars(recipient.slice(recipient.lastIndexOf("@") + 1), "<> ").toLowerCase();
    return rstripChars(domain, ".") || null;
  }

  /** logs._record: the error text's facts, then what the line's fields say, then the context
   * (the log tag, whatever names the program that wrote the line, is the evidence). */
  function logRecord(context, facts, text, recipient, action, tag, status) {
    var L = context.logs;
    if (text) {
      var read = parseReply(text, context);
      Object.keys(read).forEach(function (k) { setDefault(facts, k, read[k]); });
      if (!("smtp.text" in facts)) facts["smtp.text"] = cleanText(text, null);
    }
    if (status && L.statusCode.test(status)) {
      var said = facts["smtp.enhanced"];
      if (typeof said !== "string" || (/\.0\.0$/.test(said) && !/\.0\.0$/.test(status))) facts["smtp.enhanced"] = status;
    }
    facts["input.kind"] = "log";
    facts["report.action"] = action;
    var domain = recipientDomain(recipient);
    if (domain) facts["context.recipient_domain"] = domain;
    var evidence = { "log-tag": tag, text: text };
    if (typeof facts["smtp.remote_host"] === "string") evidence["remote-host"] = facts["smtp.remote_host"];
    var inferred = inferContext(context, facts, evidence);
    inferred.forEach(function (f) { facts[f.field] = f.value; });
    return { facts: facts, inferred: inferred, kind: "log" };
  }

  function postfixLine(context, line) {
    var L = context.logs;
    var at = line.indexOf(" status=");
    var statusWord = rstripChars(line.slice(at + 8).split(" ")[0], ",");
    if (!hasOwn(L.statusAction, statusWord)) return null;
    var head = line.slice(0, at);
    var facts = {};
    relayFacts(L, logField(head, " relay=", ","), facts);
    var text = afterParen(line, at);
    if (statusWord === "expired") facts["outer.expired"] = true;
    var tag = L.postfixTag.exec(head);
    return logRecord(context, facts, text, logField(head, " to=<", ">") || null, L.statusAction[statusWord],
      tag ? tag[0] : "status=" + statusWord, logField(head, " dsn=", ",") || null);
  }

  function sendmailLine(context, line) {
    var L = context.logs;
    var at = line.indexOf(" stat=");
    var text = pyStrip(line.slice(at + 6));
    var lower = text.toLowerCase();
    if (startsWithAny(lower, L.sendmailDelivered)) return null;
    var fields = kvFields(L, line.slice(0, at));
    var dsn = fields.get("dsn") || "";
    if (dsn.charAt(0) === "2") return null;
    var action = lower.slice(0, 8) === "deferred" || dsn.charAt(0) === "4" ? "delayed" : "failed";
    var recipient = stripChars((fields.get("to") || "").split(",")[0], "<>") || null;
    var facts = {};
    relayFacts(L, fields.get("relay") || "", facts);
    if (lower.slice(0, 9) === "deferred:") text = pyStrip(text.slice(9));
    var tag = L.sendmailTag.exec(line.slice(0, at));
    return logRecord(context, facts, text, recipient, action, tag ? tag[0] : "stat=", dsn || null);
  }

  function eximLine(context, line) {
    var L = context.logs;
    var found = L.eximLine.exec(line);
    if (!found) return null;
    var g = found.groups;
    var action = g.flag === "**" ? "failed" : "delayed";
    var recipient = rstripChars(g.rcpt, ":");
    if (g.id === undefined && !has(recipient, "@")) return null; // without the id, only an address makes it Exim's
    var text = g.text;
    var rest = g.rest || "";
    var facts = {};
    var host = L.eximHost.exec(line);
    if (host) {
      facts["smtp.remote_host"] = rstripChars(host.groups.host, ".");
      if (host.groups.ip) facts["smtp.remote_ip"] = host.groups.ip;
    }
    var errno = L.eximErrno.exec(line);
    if (errno && hasOwn(L.errnoTcp, String(pyInt(errno[1])))) {
      facts["tcp.state"] = L.errnoTcp[String(pyInt(errno[1]))];
      facts["smtp.stage"] = "connect";
    }
    if (!text && rest) text = rest;
    var tag;
    if (g.id !== undefined) tag = g.id + " " + g.flag;
    else {
      var router = rstripChars(pyWords(rest)[0] || "", ":");
      tag = router.slice(0, 2) === "R=" || router.slice(0, 2) === "T=" ? g.flag + " " + router : g.flag;
    }
    return logRecord(context, facts, text, recipient, action, tag, null);
  }

  function postfixAttempt(context, line) {
    var L = context.logs;
    var found = L.postfixAttempt.exec(line);
    if (!found) return null;
    var text = found.groups.text;
    if (startsWithAny(text, L.attemptWarnings) && text.slice(0, 9) === "warning: ") text = text.slice(9);
    var tag = L.postfixTag.exec(line);
    var record = logRecord(context, {}, text, null, "delayed", tag ? tag[0] : "postfix", null);
    return L.attemptFacts.some(function (k) { return k in record.facts; }) ? record : null;
  }

  /** logs.parse_log_line: a record for a delivery-failure line, null for any other line. */
  function parseLogLine(context, line) {
    var L = context.logs;
    if (line.length > L.maxLineChars) line = pySlice(line, L.maxLineChars);
    if (has(line, " status=")) {
      if (L.postfixDelivered.some(function (w) { return has(line, w); })) return null;
      return postfixLine(context, line);
    }
    if (has(line, " stat=")) return sendmailLine(context, line);
    if (has(line, " ** ") || has(line, " == ") || startsWithAny(line, ["** ", "== "])) return eximLine(context, line);
    if (has(line, "postfix/") && L.attemptWords.some(function (w) { return has(line, w); })) return postfixAttempt(context, line);
    return null;
  }

  /** logs.parse_log_lines: a record per delivery-failure line, in order. */
  function logRecords(context, lines) {
    var records = [];
    for (var i = 0; i < lines.length; i++) {
      var record = parseLogLine(context, lines[i]);
      if (record !== null) records.push(record);
    }
    return records;
  }

  /** intake.failure_code: a 4xx/5xx reply code or a 4.x.x/5.x.x status code. */
  function failureCode(facts) {
    var code = facts["smtp.reply_code"];
    var enhanced = facts["smtp.enhanced"];
    return (typeof code === "number" && code >= 400 && code < 600) || (typeof enhanced === "string" && (enhanced[0] === "4" || enhanced[0] === "5"));
  }

  /** A pasted text as parse_input reads it: every record, [{facts, inferred, kind}] (none when
   * nothing was recognised). `known` are the reader's facts: the text is read without them, then
   * the inferred facts the reader stated are dropped, as triage.diagnose_record does (so
   * `diagnose TEXT --fact ...` agrees). */
  function readPasteRecords(context, text, known) {
    known = known || {};
    var records = [];
    var log = context.logs !== null && looksLikeLog(context.logs, text);
    if (log) records = logRecords(context, splitLines(text));
    if (!records.length) { // not a log, or timestamped lines no log reader knows: read as a reply
      var read = readReply(context, text, {});
      if (log && !failureCode(read.facts)) return [];
      if (Object.keys(read.facts).length) {
        setDefault(read.facts, "input.kind", "reply");
        records = [{ facts: read.facts, inferred: read.inferred, kind: "reply" }];
      } else if (context.logs) records = logRecords(context, splitLines(text).slice(0, MAX_FALLBACK_LOG_LINES));
    }
    records.forEach(function (record) {
      record.inferred = record.inferred.filter(function (f) { return !hasOwn(known, f.field); });
    });
    return records;
  }

  /** The first record of a pasted text ({facts: {}, inferred: [], kind: null} when none). */
  function readPaste(context, text, known) {
    var records = readPasteRecords(context, text, known);
    return records.length ? records[0] : { facts: {}, inferred: [], kind: null };
  }

  /** Normalise like mailtriage.facts.normalize_facts for the fields a paste can produce, and add
   * the derived enhanced-code fields. Values the engine would refuse are dropped (and listed). */
  var ENHANCED_PARTS = /^([245])\.([0-9]{1,3})\.([0-9]{1,3})$/;

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

  // Rule patterns come from pull requests: they run on RE2JS (a port of RE2, vendored as
  // re2js.js and loaded before this file), in time linear in the text whatever the pattern,
  // where the browser's backtracking RegExp can hang the page on `(a|a)*b`. The engine runs the
  // same patterns on RE2, so both sides read one dialect.
  var RE2 = root.RE2JS && root.RE2JS.RE2JS;
  if (!RE2 && typeof require === "function") RE2 = require("./re2js.js").RE2JS;

  function compilePattern(leaf) {
    if (!RE2) throw new Error("the RE2JS engine (re2js.js) is not loaded");
    return RE2.compile(leaf.matches, RE2.CASE_INSENSITIVE);
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
    return { rules: ready, broken: broken, context: prepareContext(doc) };
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
    if ("matches" in leaf) return typeof value === "string" && leaf.regex.test(value);  // RE2JS: linear time
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

  // A paste of many log lines: the records grouped by the rule that explains each (the cards
  // explain the first); past this many, the rest are counted but not matched.
  var MAX_GROUPED_RECORDS = 500;

  function recordMatches(prepared, facts, extra) {
    var raw = {};
    Object.keys(facts).forEach(function (k) { raw[k] = facts[k]; });
    Object.keys(extra || {}).forEach(function (k) { raw[k] = extra[k]; });
    var normal = normalizeFacts(raw);
    return { facts: normal.facts, dropped: normal.dropped, matches: matchRules(prepared, normal.facts) };
  }

  /** [{rule (the best match, or null), count, text (the first such record's error text)}], in
   * the order the rules first appear; empty for a paste of one record. `firstMatches`: the first
   * record's, already found for the cards. */
  function groupRecords(prepared, records, extra, firstMatches) {
    if (records.length < 2) return [];
    var groups = [];
    var byRule = {};
    records.slice(0, MAX_GROUPED_RECORDS).forEach(function (record, index) {
      var matches = index === 0 ? firstMatches : recordMatches(prepared, record.facts, extra).matches;
      var rule = matches.length ? matches[0] : null;
      var key = rule ? "r:" + rule.id : "none";
      if (!hasOwn(byRule, key)) {
        var said = record.facts["smtp.text"];
        byRule[key] = { rule: rule, count: 0, text: typeof said === "string" ? said : "" };
        groups.push(byRule[key]);
      }
      byRule[key].count += 1;
    });
    return groups;
  }

  /** Everything at once: text (+ extra facts) to facts and matching rules of the first record, and
   * for a many-line paste every record grouped by the rule that explains it (`records`, `groups`). */
  function diagnose(prepared, text, extra) {
    var records = readPasteRecords(prepared.context, text, extra);
    var read = records.length ? records[0] : { facts: {}, inferred: [], kind: null };
    var first = recordMatches(prepared, read.facts, extra);
    return { facts: first.facts, dropped: first.dropped, matches: first.matches,
      inferred: read.inferred, kind: read.kind, records: records.length, groups: groupRecords(prepared, records, extra, first.matches),
      groupedAtMost: MAX_GROUPED_RECORDS };
  }

  // ------------------------------------------------------------------------------------------
  // The page

  var WORDS = {
    en: {
      read: "What we read from your text",
      read_hint: "the facts the rules were matched on",
      none_read: "No SMTP reply code or enhanced status code found. Paste the line with the code, e.g. 450 4.4.316 Connection refused.",
      matches: "What it means",
      no_match_before: "No rule matches these facts. Try choosing who reported the error, or look the code up in the ",
      codes_table: "codes table",
      no_match_after: ".",
      specific: "specific",
      generic: "generic",
      levels: { detail: "detail", subject: "subject", "class": "class" },
      first_fix: "Try first: ",
      more: "All causes, fixes and how to confirm",
      dropped: "Ignored (out of range): ",
      inferred: "Inferred from your text",
      from_word: "from",
      hint: "Paste an SMTP reply, a queue error, a line of your mail server's log or the diagnostic lines of a bounce (NDR): the lines with the status code are enough. For example: ",
      capped: "Your text has {chars} characters: only the first {limit} were read. Paste the part with the error code if it comes later.",
      cut: "Read up to where the bounce quotes the original message; its headers are not part of the error and were left out.",
      status_one: "1 match: {title}",
      status_many: "{count} matches; best: {title}",
      status_none: "No rule matches.",
      status_no_code: "No error code found.",
      matches_first: "What the first failure line means",
      records_title: "All {count} failure lines in your text",
      records_hint: "Each line counted under the rule that explains it best; the cards below explain the first line.",
      records_capped: "Only the first {limit} lines were matched here; run mailtriage scan on the log for all of them.",
      no_rule: "no rule",
      loading_failed: "The rule list did not load, so nothing can be matched. Rebuild the site or reload the page."
    },
    "pt-BR": {
      read: "O que lemos no seu texto",
      read_hint: "os fatos comparados com as regras",
      none_read: "Nenhum código de resposta SMTP ou código de status estendido encontrado. Cole a linha com o código, por exemplo 450 4.4.316 Connection refused.",
      matches: "O que significa",
      no_match_before: "Nenhuma regra corresponde a estes fatos. Tente escolher quem reportou o erro, ou procure o código na ",
      codes_table: "tabela de códigos",
      no_match_after: ".",
      specific: "específica",
      generic: "genérica",
      levels: { detail: "detalhe", subject: "assunto", "class": "classe" },
      first_fix: "Tente primeiro: ",
      more: "Todas as causas, correções e como confirmar",
      dropped: "Ignorado (fora do intervalo): ",
      inferred: "Inferido do seu texto",
      from_word: "de",
      hint: "Cole uma resposta SMTP, um erro de fila, uma linha do log do seu servidor de e-mail ou as linhas de diagnóstico de um NDR: as linhas com o código de status bastam. Por exemplo: ",
      capped: "Seu texto tem {chars} caracteres: só os primeiros {limit} foram lidos. Cole a parte com o código de erro se ela vier depois.",
      cut: "Lido até onde o NDR cita a mensagem original; os cabeçalhos dela não fazem parte do erro e foram deixados de fora.",
      status_one: "1 correspondência: {title}",
      status_many: "{count} correspondências; a melhor: {title}",
      status_none: "Nenhuma regra corresponde.",
      status_no_code: "Nenhum código de erro encontrado.",
      matches_first: "O que significa a primeira linha de falha",
      records_title: "As {count} linhas de falha do seu texto",
      records_hint: "Cada linha contada sob a regra que melhor a explica; os cartões abaixo explicam a primeira linha.",
      records_capped: "Só as primeiras {limit} linhas foram comparadas aqui; execute mailtriage scan no log para ver todas.",
      no_rule: "nenhuma regra",
      loading_failed: "A lista de regras não carregou, então nada pode ser comparado. Gere o site de novo ou recarregue a página."
    }
  };

  // The address bar keeps the pasted text (?q=) so a diagnosis can be shared, up to this length.
  var MAX_URL_TEXT_CHARS = 2000;
  var DEBOUNCE_MS = 400;

  function fill(template, values, lang) {
    return template.replace(/\{(\w+)\}/g, function (all, key) {
      var value = values[key];
      return typeof value === "number" ? value.toLocaleString(lang) : String(value);
    });
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** A rule string as the rule page shows it: `backtick spans` as code, the rest as text. */
  function richText(node, text) {
    String(text).split(/\s+/).join(" ").split(/`([^`]+)`/).forEach(function (part, index) {
      if (!part) return;
      node.appendChild(index % 2 ? el("code", null, part) : document.createTextNode(part));
    });
    return node;
  }

  function inLang(map, lang) { return map ? (map[lang] !== undefined ? map[lang] : map.en) : undefined; }

  function ruleTitle(rule, lang) { return inLang(rule.title, lang) || rule.id; }

  /** The short line screen readers announce (the results themselves are not a live region). */
  function statusLine(result, words, lang) {
    if (Object.keys(result.facts).length === 0) return words.status_no_code;
    if (result.matches.length === 0) return words.status_none;
    var template = result.matches.length === 1 ? words.status_one : words.status_many;
    return fill(template, { count: result.matches.length, title: ruleTitle(result.matches[0], lang) }, lang);
  }

  function resultCard(rule, words, lang, siteRoot) {
    var href = siteRoot + rule.url;
    var item = el("li", "mt-paste-result mt-kind-" + (rule.kind === "specific" ? "specific" : "generic"));
    var heading = el("h3", "mt-paste-title");
    var link = el("a", "mt-paste-link", ruleTitle(rule, lang));
    link.setAttribute("href", href);
    link.setAttribute("data-rule-id", rule.id);
    heading.appendChild(link);
    item.appendChild(heading);
    var meta = el("p", "mt-paste-meta");
    var kind = rule.kind === "specific" ? words.specific : words.generic + (rule.generic_level ? " · " + (words.levels[rule.generic_level] || rule.generic_level) : "");
    meta.appendChild(el("span", "mt-badge", kind));
    (rule.codes || []).slice(0, 3).forEach(function (code) { meta.appendChild(el("code", null, code)); });
    item.appendChild(meta);
    var summary = inLang(rule.summary, lang);
    if (summary) item.appendChild(richText(el("p", "mt-paste-summary"), summary));
    var fix = inLang(rule.fix, lang);
    if (fix) {
      var box = el("div", "mt-paste-fix");
      var title = el("p", "mt-paste-fix-title");
      title.appendChild(el("strong", null, words.first_fix));
      richText(title, fix.title);
      box.appendChild(title);
      var steps = el("ol", "mt-paste-steps");
      (fix.steps || []).forEach(function (step) { steps.appendChild(richText(el("li"), step)); });
      box.appendChild(steps);
      item.appendChild(box);
    }
    var more = el("a", "mt-paste-more", words.more + " →");
    more.setAttribute("href", href);
    var moreLine = el("p");
    moreLine.appendChild(more);
    item.appendChild(moreLine);
    return item;
  }

  /** The facts and inferred context, for whoever wants to see why: collapsed, after the answer. */
  function factsDetails(result, words, labels, lang) {
    var details = el("details", "mt-paste-details");
    var summary = el("summary", null, words.read + " (" + words.read_hint + ")");
    details.appendChild(summary);
    var list = el("ul", "mt-paste-facts");
    Object.keys(result.facts).forEach(function (name) {
      var item = el("li");
      item.appendChild(el("code", null, name));
      item.appendChild(document.createTextNode(" = "));
      item.appendChild(el("code", null, String(result.facts[name])));
      list.appendChild(item);
    });
    details.appendChild(list);
    if (result.dropped.length) details.appendChild(el("p", "mt-paste-dropped", words.dropped + result.dropped.join(", ")));
    if (result.inferred && result.inferred.length) {
      details.appendChild(el("h3", null, words.inferred));
      var inferredList = el("ul", "mt-paste-inferred");
      result.inferred.forEach(function (fact) {
        var item = el("li");
        item.setAttribute("data-field", fact.field);
        item.appendChild(el("code", null, fact.field + "=" + fact.value));
        var where = (labels && inLang(labels[fact.source], lang)) || fact.source;
        item.appendChild(document.createTextNode(" (" + words.from_word + " " + where + " "));
        item.appendChild(el("code", null, fact.evidence));
        item.appendChild(document.createTextNode(")"));
        inferredList.appendChild(item);
      });
      details.appendChild(inferredList);
    }
    return details;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  /** The answer first (result cards), then the facts it came from, folded away. */
  function render(container, result, limits, page) {
    var words = page.words;
    clear(container);
    if (limits.capped) container.appendChild(el("p", "mt-paste-note mt-paste-capped", fill(words.capped, limits, page.lang)));
    if (limits.cutAt >= 0) container.appendChild(el("p", "mt-paste-note mt-paste-cut", words.cut));
    if (Object.keys(result.facts).length === 0) {
      container.appendChild(el("p", "mt-paste-empty", words.none_read));
      return;
    }
    // A many-line paste: every line counted first, then the cards for the first line.
    if (result.groups && result.groups.length) container.appendChild(recordGroups(result, words, page));
    container.appendChild(el("h2", null, result.records > 1 ? words.matches_first : words.matches));
    if (result.matches.length === 0) {
      var none = el("p", "mt-paste-empty mt-paste-no-match", words.no_match_before);
      var codes = el("a", null, words.codes_table);
      codes.setAttribute("href", page.siteRoot + page.codesPage);
      none.appendChild(codes);
      none.appendChild(document.createTextNode(words.no_match_after));
      container.appendChild(none);
    } else {
      var ol = el("ol", "mt-paste-results");
      result.matches.forEach(function (rule) { ol.appendChild(resultCard(rule, words, page.lang, page.siteRoot)); });
      container.appendChild(ol);
    }
    container.appendChild(factsDetails(result, words, page.labels, page.lang));
  }

  // The error text quoted beside a group, cut at this many characters.
  var MAX_GROUP_TEXT_CHARS = 160;

  /** Every failure line of a many-line paste, counted under the rule that explains it best. */
  function recordGroups(result, words, page) {
    var section = el("section", "mt-paste-records");
    section.appendChild(el("h2", null, fill(words.records_title, { count: result.records }, page.lang)));
    section.appendChild(el("p", "mt-paste-note", words.records_hint));
    if (result.records > result.groupedAtMost) {
      section.appendChild(el("p", "mt-paste-note mt-paste-records-capped", fill(words.records_capped, { limit: result.groupedAtMost }, page.lang)));
    }
    var list = el("ul", "mt-paste-record-groups");
    result.groups.forEach(function (group) {
      var item = el("li");
      item.setAttribute("data-count", String(group.count));
      item.appendChild(el("strong", "mt-paste-count", group.count.toLocaleString(page.lang) + " \u00d7 "));
      if (group.rule) {
        var link = el("a", "mt-paste-link", ruleTitle(group.rule, page.lang));
        link.setAttribute("href", page.siteRoot + group.rule.url);
        link.setAttribute("data-rule-id", group.rule.id);
        item.appendChild(link);
      } else {
        item.appendChild(el("em", null, words.no_rule));
      }
      if (group.text) {
        var said = Array.from(group.text);
        item.appendChild(document.createTextNode(" \u2014 "));
        item.appendChild(el("code", null, said.length > MAX_GROUP_TEXT_CHARS ? said.slice(0, MAX_GROUP_TEXT_CHARS - 1).join("") + "\u2026" : group.text));
      }
      list.appendChild(item);
    });
    section.appendChild(list);
    return section;
  }

  /** What to paste, with an example that fills the box. */
  function renderHint(container, page, useExample) {
    clear(container);
    var hint = el("p", "mt-paste-hint", page.words.hint);
    var example = el("a", "mt-paste-example", page.example);
    example.setAttribute("href", "?q=" + encodeURIComponent(page.example));
    example.addEventListener("click", function (event) {
      event.preventDefault();
      useExample(page.example);
    });
    hint.appendChild(example);
    container.appendChild(hint);
  }

  /** Keep (or drop) ?q= and ?system= in the address bar without a new history entry. */
  function shareInUrl(text, systemValue) {
    if (!root.history || !root.history.replaceState || !root.location) return;
    try {
      var url = new URL(root.location.href);
      if (text.trim() && text.length <= MAX_URL_TEXT_CHARS) url.searchParams.set("q", text);
      else url.searchParams.delete("q");
      if (systemValue && url.searchParams.has("q")) url.searchParams.set("system", systemValue);
      else url.searchParams.delete("system");
      if (url.href !== root.location.href) root.history.replaceState(root.history.state, "", url.href);
    } catch (error) { /* file:// pages may refuse; the page works the same without it */ }
  }

  /** The theme's search also reads ?q= (its shared searches) and opens over the page with the
   * pasted error in it. This script runs before the theme's (it comes first in the page): take the
   * paste's ?q= and ?system= out of the address now; start() reads them from here and run() puts
   * them back once the theme has looked. */
  var sharedQuery = null;
  function takeSharedQuery() {
    if (!root.location || !root.history || !root.history.replaceState || !document.getElementById("mt-paste")) return;
    try {
      var url = new URL(root.location.href);
      if (!url.searchParams.has("q")) return;
      sharedQuery = new URLSearchParams(url.search);
      url.searchParams.delete("q");
      url.searchParams.delete("system");
      root.history.replaceState(root.history.state, "", url.href);
    } catch (error) { sharedQuery = null; /* file:// pages may refuse: the theme then opens its search too */ }
  }

  function start() {
    var form = document.getElementById("mt-paste");
    if (!form) return;
    var lang = form.getAttribute("data-lang") || "en";
    var input = document.getElementById("mt-paste-input");
    var system = document.getElementById("mt-paste-system");
    var output = document.getElementById("mt-paste-output");
    var status = document.getElementById("mt-paste-status");
    var page = {
      lang: lang,
      words: WORDS[lang] || WORDS.en,
      siteRoot: form.getAttribute("data-site-root") || "",
      codesPage: form.getAttribute("data-codes-page") || "",
      example: form.getAttribute("data-example") || "450 4.4.316 Connection refused",
      labels: {}
    };
    if (!root.MAILTRIAGE_RULES) {
      output.appendChild(el("p", "mt-paste-empty", page.words.loading_failed));
      return;
    }
    var prepared = prepareRules(root.MAILTRIAGE_RULES);
    page.labels = prepared.context.labels;
    if (prepared.broken.length && root.console) root.console.warn("mailtriage: rules left out", prepared.broken);
    var shown = null; // the (system, text) on screen: the same input is not drawn (nor announced) twice
    var timer = null;
    function say(text) { if (status && status.textContent !== text) status.textContent = text; }
    function useExample(text) {
      input.value = text;
      run();
      input.focus();
    }
    function run() {
      if (timer) { clearTimeout(timer); timer = null; }
      var text = input.value;
      var systemValue = system ? system.value : "";
      var key = systemValue + "\u0000" + text;
      if (key === shown) return;
      shown = key;
      shareInUrl(text, systemValue);
      if (!text.trim()) {
        renderHint(output, page, useExample);
        say("");
        return;
      }
      var extra = {};
      if (systemValue) extra["context.system"] = systemValue;
      var result = diagnose(prepared, text, extra);
      render(output, result, readLimits(prepared.context, text), page);
      say(statusLine(result, page.words, lang));
    }
    input.addEventListener("input", function () {
      if (timer) clearTimeout(timer);
      timer = setTimeout(run, DEBOUNCE_MS);
    });
    if (system) system.addEventListener("change", run);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      run();
    });
    var params = sharedQuery || new URLSearchParams(root.location ? root.location.search : "");
    var query = params.get("q");
    var chosen = params.get("system");
    if (system && chosen && Array.prototype.some.call(system.options, function (o) { return o.value === chosen; })) system.value = chosen;
    if (query) input.value = query;
    run();
  }

  var api = {
    parseReply: parseReply,
    readReply: readReply,
    readPaste: readPaste,
    readPasteRecords: readPasteRecords,
    readLimits: readLimits,
    prepareContext: prepareContext,
    inferContext: inferContext,
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
      takeSharedQuery();
      if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
      else start();
    }
  }
})(typeof window !== "undefined" ? window : globalThis);
