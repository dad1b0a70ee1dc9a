// Runs the paste page's matcher (the same paste.js the site serves) under Node for the tests.
// stdin: {"script": path of paste.js, "rules": path of rules.json or null, "context": the context
//         markers when there is no rules.json, "cases": [{"text": "...", "extra": {...}}], "parse_only": bool}
// stdout: {"broken": [...], "results": [{"facts": {...}, "matches": ["rule-id", ...], "inferred": [...]}]}
//         (parse_only: "facts" is parseReply's, "read" is readReply's {facts, inferred}, "paste"
//         readPaste's {facts, inferred, kind}: the text read as parse_input reads it, first record;
//         "records": readPasteRecords', every record); otherwise also "records" (how many) and
//         "groups": [[best rule id or null, count], ...]
"use strict";
const fs = require("fs");
const input = JSON.parse(fs.readFileSync(0, "utf8"));
const paste = require(input.script);
const doc = input.rules ? JSON.parse(fs.readFileSync(input.rules, "utf8")) : { rules: [], context: input.context };
const prepared = paste.prepareRules(doc);
const results = input.cases.map((c) => {
  if (input.parse_only) {
    return { facts: paste.parseReply(c.text, prepared.context), read: paste.readReply(prepared.context, c.text, c.extra || {}),
      paste: paste.readPaste(prepared.context, c.text, c.extra || {}),
      records: paste.readPasteRecords(prepared.context, c.text, c.extra || {}) };
  }
  const result = paste.diagnose(prepared, c.text, c.extra || {});
  return { facts: result.facts, matches: result.matches.map((r) => r.id), inferred: result.inferred, kind: result.kind,
    records: result.records, groups: result.groups.map((g) => [g.rule ? g.rule.id : null, g.count]) };
});
process.stdout.write(JSON.stringify({ broken: prepared.broken, results: results }));
