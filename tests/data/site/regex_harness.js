// Runs exported patterns on texts under Node, for tests/test_jsregex.py.
// stdin: {"patterns": [[source, flags, bytes]], "texts": ["..."]}; a bytes pattern runs on the
//        text's UTF-8 bytes, one character each (as paste.js runs detect_kind's patterns).
// stdout: {"results": [[null | [start, end, [group, ...]] per text] per pattern], "errors": [...]}
"use strict";
const fs = require("fs");
const input = JSON.parse(fs.readFileSync(0, "utf8"));
const asBytes = (text) => Array.from(new TextEncoder().encode(text), (b) => String.fromCharCode(b)).join("");
const errors = [];
const results = input.patterns.map(([source, flags, bytes]) => {
  let regex;
  try {
    regex = new RegExp(source, flags + (bytes ? "" : "u"));
  } catch (error) {
    errors.push(source + ": " + String(error));
    return null;
  }
  return input.texts.map((text) => {
    const found = regex.exec(bytes ? asBytes(text) : text);
    if (!found) return null;
    return [found.index, found.index + found[0].length, found.slice(1).map((g) => (g === undefined ? null : g))];
  });
});
process.stdout.write(JSON.stringify({ results, errors }));
