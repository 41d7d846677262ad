"""`archgen bench`: latency, throughput and peak memory of compiled specs per backend.

timing.py   CUDA events, CUDA-graph replay and a CPU timer, with median / p10 / p90;
runner.py   specs x backends (eager, fused, compile) x batch sizes, OOM recorded and skipped;
results.py  the environment (device, driver, versions, git revision, date) and atomic JSON/CSV files;
command.py  the Typer command (torch imported only inside it, so `archgen --help` stays fast).
"""
