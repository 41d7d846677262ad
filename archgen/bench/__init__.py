"""`archgen bench`'s and `archgen calibrate`'s library: latency, throughput and peak memory of compiled specs
per backend, and latency tables to predict from.

session.py      one `archgen bench` run: the request checked, specs counted, device chosen, resume, notes;
calibration.py  one `archgen calibrate` run: the request checked, a space sampled, the table timed;
device.py       the device rule both share (--gpu insists, --cpu asks, else the GPU when there is one), Ray;
timing.py       every timer: CUDA events, CUDA-graph replay, CPU clocks, segment by segment, median / p10 / p90;
runner.py       one process times specs x backends (eager, fused, compile, onnxruntime, openvino) x batch sizes;
job_grid.py     the job grid (spec x batch x dtype x layout), resuming, results rewritten after every job;
ray_sweep.py    the same jobs as Ray tasks, retried when a worker dies (Ray is optional);
latency.py      latency tables: each block configuration timed once (interleaved passes), and predictions;
results.py      the environment (device, driver, versions, git revision, date), each row's provenance, atomic files.
The Typer commands live in archgen/cli/bench.py and archgen/cli/calibrate.py: they parse and render only.
"""
