"""The one way the description (spec -> plan -> counts) memoises, and the one call that empties every memo.

The planner, the RegNet rule, the schema's introspection, the fast counter
(archgen.design.fast_count) and the design evaluator remember results in a
Memo keyed by the few plain values a result reads (widths, strides, sizes),
not by the spec records, which are mutable and so unhashable. A design space
reuses few such keys, so a memo forgets everything when it is full instead of
keeping LRU order on every hit. Every Memo registers itself here, so
`clear_all()` empties them all: a benchmark's cold run starts cold, and
tests/test_memo.py checks that no memo of the description is kept another way.

Caches of torch objects (archgen.kernels' compiled kernels) are not memos of
the description: they hold no figure of any spec, and emptying them would
only recompile the same kernels.
"""

from __future__ import annotations

import itertools
import weakref
from typing import Any, Hashable

#: Every live Memo, by a serial number (a memo is a dict, so unhashable; an evaluator's memo dies with it).
_registered: weakref.WeakValueDictionary[int, "Memo"] = weakref.WeakValueDictionary()
_serial = itertools.count()


class Memo(dict):
    """Values computed from plain keys; cleared when `size` is reached. `name` says where it memoises, for
    tests and reports."""

    def __init__(self, size: int, name: str) -> None:
        super().__init__()
        self.size = size
        self.name = name
        _registered[next(_serial)] = self

    def keep(self, key: Hashable, value: Any) -> Any:
        if len(self) >= self.size:
            self.clear()
        self[key] = value
        return value


def memos() -> list[Memo]:
    """Every memo alive now."""
    return list(_registered.values())


def clear_all() -> None:
    """Forget everything every memo remembers (benchmarks time the cold path from here)."""
    for memo in memos():
        memo.clear()
