"""Safe YAML reading that remembers where every value came from.

PyYAML's composer gives nodes with marks; we turn them into plain Python values
ourselves so that (1) only the core YAML tags are accepted, never a tag that
constructs an object, and (2) anchors and aliases are expanded under a budget,
so a "billion laughs" document fails fast instead of eating memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from archgen.errors import SpecError

#: Expanded nodes allowed in one document; bundled specs use a few hundred.
MAX_NODES = 20_000

Path = tuple  # a key path such as ("stages", 2, "depth")

_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


@dataclass(frozen=True)
class Loc:
    """A place in a spec file (1-based line and column)."""

    file: str
    line: int
    column: int


def format_path(path: Path) -> str:
    """('stages', 2, 'depth') -> 'stages[2].depth'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file
        self.locs: dict[Path, Loc] = {}
        self.count = 0
        self.constructor = yaml.SafeLoader("")

    def loc(self, node: yaml.Node) -> Loc:
        return Loc(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def convert(self, node: yaml.Node, path: Path) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise SpecError(
                f"the document expands to more than {MAX_NODES} values (nested aliases?); "
                "a spec is a few hundred values at most",
                path=self.file, line=self.loc(node).line, column=self.loc(node).column,
            )
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _COLLECTION_TAGS:
            raise self.error(node, path, f"the YAML tag '{node.tag}' is not allowed; a spec holds only plain "
                                         "strings, numbers, booleans, null, lists and mappings")
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            self.constructor.flatten_mapping(node)
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.error(key_node, path, "a mapping key must be a plain word")
                key = self.scalar(key_node, path)
                if not isinstance(key, str):
                    key = str(key)
                if key in out:
                    raise self.error(key_node, path + (key,), f"key '{key}' appears twice in the same mapping")
                self.locs[path + (key,)] = self.loc(key_node)
                out[key] = self.convert(value_node, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.locs[path + (index,)] = self.loc(item)
                items.append(self.convert(item, path + (index,)))
            return items
        return self.scalar(node, path)

    def scalar(self, node: yaml.Node, path: Path) -> Any:
        if node.tag not in _SCALAR_TAGS:
            raise self.error(
                node, path,
                f"the YAML tag '{node.tag}' is not allowed; a spec holds only plain "
                "strings, numbers, booleans, null, lists and mappings",
            )
        return self.constructor.construct_object(node, deep=True)

    def error(self, node: yaml.Node, path: Path, message: str) -> SpecError:
        loc = self.loc(node)
        return SpecError(message, path=self.file, line=loc.line, column=loc.column,
                         field=format_path(path) or None)


def unreadable_character(text: str, file: str, exc: yaml.reader.ReaderError) -> SpecError:
    """A character YAML does not accept (a NUL byte, another non-printable one), at its line and column."""
    before = text[: exc.position]
    line = before.count("\n") + 1
    column = exc.position - (before.rfind("\n") + 1) + 1
    code = exc.character if isinstance(exc.character, int) else ord(exc.character)
    name = "a NUL byte" if code == 0 else f"the non-printable character U+{code:04X}"
    return SpecError(f"{name} is not allowed in YAML; a spec is plain text (is this a binary file?)",
                     path=file, line=line, column=column)


#: Composes the same nodes, with the same marks, as yaml.SafeLoader.
FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str, file: str) -> tuple[Any, dict[Path, Loc]]:
    """Parse one YAML document; return its value and the place of every key and item."""
    try:
        try:  # libyaml's parser when PyYAML has it (several times faster); errors are worded by the Python one
            nodes = list(yaml.compose_all(text, Loader=FAST_LOADER))
        except yaml.YAMLError:
            nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        raise SpecError(
            f"YAML syntax error: {problem}" + (f" ({exc.context})" if exc.context else ""),
            path=file,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    except yaml.reader.ReaderError as exc:
        raise unreadable_character(text, file, exc) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {exc}", path=file) from None
    nodes = [node for node in nodes if node is not None]
    if not nodes:
        raise SpecError("the file is empty; a spec is a YAML mapping with at least 'name', 'block' and 'stages'",
                        path=file, line=1, column=1)
    if len(nodes) > 1:
        raise SpecError("the file holds several YAML documents ('---'); a spec is one document",
                        path=file, line=nodes[1].start_mark.line + 1, column=1)
    reader = _Reader(file)
    root = nodes[0]
    if not isinstance(root, yaml.MappingNode):
        kind = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
        raise SpecError(f"the top level is {kind}; a spec is a YAML mapping of fields such as 'name:' and 'stages:'",
                        path=file, line=root.start_mark.line + 1, column=root.start_mark.column + 1)
    value = reader.convert(root, ())
    reader.locs[()] = reader.loc(root)
    return value, reader.locs
