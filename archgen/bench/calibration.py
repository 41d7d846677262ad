"""One `archgen calibrate` run as a library call: which kernel configurations to time, timing them (here or
over a Ray cluster's nodes) within the time asked for, a handful of whole networks for the correction from
isolated kernels to a pass, and the latency model fitted on them (archgen.bench.latency_model).

What is timed (nn-Meter's recipe, Zhang et al. 2021, on archgen's own distributions):

1. first, the configurations at either end of each kind's ranged features over the zoo and many candidates
   of each space (Sampler.extremes), so that the ranges span what a search of the spaces and the zoo's
   networks meet; then the kernel configurations of the networks a user will predict: every bundled spec
   at its input size, and candidates drawn from the design spaces as `archgen sample` draws them, at each
   batch size asked for, deduplicated, the sources taken in turn so that a short run still covers them all,
   with perturbed copies (channels, group widths and sizes scaled) mixed in to spread the calibrated ranges;
2. adaptively, once a first share of the time is spent: the latency model is cross-validated on what was
   timed (latency_fit.cross_validate), and the configurations it predicts beyond 10%, those whose error
   costs a network the most per second of timing first (RANK_MS), are perturbed a little to time their
   neighbourhood, round after round, beside more of the base stream;
3. whole networks drawn from the spaces (seeded), timed interleaved at each batch size: what the sum of
   isolated kernels misses (a kernel alone runs with hot caches, without the dispatch between kernels and
   the layout conversions a network still makes; a pass has overheads of its own), which the model's
   network-level correction absorbs. They take at most NETWORK_SHARE of the time, a first chunk before the
   kernels and the rest after them (_NetworkSlots).

The CLI parses options into a `CalibrationRequest` and renders what `run_calibration` returns.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, NamedTuple, Optional, Sequence

from archgen.bench.kernel_units import BACKENDS, KernelUnit
from archgen.bench.unit_kinds import UNIT_KINDS
from archgen.errors import UserError
from archgen.render import quantity

if TYPE_CHECKING:
    from archgen.bench.device import Placement

#: The whole run's default budget: calibration, networks and fitting within 8 minutes on a 2-core CPU.
DEFAULT_MINUTES = 8.0
#: Below these a run warns that its model is rough: configurations (each kind needs tens of samples to fit its
#: trees) and whole networks (the correction's few points).
MIN_CONFIGURATIONS, MIN_NETWORKS = 200, 4
MAX_MINUTES = 24 * 60
#: Shares of the budget: whole networks (before and after the kernels), the fit (at least FIT_S); kernels get
#: what is left.
NETWORK_SHARE, FIT_SHARE, FIT_S = 0.2, 0.08, 15.0
#: The first adaptive round starts once this share of the kernel time is spent on the base stream.
FIRST_ROUND_SHARE = 0.5
#: Timing of one configuration: untimed calls, timed calls, and the time after which timed calls stop.
WARMUP, REPS, CAP_MS = 2, 15, 30.0
#: Configurations timed per chunk (a Ray task, or a step of progress).
CHUNK = 16
#: Whole networks per batch size for the correction (the model fits one per batch from 4 on), per chunk.
NETWORKS_PER_BATCH, NETWORK_CHUNK = 8, 4
#: The correction's networks are drawn at most this large (ResNet-50's 4.1G MACs an image, and some room).
MAX_NETWORK_MACS = 4.5e9
#: Of the correction's networks, this many are the cheapest drawn ones again at 1/SHRINK of their input
#: size (at least 32 px): a network of CIFAR's size. Fitted on the spaces' ImageNet-size draws alone, a
#: per-batch correction's constant (4.3-4.6 ms at batch 8 on ONNX Runtime) doubled plain-20's prediction.
SHRUNK_NETWORKS, SHRINK = 2, 4
#: Perturbations: log-scale spread of the base stream's and of an adaptive round's, and the base stream's
#: share of perturbed copies.
BASE_SPREAD, ROUND_SPREAD, PERTURBED_SHARE = math.log(2.0), math.log(1.35), 0.3
#: Out-of-fold relative error above which a configuration's neighbourhood is sampled more; the worst first by
#: relative error x min(ms, RANK_MS): the milliseconds an error costs a network, per second of timing (a
#: kernel above RANK_MS takes a few calls of its own ms to time, a smaller one mostly its session's setup).
HIGH_ERROR, RANK_MS = 0.1, 10.0
MAX_SIDE = 512
#: Candidates of each space whose configurations are scanned, with the zoo's, for each kind's extremes
#: (Sampler.extremes), and the most work (calibration.work) of an extreme timed first: 4G, ResNet-50's MACs in
#: one kernel.
EXTREME_DRAWS, EXTREME_MAX_WORK = 64, 4e9


@dataclass
class CalibrationRequest:
    """What `archgen calibrate` was asked: the backend and conditions to model, the spaces to cover, the time
    to take, and where to time."""

    backend: str
    output: Path
    spaces: list[str] = field(default_factory=list)  # empty: every bundled space
    minutes: float = DEFAULT_MINUTES
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8])
    dtype: str = "float32"
    layout: str = "nchw"
    device: str = "cpu"
    ray: bool = False
    ray_address: Optional[str] = None  # implies ray
    seed: int = 0
    max_configurations: Optional[int] = None  # stop after this many, even with time left
    networks: int = NETWORKS_PER_BATCH  # whole networks per batch size, for the correction

    def check(self) -> None:
        """Refuse what cannot work (UserError), before anything is sampled or timed."""
        from archgen.bench.kernel_units import DTYPES, LAYOUTS, placement_problem
        from archgen.bench.runner import missing_runtime

        if self.backend not in BACKENDS:
            why = (" torch.compile has no kernel rule: Inductor chooses its kernels per graph, fusing across "
                   "what the other backends run as separate kernels, so kernels timed alone would not add up to "
                   "its pass; time it whole with archgen bench --backends compile." if self.backend == "compile"
                   else "")
            raise UserError(f"--backend '{self.backend}': calibrate models {', '.join(BACKENDS)}.{why}")
        if not (isinstance(self.minutes, (int, float)) and 0 < self.minutes <= MAX_MINUTES):
            raise UserError(f"--minutes must be more than 0 and at most {MAX_MINUTES} (a day), not {self.minutes}; "
                            f"{DEFAULT_MINUTES:g} (the default) fits a 2-core CPU, and more time times more "
                            "configurations.")
        if self.output.suffix.lower() != ".json":
            raise UserError(f"--output '{self.output}' must end in .json: a latency model is a JSON file.")
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise UserError(f"--batch-sizes takes positive integers, not {self.batch_sizes}.")
        if self.dtype not in DTYPES or self.layout not in LAYOUTS:
            raise UserError(f"--dtype takes one of {', '.join(DTYPES)} and --layout one of {', '.join(LAYOUTS)} "
                            f"(got {self.dtype} and {self.layout}).")
        problem = placement_problem(self.backend, self.dtype, self.layout, self.device)
        if problem:
            raise UserError(f"{problem}: calibrate with --dtype float32 --layout nchw for a runtime, and --device "
                            "cpu or cuda (openvino: cpu).")
        if self.max_configurations is not None and self.max_configurations < 1:
            raise UserError(f"--max-configurations must be 1 or more, not {self.max_configurations}.")
        if self.networks < 1:
            raise UserError(f"--networks must be 1 or more (the model scales its kernel sums to whole passes "
                            f"by them; 4 a batch size or more fit one scale per batch size), not {self.networks}.")
        missing = missing_runtime(self.backend)
        if missing:
            raise UserError(f"{missing}.")

    def space_names(self) -> list[str]:
        from archgen.design.space import bundled_spaces

        return list(self.spaces) or bundled_spaces()


class Progress(NamedTuple):
    """Where a calibration is: its phase ('networks', 'kernels', 'fitting'), how many networks or
    configurations are timed, the seconds spent and the budget, and a word on the phase."""

    phase: str
    done: int
    elapsed_s: float
    budget_s: float
    note: str = ""


def sampled(space: str, n: int, seed: int) -> list[dict]:
    """N candidates of the space that meet its counted constraints (as archgen sample draws them), as plain
    spec mappings: the configurations a search of the space will meet most."""
    from archgen.design.evaluate import Evaluator, Rejections
    from archgen.design.figures import PREDICTED
    from archgen.design.sample import sample
    from archgen.design.space import load_space

    loaded = load_space(space)
    counted = [c for c in loaded.constraints if not c.figures & PREDICTED]
    verdicts = sample(loaded, n, seed, Evaluator(loaded, counted), Rejections())
    return [loaded.written(v.values, f"{loaded.name}_{k}", f"sampled from {loaded.name} (seed {seed}) by archgen "
                                                           f"calibrate: {loaded.describe(v.values)}")
            for k, v in enumerate(verdicts)]


# ---------------------------------------------------------------------------------------------------------
# what to time


def perturb(u: KernelUnit, rng: random.Random, spread: float) -> KernelUnit:
    """A neighbour of the configuration that the same kind could meet: its channels (a grouped conv's group
    count, or its group width in steps of 8, so that groups of other alignments are timed too) or its input
    size scaled by up to exp(+-spread), kept valid for its kind (archgen.bench.unit_kinds)."""
    kind = UNIT_KINDS[u.kind]
    f = math.exp(rng.uniform(-spread, spread))
    if rng.random() < 0.5 and not (kind.reads_vector or kind.writes_vector):  # a map's side, not the head's
        side = max(kind.min_side(u), min(MAX_SIDE, int(round(u.h * f))))
        multiple = kind.side_multiple(u)
        side -= side % multiple
        w = side if u.w == u.h else max(1, min(MAX_SIDE, int(round(u.w * f))))
        return u._replace(h=side, w=w - w % multiple or multiple)
    return kind.rechannel(u, f, rng, spread)


def work(u: KernelUnit) -> float:
    """A configuration's multiply-adds (a conv's, as if every kind were one) or elements moved, whichever is
    more: what its time grows with."""
    macs = u.batch * u.h * u.w * u.c_in * u.c_out / u.groups * u.k * u.k / (u.stride * u.stride)
    return max(macs, u.batch * u.h * u.w * (u.c_in + u.c_out))


class Sampler:
    """Kernel configurations to time, each once, in the order they are worth timing: the zoo's and the spaces'
    networks in turn, with perturbed copies mixed in; and neighbourhoods of those the model predicts worst.
    A perturbed copy is kept within the work of the largest real configuration of its kind seen so far, so
    that spreading the ranges never times a kernel no network has (one of minutes)."""

    def __init__(self, backend: str, spaces: Sequence[str], batch_sizes: Sequence[int], dtype: str, layout: str,
                 seed: int, nchwc_block: int, zoo: Optional[Sequence[str]] = None) -> None:
        from archgen.grammar.loader import bundled_names

        self.backend, self.spaces, self.batch_sizes = backend, list(spaces), list(batch_sizes)
        #: The specs whose configurations are timed beside the spaces' (default: every bundled spec).
        self.zoo = sorted(bundled_names() if zoo is None else zoo)
        self.dtype, self.layout, self.seed = dtype, layout, seed
        #: The timing machine's (kernel_units groups by it, and a Ray head may have another CPU).
        self.nchwc_block = nchwc_block
        self.rng = random.Random(seed)
        self.seen: set[KernelUnit] = set()
        self.largest: dict[str, float] = {}
        #: Handed out and not timed (a chunk the clock cut short): offered again first by the base stream.
        self.returned: list[KernelUnit] = []

    def networks(self) -> Iterator[str | dict]:
        """The zoo's specs (shuffled) and each space's candidates, taken in turn, without end while a space
        has candidates to draw."""
        zoo = list(self.zoo)
        random.Random(self.seed).shuffle(zoo)
        draws: list[Iterator[dict]] = [self._draws(space) for space in self.spaces]
        sources: list[Iterator[str | dict]] = [iter(zoo), *draws]
        while sources:
            for source in list(sources):
                item = next(source, None)
                if item is None:
                    sources.remove(source)
                else:
                    yield item

    def _draws(self, space: str) -> Iterator[dict]:
        for k in range(1000):
            batch = sampled(space, 8, self.seed * 1000 + k)
            if not batch:
                return
            yield from batch

    def units(self, network: str | dict) -> list[KernelUnit]:
        """The network's configurations at every batch size (names dropped), in order."""
        from archgen.bench.kernel_units import kernel_units

        return [u._replace(names=()) for batch in self.batch_sizes
                for u in kernel_units(network, self.backend, batch, self.dtype, self.layout,
                                      nchwc_block=self.nchwc_block)]

    def fresh(self, units: Iterable[KernelUnit]) -> list[KernelUnit]:
        """Those not handed out yet, now marked as handed out."""
        out = []
        for u in units:
            if u not in self.seen:
                self.seen.add(u)
                out.append(u)
        return out

    def real(self, units: Iterable[KernelUnit]) -> list[KernelUnit]:
        """Configurations of real networks not handed out yet, now handed out; each kind's largest bounds its
        perturbed copies."""
        out = self.fresh(units)
        for u in out:
            self.largest[u.kind] = max(self.largest.get(u.kind, 0.0), work(u))
        return out

    def extremes(self) -> list[KernelUnit]:
        """Over the zoo and the first EXTREME_DRAWS candidates of each space (those the base stream takes
        first), the configurations at either end of each kind's ranged features (latency_model.RANGED), the
        cheapest of those that reach it, not handed out yet, now handed out: timed first, so that the ranges a
        model is calibrated on span what a search of the spaces and the zoo's networks meet. Without the
        spaces' ends an 8-minute ONNX Runtime calibration had reached group convs of at most 37 groups, and a
        RegNetX-400MF search flagged 774 of its 1,144 candidates extrapolated, their group convs of up to 125
        groups; without the zoo's, a 5-minute one had timed no act below 24 channels and predicted 16.7 us for
        a CIFAR network's 32-channel 16 x 16 act, which takes 5-6 us alone (6.1 us with them; AVX2 VM,
        2026-12-04). An end of more than EXTREME_MAX_WORK is left to the base stream: taken as ends too, the
        spaces' largest kernels (ResNeXt's 32 x 1000-channel convs, seconds a call) took 77 s of an 8-minute run
        and left the counts of extrapolated candidates in four spaces' searches as they were."""
        from archgen.bench.latency_model import RANGED_AT, feature_matrix

        by_kind: dict[str, dict[KernelUnit, None]] = {}
        scanned = itertools.chain(self.zoo, *(itertools.islice(self._draws(space), EXTREME_DRAWS)
                                              for space in self.spaces))
        for network in scanned:
            for u in self.units(network):
                by_kind.setdefault(u.kind, {})[u] = None
        ends: dict[KernelUnit, None] = {}
        for units in by_kind.values():
            cheapest_first = sorted(units, key=work)  # argmin and argmax take the first of equals
            x = feature_matrix(cheapest_first)[:, RANGED_AT]
            for i in (*x.argmin(0), *x.argmax(0)):
                end = cheapest_first[int(i)]
                if work(end) <= EXTREME_MAX_WORK:
                    ends[end] = None
        return self.real(ends)

    def base(self) -> Iterator[KernelUnit]:
        """The networks' new configurations, each followed by a perturbed copy at PERTURBED_SHARE of them; any
        handed back untimed first."""
        for network in self.networks():
            for u in self.real(self.units(network)):
                while self.returned:
                    yield self.returned.pop(0)
                yield u
                if self.rng.random() < PERTURBED_SHARE:
                    yield from self.fresh(self._within([perturb(u, self.rng, BASE_SPREAD)]))

    def around(self, worst: Sequence[KernelUnit], n: int) -> list[KernelUnit]:
        """Up to n new neighbours of the worst-predicted configurations, worst first: a small perturbation, and
        the configuration at the other batch sizes."""
        out: list[KernelUnit] = []
        for u in worst:
            near = [perturb(u, self.rng, ROUND_SPREAD), perturb(u, self.rng, ROUND_SPREAD)]
            near += [u._replace(batch=b) for b in self.batch_sizes if b != u.batch]
            new = list(dict.fromkeys(v for v in self._within(near) if v not in self.seen))
            out += self.fresh(new[:n - len(out)])  # those past n stay unseen, for a later round or network
            if len(out) >= n:
                break
        return out

    def _within(self, units: list[KernelUnit]) -> list[KernelUnit]:
        return [u for u in units if work(u) <= self.largest.get(u.kind, 0.0)]


def correction_networks(spaces: Sequence[str], n: int, seed: int, minutes: float = DEFAULT_MINUTES) -> list[dict]:
    """n networks drawn from the spaces in turn (seeded apart from the kernels' draws), for the correction from
    isolated kernels to whole passes: each space's draws of at most MAX_NETWORK_MACS (its cheapest draw where it
    has none), so that timing them whole takes a small share of the run; ordered cheapest, dearest, next
    cheapest, ..., so that the first few, all a short run may time, still span the sizes. A run shorter than
    the default draws them smaller in proportion: the first chunk is timed whatever it costs (a fit needs
    networks), and one holding a 4.6 GMACs network took a 1-minute calibration to 2.7 minutes. From 4 networks
    on, SHRUNK_NETWORKS of them are the cheapest draws again at a CIFAR network's size (`_shrunk`), so that the
    correction's constant is fitted on small passes too, not extrapolated to them."""
    import archgen

    largest = MAX_NETWORK_MACS * min(1.0, minutes / DEFAULT_MINUTES)
    pools = []
    for space in spaces:
        draws = sorted(((archgen.profile(spec).macs, k, spec) for k, spec in enumerate(sampled(space, n, seed + 7919))),
                       key=lambda d: d[:2])
        kept = [d for d in draws if d[0] <= largest] or draws[:1]
        pools.append(sorted(kept, key=lambda d: d[1]))
    shrunk = min(SHRUNK_NETWORKS, n // 4)
    chosen = sorted([pool[k] for k in range(n) for pool in pools if k < len(pool)][:n - shrunk], key=lambda d: d[0])
    chosen = [(0, -1, _shrunk(spec)) for _, _, spec in chosen[:shrunk]] + chosen  # the cheapest of all
    spread = [chosen[i // 2] if i % 2 == 0 else chosen[-1 - i // 2] for i in range(len(chosen))]
    return [spec for _, _, spec in spread]


def _shrunk(spec: dict) -> dict:
    """The spec at 1/SHRINK of its input size (at least 32 px), named for it."""
    import archgen

    given = archgen.load_spec(spec).doc.input
    size = max(32, given.size // SHRINK)
    return {**spec, "name": f"{spec.get('name', 'network')}_{size}px",
            "input": {"channels": given.channels, "size": size, "classes": given.classes}}


# ---------------------------------------------------------------------------------------------------------
# where to time


class _Timer:
    """Times chunks of configurations and lists of networks: in this process, or as Ray tasks pinned one per node
    at a time, each with all of that node's CPUs (as a run there would have them). The whole networks and the
    machine the model records run on the first node, so that the correction and the device are the kernels'
    where the nodes are alike (a model describes one kind of machine: give a cluster of one)."""

    def __init__(self, backend: str, device: str, ray_nodes: Sequence[tuple[str, int]] = ()) -> None:
        self.backend, self.device, self.nodes = backend, device, list(ray_nodes)

    def _task(self, fn: Callable, node: tuple[str, int]) -> Any:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        node_id, cpus = node
        return ray.remote(fn).options(num_cpus=cpus, num_gpus=1 if self.device == "cuda" else 0, max_retries=2,
                                      scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False))

    def chunks(self, chunks: Iterable[list[KernelUnit]], more: Callable[[], bool]
               ) -> Iterator[tuple[list[KernelUnit], list[float]]]:
        """Each chunk (what of it was timed) with its times as it finishes; nothing is started once more() is
        False. A chunk whose task failed (a node lost) comes back with NaN times, as a configuration the runtime
        refuses does here."""
        from archgen.bench.kernel_timing import time_units

        args = dict(warmup=WARMUP, reps=REPS, cap_ms=CAP_MS)
        if not self.nodes:  # here the clock is read before each configuration, not only each chunk
            for chunk in chunks:
                times: list[float] = []
                for u in chunk:
                    if not more():
                        break
                    times += time_units([u], self.backend, self.device, **args)
                if times:
                    yield chunk[:len(times)], times
                if len(times) < len(chunk):
                    return
            return
        import ray

        free = list(self.nodes)
        pending: dict[Any, tuple[list[KernelUnit], tuple[str, int]]] = {}
        source = iter(chunks)
        while True:
            while free and more():
                chunk = next(source, None)
                if chunk is None:
                    break
                node = free.pop()
                pending[self._task(time_units, node).remote(chunk, self.backend, self.device, **args)] = chunk, node
            if not pending:
                return
            [ready], _ = ray.wait(list(pending), num_returns=1)
            chunk, node = pending.pop(ready)
            free.append(node)
            try:
                times = ray.get(ready)
            except ray.exceptions.RayError:
                times = [math.nan] * len(chunk)
            yield chunk, times

    def networks(self, specs: list[dict], batches: list[int], dtype: str, layout: str) -> dict[int, list[float]]:
        from archgen.bench.kernel_timing import time_network_batches

        args = dict(rounds=3, reps=3, dtype=dtype, layout=layout)
        if not self.nodes:
            return time_network_batches(specs, self.backend, batches, self.device, **args)
        import ray

        return ray.get(self._task(time_network_batches, self.nodes[0]).remote(specs, self.backend, batches,
                                                                              self.device, **args))

    def machines(self) -> list[dict]:
        """What identifies each node's machine and libraries (latency_model.machine); here, this one's."""
        from archgen.bench.latency_model import machine

        if not self.nodes:
            return [machine(self.backend, self.device)]
        import ray

        return ray.get([self._task(machine, node).remote(self.backend, self.device) for node in self.nodes])

    def machine(self) -> dict:
        """The machine the model records: the first node's, which times the whole networks."""
        return self.machines()[0]


def unlike_nodes(machines: Sequence[dict]) -> list[str]:
    """How each node's machine differs from the first's, in words ('cores 8 on node 2, 2 on node 1'): a
    model fitted on kernels timed on unlike nodes would describe none of them."""
    from archgen.bench.latency_model import COMPARED

    first = machines[0]
    return [f"{key} {m.get(key)} on node {i}, {first.get(key)} on node 1" for i, m in enumerate(machines[1:], 2)
            for key in COMPARED if m.get(key) != first.get(key)]


def _ray_timer(backend: str, device: str) -> _Timer:
    """A Ray timer over the cluster's alive nodes that have CPUs (a head node started with none times
    nothing)."""
    import ray

    nodes = [(n["NodeID"], int(n["Resources"]["CPU"])) for n in ray.nodes()
             if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= 1]
    if not nodes:
        raise UserError("the Ray cluster has no alive node with a CPU to time on; start one with ray start "
                        "--num-cpus N, or calibrate here without --ray.")
    timer = _Timer(backend, device, nodes)
    unlike = unlike_nodes(timer.machines())
    if unlike:
        raise UserError(f"the Ray cluster's nodes are not one kind of machine ({'; '.join(unlike[:3])}), and a "
                        "latency model describes one: calibrate on a cluster of alike nodes (or one node), or "
                        "here without --ray.")
    return timer


# ---------------------------------------------------------------------------------------------------------
# the run


@dataclass
class _Run:
    """A calibration under way: the clock, what was timed, and the progress callback."""

    request: CalibrationRequest
    timer: _Timer
    progress: Callable[[Progress], None]
    #: What identifies the machine that times (latency_model.machine), which the model records.
    machine: dict = field(default_factory=dict)
    start: float = field(default_factory=time.monotonic)
    samples: list[tuple[KernelUnit, float]] = field(default_factory=list)
    failed: int = 0
    rounds: list[dict] = field(default_factory=list)

    @property
    def budget(self) -> float:
        return self.request.minutes * 60

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    @property
    def nchwc_block(self) -> int:
        """The timing machine's ONNX Runtime NCHWc block (0 for the backends that have none)."""
        return int(self.machine.get("nchwc_block", 0))

    def say(self, phase: str, done: int, note: str = "") -> None:
        self.progress(Progress(phase, done, self.elapsed(), self.budget, note))

    def full(self) -> bool:
        cap = self.request.max_configurations
        return cap is not None and len(self.samples) + self.failed >= cap

    def time(self, units: Iterable[KernelUnit], until: float, note: str,
             returned: Optional[list[KernelUnit]] = None) -> int:
        """Time the configurations (in chunks) until the clock reaches `until` or the cap; how many were. Those
        taken from `units` and not timed (the rest of a chunk the clock cut short) go to `returned`, so that a
        sampler that marked them handed out offers them again."""
        before = len(self.samples) + self.failed
        cap = self.request.max_configurations
        room = None if cap is None else cap - before
        handed: list[KernelUnit] = []

        def chunked() -> Iterator[list[KernelUnit]]:
            chunk: list[KernelUnit] = []
            for u in units:
                if room is not None and len(handed) >= room:
                    break
                chunk.append(u)
                handed.append(u)
                if len(chunk) == CHUNK:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk

        started = bool(self.samples)

        def more() -> bool:  # a first chunk whatever the clock says, so that a fit has something to fit
            nonlocal started
            go = not started or (self.elapsed() < until and not self.full())
            started = True
            return go

        timed: set[KernelUnit] = set()
        for chunk, times in self.timer.chunks(chunked(), more):
            for u, ms in zip(chunk, times):
                timed.add(u)
                if math.isfinite(ms) and ms > 0:
                    self.samples.append((u, ms))
                else:
                    self.failed += 1
            self.say("kernels", len(self.samples), note)
        if returned is not None:
            returned += [u for u in handed if u not in timed]
        return len(self.samples) + self.failed - before


class _NetworkSlots:
    """The correction's whole networks, timed in two slots, the first chunk before the kernels and the rest
    after them, so that both sides of the ratio they fit (a pass over its kernels' sum) meet the drift of a
    VM over the run alike: timed only before the kernels, a few minutes' drift skewed every prediction (a
    ratio of 1.9 at batch 1 against 1.1-1.4 measured on the same networks later)."""

    def __init__(self, run: _Run) -> None:
        import archgen

        req = run.request
        self.run = run
        self.specs = correction_networks(req.space_names(), req.networks, req.seed, req.minutes)
        self.macs = [archgen.profile(spec).macs for spec in self.specs]
        self.timed: list[tuple[list[KernelUnit], float]] = []
        #: Each pass as the file records it (batch, MACs an image, ms): what a MACs proxy fitted on the
        #: calibration reads (benchmarks/latency_bench.py sets the model against one).
        self.passes: list[dict[str, float]] = []
        self.next = 0
        self.per_mac = 0.0  # seconds a MAC of network took to time, from the chunks timed so far

    def time(self, until: float, chunks: Optional[int] = None) -> None:
        """Time chunks of the networks left (at most `chunks` of them) while the next one fits before `until` at
        the seconds per MAC the ones before took (the first chunk whatever it takes: a fit needs networks, and
        a short run draws them smaller; see correction_networks). Sized from one small network alone instead,
        the first chunk never fitted: a network's build and export do not shrink with its MACs, and a 5-minute
        calibration timed one network."""
        from archgen.bench.kernel_units import kernel_units

        run, req = self.run, self.run.request
        if not self.next:
            run.say("networks", 0, f"{len(self.specs)} drawn from the spaces, at batch "
                                   f"{', '.join(map(str, req.batch_sizes))}")
        for _ in range(len(self.specs) if chunks is None else chunks):  # a chunk holds at least one network
            if self.next >= len(self.specs) or (self.next and run.elapsed() + self.reserve() > until):
                break
            chunk = self.specs[self.next:self.next + NETWORK_CHUNK]
            started = run.elapsed()
            macs = self.macs[self.next:self.next + NETWORK_CHUNK]
            for batch, times in run.timer.networks(chunk, req.batch_sizes, req.dtype, req.layout).items():
                self.timed += [(kernel_units(spec, req.backend, batch, req.dtype, req.layout,
                                             nchwc_block=run.nchwc_block), ms)
                               for spec, ms in zip(chunk, times)]
                self.passes += [{"batch": batch, "macs": m, "ms": ms} for m, ms in zip(macs, times)]
            self.per_mac = (run.elapsed() - started) / max(sum(macs), 1)
            self.next += len(chunk)
            run.say("networks", len(self.timed) // len(req.batch_sizes))

    def reserve(self) -> float:
        """The seconds the next chunk should take."""
        return self.per_mac * sum(self.macs[self.next:self.next + NETWORK_CHUNK])


def _kernels(run: _Run, sampler: Sampler, until: float) -> None:
    """The zoo's and the spaces' extremes (Sampler.extremes), then the base stream until FIRST_ROUND_SHARE of the kernel
    time, then adaptive rounds of a third of the time left (a minute at least): cross-validate, then time the
    worst-predicted configurations' neighbourhoods (half of what the round can time) before more of the base
    stream."""
    from archgen.bench.latency_fit import cross_validate

    base = sampler.base()
    first = run.elapsed() + (until - run.elapsed()) * FIRST_ROUND_SHARE
    n = run.time(itertools.chain(sampler.extremes(), base), first, "round 1: the zoo and the spaces",
                 sampler.returned)
    run.rounds.append({"round": 1, "timed": n, "s": round(run.elapsed(), 1)})
    while run.elapsed() < until and not run.full() and run.samples:
        t0 = time.monotonic()
        errors = cross_validate(run.samples)
        cv_s = time.monotonic() - t0
        left = until - run.elapsed()
        if left < 3 * cv_s:  # another round would be mostly cross-validation
            break
        round_s = left if left < 120 else max(60.0, left / 3)
        rate = len(run.samples) / max(run.elapsed(), 1e-9)
        ranked = sorted(zip(run.samples, errors), key=lambda s: -abs(s[1]) * min(s[0][1], RANK_MS))
        worst = [u for (u, _), e in ranked if abs(e) > HIGH_ERROR]
        near = sampler.around(worst, max(CHUNK, int(rate * round_s / 2)))
        k = len(run.rounds) + 1
        n = run.time(itertools.chain(near, base), run.elapsed() + round_s,
                     f"round {k}: {len(worst)} predicted beyond 10%", sampler.returned)
        run.rounds.append({"round": k, "timed": n, "near_worst": len(near), "beyond_10": len(worst),
                           "cross_validation_s": round(cv_s, 1), "s": round(run.elapsed(), 1)})
        if n == 0:
            break


def _thin(configurations: int, networks: int, elapsed_s: float, budget_s: float, cap: Optional[int],
          asked_networks: int) -> str:
    """A warning, in a sentence, for a run that fitted on too little to trust or ran well past --minutes (a
    budget too short for this machine: each kind of kernel needs tens of samples, the correction a few
    networks); empty when neither."""
    short = []
    if configurations < MIN_CONFIGURATIONS and (cap is None or configurations < cap):
        short.append(f"{quantity(configurations, 'kernel configuration')} (a model needs a few hundred)")
    if networks < min(MIN_NETWORKS, asked_networks):
        short.append(f"{quantity(networks, 'whole network')} (the correction needs {MIN_NETWORKS} or more)")
    over = elapsed_s > budget_s * 1.25
    if not short and not over:
        return ""
    took = f"took {elapsed_s / 60:.1f} of the {budget_s / 60:g} minutes asked" if over else ""
    rests = f"rests on only {' and '.join(short)}" if short else ""
    return (f"warning: this calibration {' and '.join(p for p in (took, rests) if p)}; its predictions will be "
            f"rough. Give it more --minutes (the default is {DEFAULT_MINUTES:g}).")


def _placement(request: CalibrationRequest) -> "Placement":
    """This machine, or the Ray cluster asked for, with the device asked for (UserError where it has none)."""
    from archgen.bench.device import Placement, place, require_device

    if not (request.ray or request.ray_address is not None):
        require_device(request.device, "calibrate on a machine with one (--device cuda), or this CPU with --device "
                                       "cpu.")
        return Placement(request.device)
    placement = place(request.device == "cuda", True, request.ray_address)
    if placement.device != request.device:
        placement.close()
        raise UserError(f"--device {request.device}, but {placement.ray} has {placement.device} workers.")
    return placement


def run_calibration(request: CalibrationRequest, progress: Callable[[Progress], None] = lambda p: None,
                    say: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """The latency model (the DEVICE.json document of latency_fit.fit) of the request's backend, timed here
    or on Ray within request.minutes; `progress` follows every chunk timed, `say` hears where it runs."""
    from archgen.bench.latency_fit import fit

    request.check()
    spaces = request.space_names()
    for space in spaces:
        sampled(space, 1, request.seed)  # a bad space is a SpecError before anything is timed
    placement = _placement(request)
    try:
        if placement.ray:
            say(f"archgen calibrate on {placement.ray}")
        timer = _ray_timer(request.backend, request.device) if placement.ray else \
            _Timer(request.backend, request.device)
        run = _Run(request, timer, progress, timer.machine())
        budget = run.budget
        networks = _NetworkSlots(run)
        networks.time(budget * NETWORK_SHARE / 2, chunks=1)
        network_s = run.elapsed()
        sampler = Sampler(request.backend, spaces, request.batch_sizes, request.dtype, request.layout, request.seed,
                          run.nchwc_block)
        fit_s = max(FIT_S, budget * FIT_SHARE)
        _kernels(run, sampler, budget - fit_s - max(networks.reserve(), budget * NETWORK_SHARE - network_s))
        kernel_s = run.elapsed() - network_s
        networks.time(budget - fit_s)
        network_s = run.elapsed() - kernel_s
        n_networks = len(networks.timed) // len(request.batch_sizes)
        run.say("fitting", len(run.samples), quantity(n_networks, "network"))
        thin = _thin(len(run.samples), n_networks, run.elapsed(), budget, request.max_configurations,
                     request.networks)
        if thin:
            say(thin)
        meta = {"backend": request.backend, "dtype": request.dtype, "layout": request.layout,
                "batch_sizes": request.batch_sizes, "device": run.machine, "spaces": spaces,
                "minutes": request.minutes, "seed": request.seed,
                "timings": {"configurations": len(run.samples), "failed": run.failed, "kernel_s": round(kernel_s, 1),
                            "per_minute": round(len(run.samples) / max(kernel_s, 1e-9) * 60, 1),
                            "networks": n_networks,
                            "network_s": round(network_s, 1),
                            "rounds": run.rounds,
                            "warmup": WARMUP, "reps": REPS, "cap_ms": CAP_MS,
                            "ray": placement.ray},
                "networks": networks.passes}
        doc = fit(run.samples, networks.timed, meta)
        doc["meta"]["timings"]["total_s"] = round(run.elapsed(), 1)
        return doc
    finally:
        placement.close()
