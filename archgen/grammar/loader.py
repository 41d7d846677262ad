"""Find a spec, follow `extends`, validate, and resolve it into a `Spec`.

Merge rule for `extends`: mappings merge key by key (the child wins); a list of
mappings of the same length as the parent's merges item by item (so
`stages: [{depth: 3}, {depth: 4}, {depth: 23}, {depth: 3}]` changes only the
depths of a four-stage parent); any other value replaces the parent's. A list
of mappings that replaces one of another length is remembered, so an error
inside it can say why its items had to be complete.
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
from archgen.grammar.yamlio import Loc, Path, format_path, load_yaml

SpecLike = Union[str, FsPath, "Spec", dict]

#: Largest spec file read; bundled specs are about 2 KB.
MAX_FILE_BYTES = 1_000_000

#: Where the spec given as a mapping (not a file) is said to be, in errors.
DICT_FILE = "<dict>"


@dataclass
class Spec:
    """A validated spec with `extends` applied, plus where each of its values was written."""

    doc: schema.SpecDoc
    file: str
    locs: dict[Path, Loc] = field(default_factory=dict, repr=False)
    #: Lists of mappings that replaced a parent's list of another length: field ('stages') -> why, in words.
    replaced_lists: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.doc.name

    def error(self, path: Path, message: str) -> SpecError:
        """A SpecError pointing at `path` in whichever file wrote it (with the merge rule, when it explains it)."""
        return with_merge_hint(Validator(self.locs, self.file).error(path, message), self.replaced_lists)


def with_merge_hint(exc: SpecError, replaced_lists: dict[str, str]) -> SpecError:
    """`exc`, with the merge rule appended when its field lies inside a list that replaced its parent's:
    a missing field there is the surprise of a list that did not merge."""
    for list_field, hint in replaced_lists.items():
        if exc.field is not None and (exc.field == list_field or exc.field.startswith((list_field + "[",
                                                                                         list_field + "."))):
            return SpecError(f"{exc.message}. {hint}", path=exc.path, line=exc.line, column=exc.column,
                             field=exc.field)
    return exc


def merge_hint(list_field: str, parent_ref: str, parent_length: int, child_length: int) -> str:
    """Why the items of a list of mappings that did not merge with its parent's must be complete."""
    return (f"'{list_field}' has {child_length} item{'s' if child_length != 1 else ''} and the parent "
            f"'{parent_ref}' has {parent_length}: 'extends' merges a list of mappings item by item only when both "
            f"have the same length; otherwise the child's list replaces the parent's, so each of its items must "
            f"be complete. Give {parent_length} items to change only some of their fields, or write each item in full")


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
    for candidate in candidates:
        if candidate.is_dir():
            raise SpecError(f"'{text}' is a directory, not a spec file; {directory_hint(candidate)}", path=text)
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
    ablation's resnext50_2x40d). Else the one every other candidate extends, the
    base model its variants are named after (`darknet` -> darknet53, not
    darknet53_leaky001). Otherwise SpecError lists the candidates.
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
        bases = [n for n in candidates if all(other.startswith(n) for other in candidates)]
        if len(bases) == 1:
            return bases[0]
    if anywhere:
        raise SpecError(f"'{name}' names several bundled specs: {', '.join(anywhere)}; give the full name", path=name)
    raise SpecError(f"no spec file '{name}' and no bundled spec of that name.{did_you_mean(name, names)} "
                    "Give a path to a YAML file or one of the names 'archgen list' prints", path=name)


def directory_hint(directory: FsPath) -> str:
    """What to give instead of a directory: one of the YAML files in it, when it holds some."""
    inside = sorted(p.name for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))[:3]
    if inside:
        return f"give one of the YAML files in it, such as {', '.join(str(directory / n) for n in inside)}"
    return "give a path to a YAML file or one of the names 'archgen list' prints"


def read_bounded(file: FsPath) -> bytes:
    """The file's bytes, refusing one above MAX_FILE_BYTES from its size before reading it
    (and reading at most one byte more, for files whose size the system does not know)."""
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            raise too_large(file, size)
        with open(file, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"cannot read the file: {exc.strerror}", path=str(file)) from None
    if len(data) > MAX_FILE_BYTES:
        raise too_large(file, None)
    return data


def too_large(file: FsPath, size: int | None) -> SpecError:
    amount = f"{size:,} bytes" if size is not None else f"more than {MAX_FILE_BYTES:,} bytes"
    return SpecError(f"the file is {amount}; a spec is at most {MAX_FILE_BYTES:,} bytes (bundled specs are "
                     "about 2 KB), so this is not a spec", path=str(file))


def read_raw(file: FsPath) -> tuple[dict, dict[Path, Loc]]:
    data = read_bounded(file)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"the file is not UTF-8 text (byte {exc.start})", path=str(file)) from None
    try:
        return load_yaml(text, str(file))
    except RecursionError:
        raise SpecError("the YAML nests too deeply", path=str(file)) from None


def merge(parent: Any, child: Any, parent_locs: dict, child_locs: dict,
          path: Path = ()) -> tuple[Any, dict, dict[Path, tuple[int, int]]]:
    """Deep-merge child over parent, carrying the location of every value with it.

    Also returns the lists of mappings that replaced a parent's list of another
    length: path -> (parent's length, child's length).
    """
    locs = dict(parent_locs)
    replaced: dict[Path, tuple[int, int]] = {}

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
                written = child_locs.get(at + (key,))  # None when the child is a mapping, not a file
                if written is None:
                    locs.pop(at + (key,), None)
                else:
                    locs[at + (key,)] = written
            return out
        if isinstance(p, list) and isinstance(c, list) and all(isinstance(x, dict) for x in p + c):
            if len(p) == len(c):
                return [walk(pi, ci, at + (i,)) for i, (pi, ci) in enumerate(zip(p, c))]
            replaced[at] = (len(p), len(c))
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
    return merged, locs, replaced


@dataclass
class Raw:
    """A spec document before validation: `extends` applied, with locations and the lists that did not merge."""

    doc: dict
    locs: dict[Path, Loc]
    replaced_lists: dict[str, str] = field(default_factory=dict)


def load_raw(ref: str | FsPath, relative_to: FsPath | None = None, chain: tuple[str, ...] = (),
             at: Loc | None = None) -> tuple[Raw, FsPath]:
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
    doc, locs = read_raw(file)
    return apply_extends(Raw(doc, locs), str(file), file.parent, chain + (key,)), file


def apply_extends(raw: Raw, file: str, relative_to: FsPath, chain: tuple[str, ...]) -> Raw:
    """`raw` merged over the spec its `extends` names (a bundled name, or a path relative to `relative_to`)."""
    parent_ref = raw.doc.get("extends")
    if parent_ref is None:
        return raw
    at = raw.locs.get(("extends",))
    if not isinstance(parent_ref, str):
        raise SpecError("expected the name or path of another spec", path=at.file if at else file,
                        line=at.line if at else None, column=at.column if at else None, field="extends")
    try:
        parent, _ = load_raw(parent_ref, relative_to, chain, at)
    except SpecError as exc:
        if at is None and exc.field is None:  # a mapping has no line to point at: name its field
            raise SpecError(exc.message, path=file, field="extends") from None
        raise
    parent.doc.pop("extends", None)
    child = {k: v for k, v in raw.doc.items() if k != "extends"}
    merged, merged_locs, replaced = merge(parent.doc, child, parent.locs, raw.locs)
    merged["extends"] = parent_ref
    merged_locs.pop((), None)  # the document is the child's, wherever its values were written
    merged_locs.update({key: raw.locs[key] for key in ((), ("extends",)) if key in raw.locs})
    hints = {**parent.replaced_lists}
    for path, (parent_length, child_length) in replaced.items():
        hints[format_path(path)] = merge_hint(format_path(path), parent_ref, parent_length, child_length)
    return Raw(merged, merged_locs, hints)


def load_spec(spec: SpecLike) -> Spec:
    """A validated Spec from a bundled name, a path, a mapping, or a Spec (returned as is).

    A mapping's `extends` is followed as a file's is; a relative path in it is
    read from the current directory, since a mapping has no directory of its own.
    """
    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, dict):
        raw = apply_extends(Raw(copy.deepcopy(spec), {}), DICT_FILE, FsPath.cwd(), ())
        file = DICT_FILE
    elif isinstance(spec, (str, FsPath)):
        raw, path = load_raw(spec)
        file = str(path)
    else:
        raise TypeError(f"load_spec takes a name, a path, a mapping or a Spec, not {type(spec).__name__}")
    try:
        doc = Validator(raw.locs, file).dataclass(schema.SpecDoc, raw.doc, ())
    except SpecError as exc:
        raise with_merge_hint(exc, raw.replaced_lists) from None
    return Spec(doc=doc, file=file, locs=raw.locs, replaced_lists=raw.replaced_lists)
