"""The `archgen` command line: every Typer command and the views it prints.

The library packages and modules (grammar, blocks, tables, bench, ensemble,
third_party_counters) import no typer; this package is the only place that does.
"""
