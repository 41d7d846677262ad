"""Paper tables regenerated from specs: layouts as data (layouts.py), built beside the printed numbers (compare.py)."""
