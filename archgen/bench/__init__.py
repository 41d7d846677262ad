"""`archgen bench`'s library: latency, throughput and peak memory of compiled specs per backend.

timing.py     CUDA events, CUDA-graph replay and a CPU timer, with median / p10 / p90;
runner.py     one process times specs x backends (eager, fused, compile) x batch sizes, OOM recorded and skipped;
sweep.py      the job grid (spec x batch x dtype x layout), resuming, results rewritten after every job;
ray_sweep.py  the same jobs as Ray tasks, retried when a worker dies (Ray is optional);
latency.py    latency tables: each block configuration timed once (interleaved passes), and predictions;
results.py    the environment (device, driver, versions, git revision, date), each row's provenance, atomic files.
The Typer command lives in archgen/cli/bench.py.
"""
