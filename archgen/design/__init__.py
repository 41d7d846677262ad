"""Design spaces: specs whose fields are distributions, sampled, searched and scaled to a budget.

`load_space(path)` validates a space file as strictly as a spec; `sample`,
`search` and `scale` are what `archgen sample|search|scale` call. Pure Python
(no torch): every figure comes from archgen's analytic counter
(`archgen.design.fast_count`, the fast path that agrees with `archgen.profile`).
"""

from archgen.design.fast_count import figures
from archgen.design.evaluate import Evaluator, Rejections
from archgen.design.sample import Unsatisfiable, sample
from archgen.design.scale import RULES, scale
from archgen.design.search import search
from archgen.design.space import Space, bundled_spaces, load_space

__all__ = ["Evaluator", "RULES", "Rejections", "Space", "Unsatisfiable", "bundled_spaces", "figures",
           "load_space", "sample", "scale", "search"]
