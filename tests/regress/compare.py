"""Per-statement comparison of pg_regress result files (psql -a output), the allowlist,
and the difference report. Pure: no servers, no processes; run_regress.py feeds it files.

psql -a echoes every input line it reads before running what it completes, so an output
file is a sequence of blocks: echoed input lines, then what the statement printed. The
.sql file tells which lines are echoes. COPY ... FROM stdin data is read but not echoed,
so matching resynchronises by looking ahead in the input.

The unit that is counted is a *statement block* of the direct run's output: its echoed
lines (comments, the statement, psql meta-commands) and the output that follows them. A
proxy run's output is aligned with the direct one line by line (difflib); a block differs
when any changed line falls inside it.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from pathlib import Path
from typing import Iterable, Optional

LOOKAHEAD_LINES = 400  # longest run of COPY data lines between two echoed lines
MODES = ("transaction", "session")


@dataclasses.dataclass
class Block:
    start: int          # first output line (0-based) of the statement
    end: int            # one past its last output line
    echo: list[str]     # its echoed input lines

    @property
    def statement(self) -> str:
        """The echoed text without comment-only and blank lines (what matchers see)."""
        lines = [ln for ln in self.echo if ln.strip() and not ln.lstrip().startswith("--")]
        return "\n".join(lines) if lines else "\n".join(self.echo).strip()


def echo_flags(out_lines: list[str], sql_lines: list[str]) -> list[bool]:
    """For each output line: is it an echoed input line? (psql skips empty input lines
    outside quotes, so they are not expected.)"""
    sql_lines = [ln for ln in sql_lines if ln != ""]
    flags = []
    ptr = 0
    for line in out_lines:
        is_echo = False
        if ptr < len(sql_lines) and line == sql_lines[ptr]:
            is_echo = True
            ptr += 1
        elif len(line.strip()) > 2:
            window = sql_lines[ptr + 1:ptr + 1 + LOOKAHEAD_LINES]
            if line in window:
                ptr = ptr + 1 + window.index(line) + 1
                is_echo = True
        flags.append(is_echo)
    return flags


class _StatementEnds:
    """psql's notion of where a statement ends, fed one echoed line at a time: a
    semicolon outside quotes, comments and parentheses, or a backslash command."""

    def __init__(self) -> None:
        self.quote = ""        # "'", '"', or a dollar tag like "$x$"
        self.escape_string = False
        self.comment_depth = 0
        self.parens = 0
        self.has_text = False

    def line_ends_statement(self, line: str) -> bool:
        i, n, ended = 0, len(line), False
        while i < n:
            c = line[i]
            if self.comment_depth:
                if line.startswith("*/", i):
                    self.comment_depth -= 1
                    i += 2
                    continue
                if line.startswith("/*", i):
                    self.comment_depth += 1
                    i += 2
                    continue
                i += 1
                continue
            if self.quote:
                if self.quote in ("'", '"'):
                    if c == "\\" and self.escape_string:
                        i += 2
                        continue
                    if c == self.quote:
                        if line.startswith(self.quote * 2, i):
                            i += 2
                            continue
                        self.quote = ""
                elif line.startswith(self.quote, i):
                    i += len(self.quote)
                    self.quote = ""
                    continue
                i += 1
                continue
            if line.startswith("--", i):
                break
            if line.startswith("/*", i):
                self.comment_depth = 1
                i += 2
                continue
            if c in "'\"":
                self.escape_string = c == "'" and i > 0 and line[i - 1] in "eE"
                self.quote = c
                self.has_text = True
            elif c == "$":
                m = re.match(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$", line[i:])
                if m and not (i > 0 and (line[i - 1].isalnum() or line[i - 1] == "_")):
                    self.quote = m.group(0)
                    i += len(m.group(0))
                    self.has_text = True
                    continue
            elif c == "(":
                self.parens += 1
            elif c == ")":
                self.parens = max(self.parens - 1, 0)
            elif c == ";" and self.parens == 0:
                ended = True
                self.has_text = False
            elif c == "\\":
                # A meta-command: the rest of the line is its argument; it ends what
                # came before (\g, \gset, \gexec) or stands alone (\c, \set).
                self.has_text = False
                self.parens = 0
                return True
            elif not c.isspace():
                self.has_text = True
                ended = False
            i += 1
        return ended and not self.quote and not self.comment_depth


def split_blocks(out_lines: list[str], sql_lines: list[str]) -> list[Block]:
    """The statements of a psql -a output given the input it ran, each with the lines it
    owns: its echoed lines, and the output lines up to the next echoed line."""
    flags = echo_flags(out_lines, sql_lines)
    ends = _StatementEnds()
    blocks: list[Block] = []
    cur: Optional[Block] = None
    open_stmt = False      # cur's statement has not ended yet
    for i, (line, is_echo) in enumerate(zip(out_lines, flags)):
        if is_echo and (cur is None or not open_stmt):
            if cur is not None:
                cur.end = i
                blocks.append(cur)
            cur = Block(start=i, end=i, echo=[])
            open_stmt = True
        if cur is None:
            cur = Block(start=i, end=i, echo=[])
        if is_echo:
            cur.echo.append(line)
            if ends.line_ends_statement(line):
                open_stmt = False
        elif line.strip():
            open_stmt = False  # output: whatever was echoed has run
    if cur is not None:
        cur.end = len(out_lines)
        blocks.append(cur)
    # Comment-only or blank echo runs are not statements: fold them into the next one.
    merged: list[Block] = []
    pending: Optional[Block] = None
    for b in blocks:
        is_text = any(ln.strip() and not ln.lstrip().startswith("--") for ln in b.echo)
        if not is_text and b.end - b.start == len(b.echo):
            pending = pending or Block(b.start, b.end, [])
            pending.echo += b.echo
            pending.end = b.end
            continue
        if pending is not None:
            b = Block(pending.start, b.end, pending.echo + b.echo)
            pending = None
        merged.append(b)
    if pending is not None:
        merged.append(pending)
    return merged


@dataclasses.dataclass
class Difference:
    test: str
    statement: str
    direct: str
    proxy: str
    klass: str = ""
    allowed_by: Optional["AllowEntry"] = None


def compare_test(test: str, direct_lines: list[str], proxy_lines: Optional[list[str]],
                 sql_lines: list[str]) -> tuple[int, list[Difference]]:
    """(statements in the direct output, differing statements)."""
    blocks = split_blocks(direct_lines, sql_lines)
    if proxy_lines is None:
        return len(blocks), [Difference(test, b.statement, _text(direct_lines, b.start, b.end),
                                        "(no result file)") for b in blocks]
    # Each changed stretch is charged to the direct lines it replaces; an insertion to the
    # line before it (the statement whose output gained lines).
    changed: dict[int, list[tuple[int, int, int, int]]] = {}
    sm = difflib.SequenceMatcher(a=direct_lines, b=proxy_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            continue
        anchor_lines = range(i1, i2) if i2 > i1 else [max(i1 - 1, 0)]
        for i in anchor_lines:
            changed.setdefault(i, []).append((i1, i2, j1, j2))
    diffs = []
    for b in blocks:
        ops = sorted({op for i in range(b.start, max(b.end, b.start + 1)) for op in
                      changed.get(i, [])})
        if not ops:
            continue
        pj1 = _map_line(sm, b.start)
        pj2 = max(_map_line(sm, b.end), pj1 + 1)
        for i1, i2, j1, j2 in ops:
            if i1 < b.start:
                pj1 = min(pj1, j1 + (b.start - i1) if i2 > i1 else j1)
            pj2 = max(pj2, j2 if i2 <= b.end else j2 - (i2 - b.end))
        diffs.append(Difference(test, b.statement, _text(direct_lines, b.start, b.end),
                                _text(proxy_lines, pj1, pj2)))
    return len(blocks), diffs


def _map_line(sm: difflib.SequenceMatcher, i: int) -> int:
    """The proxy line index corresponding to direct line i (by the matching blocks)."""
    best = 0
    for a, b, size in sm.get_matching_blocks():
        if a <= i < a + size:
            return b + (i - a)
        if a + size <= i:
            best = b + size + (i - a - size)
    return max(best, 0)


def _text(lines: list[str], start: int, end: int) -> str:
    return "\n".join(lines[start:end])


# ---------------------------------------------------------------- classes

_QUOTED = re.compile(r'"[^"]*"')
_NUMBER = re.compile(r"\b\d+\b")


def classify(d: Difference) -> str:
    """A short class for the report: the proxy's first error message with names and
    numbers blanked, else what kind of output changed."""
    for line in d.proxy.splitlines():
        if line.startswith(("ERROR:", "FATAL:", "psql:", "server closed", "connection to")):
            msg = line.split(":", 1)[1].strip() if line.startswith(("ERROR", "FATAL")) \
                else line
            msg = re.sub(r"^.*?(ERROR|FATAL):\s*", "", msg)
            return _NUMBER.sub("N", _QUOTED.sub('"X"', msg))[:110]
    if d.proxy == "(no result file)":
        return "no result file (test did not run)"
    if any(line.startswith("ERROR:") for line in d.direct.splitlines()):
        return "direct run errs, proxy run does not"
    if any(line.startswith(("WARNING:", "NOTICE:")) for line in d.proxy.splitlines() + d.direct.splitlines()):
        return "different NOTICE/WARNING"
    return "different result rows"


# ---------------------------------------------------------------- allowlist

@dataclasses.dataclass
class AllowEntry:
    test: str
    modes: tuple[str, ...]
    pattern: re.Pattern
    reason: str
    line_no: int
    used: int = 0

    def matches(self, d: Difference, mode: str) -> bool:
        return (self.test in ("*", d.test) and mode in self.modes
                and self.pattern.search(d.statement) is not None)


def load_allowlist(path: Path) -> list[AllowEntry]:
    """Lines `test :: modes :: statement regex :: reason` ('#' starts a comment line).
    modes is `*` or a comma list of transaction/session. Every entry needs a reason."""
    entries = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in raw.split(" :: ")]
        if len(parts) != 4 or not all(parts):
            raise ValueError(f"{path}:{n}: want `test :: modes :: regex :: reason`: {raw!r}")
        test, modes, regex, reason = parts
        mode_list = MODES if modes == "*" else tuple(m.strip() for m in modes.split(","))
        if any(m not in MODES for m in mode_list):
            raise ValueError(f"{path}:{n}: unknown mode in {modes!r}")
        entries.append(AllowEntry(test, mode_list, re.compile(regex, re.S), reason, n))
    return entries


def apply_allowlist(diffs: Iterable[Difference], entries: list[AllowEntry], mode: str) -> None:
    for d in diffs:
        for e in entries:
            if e.matches(d, mode):
                d.allowed_by = e
                e.used += 1
                break


# ---------------------------------------------------------------- report

def render_report(mode: str, stats: dict, diffs: list[Difference], max_chars: int = 1500) -> str:
    out = [f"## {mode} pooling", ""]
    for k, v in stats.items():
        out.append(f"- {k}: {v}")
    out.append("")
    by_class: dict[str, list[Difference]] = {}
    for d in diffs:
        by_class.setdefault(("allowlisted: " if d.allowed_by else "") + d.klass, []).append(d)
    out += ["### by class", "", "| statements | class | tests |", "|---:|---|---|"]
    for k, ds in sorted(by_class.items(), key=lambda kv: -len(kv[1])):
        tests = sorted({d.test for d in ds})
        shown = ", ".join(tests[:8]) + (" ..." if len(tests) > 8 else "")
        out.append(f"| {len(ds)} | {k.replace('|', '/')} | {shown} |")
    out += ["", "### every difference", ""]
    for d in diffs:
        tag = f" (allowlisted, line {d.allowed_by.line_no})" if d.allowed_by else ""
        out += [f"#### {d.test}: {d.klass}{tag}", "", "direct:", "```",
                d.direct[:max_chars], "```", "proxy:", "```", d.proxy[:max_chars], "```", ""]
    return "\n".join(out)
