"""The description memoises one way (archgen.memo.Memo), and archgen.memo.clear_all empties every memo, so the
design benchmark's cold runs start cold."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import archgen
from archgen.design import Evaluator, Rejections, load_space, sample
from archgen.memo import Memo, clear_all, memos

ROOT = Path(__file__).resolve().parents[1]

#: Every place the description memoises, by its memo's name.
SITES = {"planner: families", "planner: stems", "regnet: stage widths", "schema: type hints", "assign: spec fields",
         "fast_count: stems", "fast_count: stages", "fast_count: blocks", "fast_count: heads", "evaluate: verdicts"}


def test_a_memo_forgets_everything_when_full():
    memo = Memo(2, "test")
    assert memo.keep("a", 1) == 1 and memo.keep("b", 2) == 2
    memo.keep("c", 3)
    assert dict(memo) == {"c": 3}


def _sample_regnets() -> Evaluator:
    """Validate a spec, and sample a RegNet space through an evaluator: every memo site on the way is used."""
    archgen.load_spec("resnet50")
    space = load_space("regnetx_400mf")
    evaluator = Evaluator(space, space.constraints)
    assert len(list(sample(space, 5, 0, evaluator, Rejections()))) == 5
    return evaluator


def test_every_memo_site_is_registered_and_clear_all_empties_them():
    clear_all()
    evaluator = _sample_regnets()
    filled = {m.name for m in memos() if m}
    assert SITES <= filled, f"not registered, or not used on the way: {sorted(SITES - filled)}"
    assert len(evaluator.memo) > 0
    clear_all()
    assert [m.name for m in memos() if m] == []
    assert len(evaluator.memo) == 0


def test_a_cold_search_counts_what_a_warm_one_counts():
    clear_all()
    space = load_space("regnetx_400mf")
    cold = [v.figures for v in sample(space, 20, 3, Evaluator(space, space.constraints), Rejections())]
    warm = [v.figures for v in sample(space, 20, 3, Evaluator(space, space.constraints), Rejections())]
    assert cold == warm and len(cold) == 20


def test_the_description_memoises_only_through_memo():
    """No lru_cache or functools.cache outside the torch side (kernels/ caches compiled kernels and device
    facts, bench/ the machine's provenance: facts of the machine, not of any spec)."""
    torch_side = {"kernels", "bench"}
    found = []
    for path in sorted((ROOT / "archgen").rglob("*.py")):
        if path.relative_to(ROOT / "archgen").parts[0] in torch_side:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("lru_cache", "cache", "cache_clear") or \
                    isinstance(node, ast.alias) and node.name in ("lru_cache", "cache"):
                found.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '')}")
    assert found == []


def _design_bench():
    spec = importlib.util.spec_from_file_location("design_bench", ROOT / "benchmarks" / "design_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_design_benchmark_times_from_empty_memos(monkeypatch):
    """design_bench's design_path and stream find every memo empty when they reach their first candidate."""
    sampling = importlib.import_module("archgen.design.sample")  # the package's `sample` is the function
    bench = _design_bench()
    space = load_space("regnetx_400mf")
    values = bench.draws(space, 5, 0)
    seen: list[int] = []

    class Watched:
        """The space, noting the memos' sizes when the first candidate is put into it."""

        def spec(self, v: tuple):
            if not seen:
                seen.append(sum(len(m) for m in memos()))
            return space.spec(v)

    _sample_regnets()
    bench.design_path(Watched(), values)
    assert seen == [0]

    draw = sampling.draw

    def watched_draw(s, rng):
        seen.append(sum(len(m) for m in memos()))
        return draw(s, rng)

    _sample_regnets()
    monkeypatch.setattr(sampling, "draw", watched_draw)
    bench.stream(space, 3, 1)
    assert seen[1] == 0 and sum(seen[2:]) > 0
