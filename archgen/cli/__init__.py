"""The `archgen` command line: every Typer command and the views it prints.

The library packages (grammar, blocks, tables, bench, ensemble, counters)
import no typer; this package is the only place that does.
"""
