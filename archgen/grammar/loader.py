"""Find a spec, follow `extends`, validate, and resolve it into a `Spec`.

Merge rule for `extends`: mappings merge key by key (the child wins); a list of
mappings of the same length as the parent's merges item by item (so
`stages: [{depth: 3}, {depth: 4}, {depth: 23}, {depth: 3}]` changes only the
depths of a four-stage parent); any other value replaces the parent's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path as FsPath
from typing import Any, Union

from archgen.errors import SpecError, did_you_mean
from archgen.grammar import schema
from archgen.grammar.validate import Validator
from archgen.grammar.yamlio import Loc, Path, load_yaml

SpecLike = Union[str, FsPath, "Spec", dict]

#: Largest spec file read; bundled specs are about 2 KB.
MAX_FILE_BYTES = 1_000_000


@dataclass
class Spec:
    """A validated spec with `extends` applied, plus where each of its values was written."""

    doc: schema.SpecDoc
    file: str
    locs: dict[Path, Loc] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.doc.name

    def error(self, path: Path, message: str) -> SpecError:
        """A SpecError pointing at `path` in whichever file wrote it."""
        return Validator(self.locs, self.file).error(path, message)


def bundled_dir() -> FsPath:
    """specs/ of the source tree, or `archgen/specs` in an installed wheel."""
    source_tree = FsPath(__file__).resolve().parents[2] / "specs"
    if source_tree.is_dir():
        return source_tree
    return FsPath(str(resources.files("archgen.zoo")))


def bundled_names() -> list[str]:
    """Names of the specs shipped in specs/."""
    return sorted(p.stem for p in bundled_dir().glob("*.yaml"))


def locate(ref: str | FsPath, relative_to: FsPath | None = None) -> FsPath:
    """A path to an existing file, or a bundled spec's name."""
    text = str(ref)
    candidates = []
    if relative_to is not None:
        candidates.append(relative_to / text)
    candidates.append(FsPath(text))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    if "/" in text or text.endswith((".yaml", ".yml")):
        raise SpecError(f"no spec file '{text}'. Give a path to a YAML file or one of the names 'archgen list' "
                        "prints", path=text)
    return bundled_dir() / f"{resolve_name(text)}.yaml"


def resolve_name(name: str) -> str:
    """The bundled spec a name means: itself, or a short name people say (`resnext50` -> `resnext50_32x4d`).

    Rule, in order: a bundled name is itself; else the bundled names that extend
    it at an underscore (`resnext50` -> `resnext50_*`) or, failing those, that
    start with it (`darknet` -> `darknet53`). One candidate is the answer.
    Several: the one that is torchvision's model of that name (`torchvision:` in
    its own file) wins when it is the only such, since that is the model the
    short name means to most users (resnext50 -> resnext50_32x4d, not the
    ablation's resnext50_2x40d). Otherwise SpecError lists the candidates.
    """
    import yaml

    names = bundled_names()
    if name in names:
        return name
    at_underscore = [n for n in names if n.startswith(name + "_")]
    anywhere = [n for n in names if n.startswith(name)]
    for candidates in (at_underscore, anywhere):
        if len(candidates) == 1:
            return candidates[0]
        twins = [n for n in candidates
                 if (yaml.safe_load((bundled_dir() / f"{n}.yaml").read_text()) or {}).get("torchvision") == n]
        if len(twins) == 1:
            return twins[0]
    if anywhere:
        raise SpecError(f"'{name}' names several bundled specs: {', '.join(anywhere)}; give the full name", path=name)
    raise SpecError(f"no spec file '{name}' and no bundled spec of that name.{did_you_mean(name, names)} "
                    "Give a path to a YAML file or one of the names 'archgen list' prints", path=name)


def read_raw(file: FsPath) -> tuple[dict, dict[Path, Loc]]:
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read the file: {exc.strerror}", path=str(file)) from None
    if len(data) > MAX_FILE_BYTES:
        raise SpecError(f"the file is {len(data)} bytes; a spec is at most {MAX_FILE_BYTES}", path=str(file))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"the file is not UTF-8 text (byte {exc.start})", path=str(file)) from None
    try:
        return load_yaml(text, str(file))
    except RecursionError:
        raise SpecError("the YAML nests too deeply", path=str(file)) from None


def merge(parent: Any, child: Any, parent_locs: dict, child_locs: dict, path: Path = ()) -> tuple[Any, dict]:
    """Deep-merge child over parent, carrying the location of every value with it."""
    locs = dict(parent_locs)

    def walk(p: Any, c: Any, at: Path) -> Any:
        if isinstance(p, dict) and isinstance(c, dict):
            out = dict(p)
            for key, value in c.items():
                if key in p:
                    out[key] = walk(p[key], value, at + (key,))
                else:
                    drop(at + (key,))
                    out[key] = copy.deepcopy(value)
                    take(at + (key,))
                locs[at + (key,)] = child_locs.get(at + (key,), locs.get(at + (key,)))
            return out
        if (isinstance(p, list) and isinstance(c, list) and len(p) == len(c)
                and all(isinstance(x, dict) for x in p + c)):
            return [walk(pi, ci, at + (i,)) for i, (pi, ci) in enumerate(zip(p, c))]
        drop(at)
        take(at)
        return copy.deepcopy(c)

    def drop(prefix: Path) -> None:
        for key in [k for k in locs if k[: len(prefix)] == prefix and len(k) > len(prefix)]:
            del locs[key]

    def take(prefix: Path) -> None:
        for key, loc in child_locs.items():
            if key[: len(prefix)] == prefix:
                locs[key] = loc

    merged = walk(parent, child, path)
    return merged, locs


def load_raw(ref: str | FsPath, relative_to: FsPath | None = None, chain: tuple[str, ...] = (),
             at: Loc | None = None) -> tuple[dict, dict[Path, Loc], FsPath]:
    """Read a spec file and everything it extends, merged, with locations."""
    try:
        file = locate(ref, relative_to)
    except SpecError as exc:
        if at is not None:  # point at the `extends:` line that named it
            raise SpecError(exc.message, path=at.file, line=at.line, column=at.column, field="extends") from None
        raise
    key = str(file.resolve())
    if key in chain:
        cycle = " -> ".join(FsPath(c).name for c in chain + (key,))
        raise SpecError(f"'extends' forms a cycle: {cycle}; a spec may not extend itself, directly or not",
                        path=at.file if at else str(file), line=at.line if at else None,
                        column=at.column if at else None, field="extends")
    raw, locs = read_raw(file)
    parent_ref = raw.get("extends")
    if parent_ref is None:
        return raw, locs, file
    if not isinstance(parent_ref, str):
        loc = locs[("extends",)]
        raise SpecError("expected the name or path of another spec", path=loc.file, line=loc.line,
                        column=loc.column, field="extends")
    parent, parent_locs, _ = load_raw(parent_ref, file.parent, chain + (key,), locs[("extends",)])
    parent.pop("extends", None)
    child = {k: v for k, v in raw.items() if k != "extends"}
    merged, merged_locs = merge(parent, child, parent_locs, locs)
    merged["extends"] = parent_ref
    merged_locs[("extends",)] = locs[("extends",)]
    return merged, merged_locs, file


def load_spec(spec: SpecLike) -> Spec:
    """A validated Spec from a bundled name, a path, a mapping, or a Spec (returned as is)."""
    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, dict):
        raw, locs, file = copy.deepcopy(spec), {}, "<dict>"
    elif isinstance(spec, (str, FsPath)):
        raw, locs, file = load_raw(spec)
        file = str(file)
    else:
        raise TypeError(f"load_spec takes a name, a path, a mapping or a Spec, not {type(spec).__name__}")
    doc = Validator(locs, file).dataclass(schema.SpecDoc, raw, ())
    return Spec(doc=doc, file=file, locs=locs)
