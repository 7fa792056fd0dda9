"""Text for a terminal: ids and strings from input files shown, never obeyed.

An id may hold ESC sequences (cursor moves that overwrite lines a reader trusts, OSC sequences
that set titles or links), C1 controls (0x9b is CSI on some terminals), newlines that forge plan
lines, or bidirectional overrides that reorder what is shown (Trojan Source). `printable` escapes
them all as Python-style `\\x1b` / `\\u202e`; everything else, other scripts and emoji included,
passes unchanged.
"""
from __future__ import annotations

_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x20), 0x7f, *range(0x80, 0xa0))}
_ESCAPES.update({c: f"\\u{c:04x}" for c in (0x061c, 0x200e, 0x200f, 0x2028, 0x2029, *range(0x202a, 0x202f),
                                           *range(0x2066, 0x206a), 0xfeff)})
_ESCAPES[ord("\\")] = "\\\\"   # so an escaped form in the input cannot pass for an escape of ours
_KEEP_NEWLINES = {k: v for k, v in _ESCAPES.items() if k != ord("\n")}


def printable(value) -> str:
    """`value` as text with every control and bidi character escaped (newlines too)."""
    return str(value).translate(_ESCAPES)


def printable_lines(text: str) -> str:
    """Multi-line text of ours with controls inside it escaped, its line breaks kept."""
    return str(text).translate(_KEEP_NEWLINES)
