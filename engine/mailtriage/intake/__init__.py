"""Symptom intake: turn what users hold (replies, NDRs, log lines) into facts."""
