"""What `archgen build` and `archgen list` show: the library's results as tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from archgen.complexity import COUNTING_NOTE, DEFAULT_MAX_PARAMS, Profile, profile
from archgen.render import Number, Table, human, rounded

if TYPE_CHECKING:
    from archgen.planner import ModelPlan


@dataclass
class BuildResult:
    profile: Profile
    model: Any  # the nn.Module (on the meta device unless weights were asked for)
    plan: ModelPlan


def build_and_check(spec: object, *, input_size: int | None = None, max_params: int = DEFAULT_MAX_PARAMS,
                    weights: bool = False) -> BuildResult:
    """Build the model and run a forward pass (on the meta device: shapes only, no memory)
    to check that every stage outputs the shape the analytic counter predicts."""
    import torch

    from archgen.builder import build
    from archgen.planner import plan

    p = plan(spec)
    counted = profile(p, input_size)
    model = build(p, max_params=max_params, device=None if weights else "meta").eval()
    device = next(model.parameters()).device
    x = torch.zeros(1, p.in_chans, counted.input_size, counted.input_size, device=device)
    with torch.no_grad():
        outs = model.forward_stages(x)
        logits = model.head(outs[-1])
    for stage, out in zip(counted.stages[1:-1], outs):
        if tuple(out.shape[1:]) != stage.out:
            raise RuntimeError(f"{stage.name}: the model outputs {tuple(out.shape[1:])}, the counter predicts "
                               f"{stage.out}; the block's module and cost disagree")
    head_out = counted.stages[-1].out  # (features, 1, 1), or a backbone's unpooled map
    if tuple(logits.shape[1:]) != (head_out if logits.dim() == 4 else head_out[:1]):
        raise RuntimeError(f"the head outputs {tuple(logits.shape[1:])}, the counter predicts {head_out}")
    return BuildResult(counted, model, p)


def build_table(p: Profile, planned: ModelPlan) -> Table:
    """The stages in the papers' notation, with the activation and norm in the title where they are not
    ReLU and batch norm (the notation does not show them)."""
    from archgen.tables.compare import act_norm_note

    note = act_norm_note(planned, p)
    t = Table(f"{p.name} at {p.input_size}x{p.input_size}" + (f"; {note}" if note else ""),
              ["stage", "output", "blocks", "params", "MACs"], key="build")
    for s in p.stages:
        c, h, w = s.out
        t.add(s.name, f"{h}x{w}, {c}", s.notation, rounded(s.params), rounded(s.macs))
    totals = Number(f"FLOPs (2 x MACs) {p.flops}; activations {p.acts}",
                    f"FLOPs (2 x MACs) {human(p.flops)}; activations {human(p.acts)}")
    t.add("total", "", totals, rounded(p.params), rounded(p.macs), rule=True)
    t.notes.append(COUNTING_NOTE)
    t.data = p.to_dict()
    return t


def list_table() -> Table:
    from archgen.catalog import catalog

    t = Table("Bundled specs", ["name", "paper", "input", "params", "MACs", "description"], key="specs",
              droppable=("description", "paper"))
    rows = []
    for row in catalog():  # precomputed summaries: counting the 114 specs on every call took most of a second
        name, paper = row["name"], row["paper"]
        cite = ""
        if paper is not None:
            cite = ", ".join(x for x in (f"{paper['authors']} {paper['year']}" if paper["authors"] else None,
                                         paper["table"]) if x)
        t.add(name, cite, row["input_size"], rounded(row["params"]), rounded(row["macs"]), row["description"] or "")
        rows.append({"name": name, "paper": cite, "arxiv": paper["arxiv"] if paper else None,
                     "input_size": row["input_size"], "params": row["params"], "macs": row["macs"],
                     "flops": row["flops"], "description": row["description"]})
    t.data = rows
    return t
