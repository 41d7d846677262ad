"""Short spec names: `resnext50` is `resnext50_32x4d`, as people say it.

Rule, in order: a file that exists is a file; a bundled name is itself; else
the bundled names that extend the query at an underscore (`resnext50` ->
`resnext50_*`) or, failing those, that start with it (`darknet` ->
`darknet53`). One candidate is the answer. Several: the one that is also
torchvision's model of that name (`torchvision:` in its spec) wins when it is
the only such, since that is the model the short name means to most users
(resnext50 -> resnext50_32x4d, not the ablation's resnext50_2x40d).
Otherwise the name is ambiguous, and the SpecError lists every bundled name
that starts with it.
"""

from __future__ import annotations

from pathlib import Path

from archgen.errors import SpecError, did_you_mean


def resolve_spec_name(name: str) -> str:
    """A path or a bundled spec's full name for `name`; SpecError listing candidates when it names none or several."""
    from archgen.spec.loader import bundled_names, load_spec

    if Path(name).is_file() or name.endswith((".yaml", ".yml")):
        return name  # a file (the loader reports a missing one at its path)
    names = bundled_names()
    if name in names:
        return name
    at_underscore = [n for n in names if n.startswith(name + "_")]
    anywhere = [n for n in names if n.startswith(name)]
    for candidates in (at_underscore, anywhere):
        if len(candidates) == 1:
            return candidates[0]
        twins = [n for n in candidates if load_spec(n).doc.torchvision == n]
        if len(twins) == 1:
            return twins[0]
    if anywhere:
        raise SpecError(f"'{name}' names several bundled specs: {', '.join(anywhere)}; give the full name",
                        path=name)
    raise SpecError(f"no bundled spec '{name}' and no file of that name.{did_you_mean(name, names)} "
                    f"Bundled specs: {', '.join(names)}", path=name)
