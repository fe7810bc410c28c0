#!/usr/bin/env python3
"""Rewrite citations of the external spec COMMVQ.md into citations of docs/METHOD.md.

The tree used to cite "COMMVQ.md §N.M", a spec file that is not part of the repository. The
project's own method document, docs/METHOD.md, numbers its sections differently; SECTION_MAP below
says where each old section went.

What is rewritten (in files whose name ends in one of the selected extensions):
  * "COMMVQ.md" followed by a list of sections ("COMMVQ.md §2.4, §6", "COMMVQ.md §2.5 + §3.5")
    -> "docs/METHOD.md §3.5, §4", every section of the list mapped;
  * "COMMVQ.md" alone -> "docs/METHOD.md";
  * bare section references ("the §3.4 loss", "(§2.5/§3.5)"): in this tree they all point into
    COMMVQ.md, so they become "docs/METHOD.md §5.4", ... as well. Only in files that do not cite
    METHOD.md yet: once a file cites the new document, a bare "§" in it may already use the new
    numbers, so it is listed for review instead of rewritten. --no-bare skips them everywhere.
Citations already naming METHOD.md are left alone, so --apply can be run again safely.

Usage:
  scripts/dev/cite-method.py --check [--root DIR] [--ext json ...] [--no-bare]
      lists every occurrence that --apply would rewrite (and what it would become) and every
      reference it cannot map; exit 1 if anything remains, 0 if the tree is clean.
  scripts/dev/cite-method.py --apply [--root DIR] [--ext json ...] [--no-bare]
      rewrites the files in place (atomically), prints per-file and total counts; exit 1 if some
      references could not be mapped (they are left as they are and listed).
  scripts/dev/cite-method.py --map
      prints the section table.

Default extensions: .cpp .h .cu .py .sh .md. experiments/paper.json is the source of the "via
COMMVQ.md §5" notes in the generated results tables, so rewriting the .md tables without it means
the next `commvq-bench tables` run brings the old text back: pass `--ext json` to include it (and
the committed results/*/summary.json files).

Python standard library only.
"""

import argparse
import bisect
import os
import re
import sys
import tempfile

# Old section of COMMVQ.md -> section of docs/METHOD.md.
SECTION_MAP = {
    "0": "1",      # pipeline
    "1": "2",      # bit budget
    "2": "3",      # keys: RoPE-commutative codebook
    "2.1": "3.1",  # normalization (RoPE pairs: 3.2)
    "2.2": "3.3",  # codebook structure
    "2.3": "3.4",  # greedy residual encoding
    "2.4": "3.5",  # EM training (M step: 3.6)
    "2.5": "6.1",  # attention scores on key codes
    "3": "5",      # values
    "3.1": "5.1",  # value normalization
    "3.2": "5.2",  # value codes and codebook
    "3.3": "5.3",  # encoder
    "3.4": "5.4",  # training loss
    "3.5": "6.2",  # attention with coded values
    "4": "8",      # cache management
    "5": "9",      # claims
    "6": "4",      # factorized distances
}

# (path relative to the root, old section) -> new section, where the default would be misleading.
OVERRIDES = {
    # "Beyond the reference (COMMVQ.md §3)": refinement and refit are docs/METHOD.md §7.
    ("src/commvq/value_refine.h", "3"): "7",
}

DEFAULT_EXTS = (".cpp", ".h", ".cu", ".py", ".sh", ".md")
NEW_DOC = "docs/METHOD.md"
# Never touched: the new document (its own "§" are its sections) and this script (its table).
SKIP_FILES = {"docs/METHOD.md", "scripts/dev/cite-method.py"}
SKIP_DIRS = {".git", "out", "data", "third_party", "_deps", "node_modules", "__pycache__"}

SEC = r"§\s?\d+(?:\.\d+)*"
SEP = r"\s*(?:,|\+|/|&|\band\b)\s*"
CHAIN = rf"{SEC}(?:{SEP}{SEC})*"
# A document name (old or new) with an optional list of sections after it, or a bare list.
# "COMMVQ.md" right after a "/" or a word character is part of a path or a longer name: not matched.
CITE = re.compile(
    rf"(?P<doc>(?<![\w/.-])COMMVQ\.md|(?:docs/)?METHOD\.md)(?P<gap>[ \t]*)(?P<chain>{CHAIN})?"
    rf"|(?P<bare>{CHAIN})"
)
SEC_RE = re.compile(r"§\s?(\d+(?:\.\d+)*)")
OLD_LEFT = re.compile(r"(?<![\w/.-])COMMVQ\.md")


def skip_dir(name):
    return name in SKIP_DIRS or name.startswith("build") or name.startswith(".")


def candidate_files(root, exts):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not skip_dir(d))
        for f in sorted(filenames):
            if not f.endswith(exts):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            if rel in SKIP_FILES or os.path.islink(path):
                continue
            yield path, rel


class Result:
    def __init__(self):
        self.rewrites = []    # (line, old text, new text, kind) kind: "cited" | "bare"
        self.unmapped = []    # (line, text, section)
        self.ambiguous = []   # (line, text): bare refs in a file that already cites METHOD.md


def map_section(rel, old):
    return OVERRIDES.get((rel, old), SECTION_MAP.get(old))


def map_chain(rel, chain):
    """Returns (mapped chain, list of unmapped sections)."""
    missing = []

    def one(m):
        new = map_section(rel, m.group(1))
        if new is None:
            missing.append(m.group(1))
            return m.group(0)
        return "§" + new

    return SEC_RE.sub(one, chain), missing


def rewrite_text(text, rel, bare_enabled):
    res = Result()
    converted = re.search(r"METHOD\.md", text) is not None
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_of(pos):
        return bisect.bisect_right(line_starts, pos)

    def sub(m):
        ln = line_of(m.start())
        whole = m.group(0)
        if m.group("doc") is not None:
            if m.group("doc") != "COMMVQ.md":
                return whole  # already the new document
            chain = m.group("chain")
            if chain is None:
                new = NEW_DOC + m.group("gap")
            else:
                mapped, missing = map_chain(rel, chain)
                if missing:
                    for s in missing:
                        res.unmapped.append((ln, whole, s))
                    return whole
                new = NEW_DOC + m.group("gap") + mapped
            res.rewrites.append((ln, whole, new, "cited"))
            return new
        chain = m.group("bare")
        if not bare_enabled:
            return whole
        if converted:
            res.ambiguous.append((ln, whole))
            return whole
        mapped, missing = map_chain(rel, chain)
        if missing:
            for s in missing:
                res.unmapped.append((ln, whole, s))
            return whole
        new = NEW_DOC + " " + mapped
        res.rewrites.append((ln, whole, new, "bare"))
        return new

    return CITE.sub(sub, text), res


def write_atomic(path, text):
    d = os.path.dirname(path) or "."
    mode = os.stat(path).st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=".cite-method.", dir=d)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--check", action="store_true", help="list what remains; exit 1 if anything does")
    g.add_argument("--apply", action="store_true", help="rewrite the files in place")
    g.add_argument("--map", action="store_true", help="print the section table")
    ap.add_argument("--root", default=None, help="tree to process (default: the repository holding this script)")
    ap.add_argument("--ext", action="append", default=[], metavar="EXT",
                    help="also process files ending in .EXT (repeatable), e.g. --ext json")
    ap.add_argument("--no-bare", action="store_true", help="leave bare '§N' references alone")
    a = ap.parse_args(argv)

    if a.map:
        for old in sorted(SECTION_MAP, key=lambda s: [int(x) for x in s.split(".")]):
            print(f"COMMVQ.md §{old:<4} -> {NEW_DOC} §{SECTION_MAP[old]}")
        for (rel, old), new in sorted(OVERRIDES.items()):
            print(f"  in {rel}: COMMVQ.md §{old} -> {NEW_DOC} §{new}")
        return 0

    root = a.root or os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    exts = tuple(DEFAULT_EXTS) + tuple("." + e.lstrip(".") for e in a.ext)
    bare = not a.no_bare

    n_files = n_cited = n_bare = n_unmapped = n_ambiguous = n_left = 0
    for path, rel in candidate_files(root, exts):
        try:
            with open(path, encoding="utf-8", newline="") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):
            continue
        new_text, res = rewrite_text(text, rel, bare)
        for ln, whole, s in res.unmapped:
            print(f"{rel}:{ln}: cannot map '{whole}' (no section {s} in the table)")
        for ln, whole in res.ambiguous:
            print(f"{rel}:{ln}: bare '{whole}' in a file that already cites METHOD.md: check by hand")
        n_unmapped += len(res.unmapped)
        n_ambiguous += len(res.ambiguous)
        # Occurrences of the old name that no rule rewrites (inside a path, say): by hand.
        for m in re.finditer(r"COMMVQ\.md", new_text):
            if OLD_LEFT.match(new_text, m.start()) is None:
                ln = new_text.count("\n", 0, m.start()) + 1
                print(f"{rel}:{ln}: this COMMVQ.md is not a citation the script rewrites: check by hand")
                n_left += 1
        if res.rewrites:
            n_files += 1
            c = sum(1 for r in res.rewrites if r[3] == "cited")
            n_cited += c
            n_bare += len(res.rewrites) - c
            if a.check:
                for ln, old, new, kind in res.rewrites:
                    print(f"{rel}:{ln}: {old}  ->  {new}" + ("   (bare)" if kind == "bare" else ""))
            else:
                write_atomic(path, new_text)
                print(f"{rel}: {c} citation(s), {len(res.rewrites) - c} bare reference(s) rewritten")

    verb = "to rewrite" if a.check else "rewritten"
    print(f"{n_cited} COMMVQ.md citation(s) and {n_bare} bare reference(s) {verb} in {n_files} file(s); "
          f"{n_unmapped} unmappable, {n_ambiguous} ambiguous, {n_left} other COMMVQ.md mention(s)")
    if a.check:
        return 1 if (n_cited or n_bare or n_unmapped or n_ambiguous or n_left) else 0
    return 1 if (n_unmapped or n_left) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
