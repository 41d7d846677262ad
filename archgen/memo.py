"""A memo for the design hot path, keyed by plain values.

The planner's and counter's memos key on the few plain values a result reads
(widths, strides, sizes), not on the spec records, which are mutable and so
unhashable. A design space reuses few such keys, so the memo forgets everything
when it is full instead of keeping LRU order on every hit.
"""

from __future__ import annotations

from typing import Any, Hashable


class Memo(dict):
    """Values computed from plain keys; cleared when `size` is reached."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def keep(self, key: Hashable, value: Any) -> Any:
        if len(self) >= self.size:
            self.clear()
        self[key] = value
        return value
