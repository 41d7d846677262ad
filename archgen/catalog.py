"""The bundled specs' summaries (paper, input size, params, MACs), as `archgen list` shows them.

Reading, merging, validating and counting all 114 bundled specs takes most of a
second, and their summaries only change when a spec or the counting code does.
So they are shipped precomputed in `archgen/catalog.json` (plain JSON, nothing
unpickled), with a digest of every bundled spec file's name and bytes: when the
files on disk no longer match (a spec edited in a source checkout), the
summaries are computed afresh instead, so the file is never trusted past a
change it did not see. A change to the counting code is caught by the test
that recomputes the catalog and compares (tests/test_list_index.py);
regenerate with `python -m archgen.catalog`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from archgen.grammar.loader import bundled_dir

#: The shipped summaries.
CATALOG_FILE = Path(__file__).with_name("catalog.json")


def zoo_digest() -> str:
    """sha256 over every bundled spec's file name and bytes, in name order: what the catalog was made from."""
    digest = hashlib.sha256()
    for path in sorted(bundled_dir().glob("*.yaml")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def summarize() -> dict[str, Any]:
    """The catalog computed from the specs: each one loaded (extends merged), validated and counted."""
    from archgen.complexity import profile
    from archgen.grammar.loader import bundled_names, load_spec

    rows = []
    for name in bundled_names():
        spec = load_spec(name)
        p = profile(spec)
        paper = spec.doc.paper
        rows.append({"name": name, "description": spec.doc.description,
                     "paper": None if paper is None else {"authors": paper.authors, "year": paper.year,
                                                          "table": paper.table, "arxiv": paper.arxiv},
                     "input_size": p.input_size, "params": p.params, "macs": p.macs, "flops": p.flops})
    return {"digest": zoo_digest(), "specs": rows}


def catalog() -> list[dict[str, Any]]:
    """One summary per bundled spec, in name order: the shipped file's when it was made from these very
    files, else computed."""
    try:
        shipped = json.loads(CATALOG_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        shipped = None
    if isinstance(shipped, dict) and shipped.get("digest") == zoo_digest():
        return shipped["specs"]
    return summarize()["specs"]


def catalog_text() -> str:
    """The catalog file's text (one spec a line, so a regenerated file diffs by spec)."""
    data = summarize()
    lines = ",\n".join(f"  {json.dumps(row, sort_keys=True)}" for row in data["specs"])
    return f'{{"digest": "{data["digest"]}",\n "specs": [\n{lines}\n]}}\n'


if __name__ == "__main__":
    from archgen.render import write_atomic

    write_atomic(str(CATALOG_FILE), catalog_text())
    print(f"wrote {CATALOG_FILE}")
