"""Timing: the peers take turns, so that the drift of a shared host (this 2-core VM's speed
moves by up to 2x within minutes) falls on all alike.

- median_ms and take_turns: each runner timed for some seconds per round (median
  per-inference time), the order rotating from round to round; a runner's figure is then the
  median of its round medians (bench/qdq.py, bench/int8.py).
- interleave: bench/perf.py's finer scheme, on workers.Worker processes: a warm-up, then
  rounds of blocks of K back-to-back inferences, K chosen so that a block lasts about --block
  seconds, blocks disturbed by other processes (LoadProbe, from /proc) run again.

Standard library only at import time (numpy inside the functions).
"""

import os
import time

from .report import percentile, short_error


def median_ms(fn, seconds):
    """The median ms of fn() over seconds (at least 10 calls), after 5 calls of warm-up."""
    import numpy as np

    for _ in range(5):
        fn()
    times = []
    t_end = time.time() + seconds
    while time.time() < t_end or len(times) < 10:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def rotation(items, r):
    """items in round r's order: rotated left by r."""
    return items[r % len(items):] + items[: r % len(items)] if items else []


def take_turns(timers, rounds, rotate=True, pause=None):
    """timers: [(key, fn)], fn() giving a figure (ms) or None. In each of rounds rounds every fn
    is called once, in the order of timers (rotated from round to round when rotate), with
    `pause` seconds of sleep after each call when given (the last one's threads go idle).
    Returns {key: [the figures that were not None]}."""
    figures = {key: [] for key, _ in timers}
    for r in range(rounds):
        for key, fn in rotation(timers, r) if rotate else timers:
            v = fn()
            if v is not None:
                figures[key].append(v)
            if pause is not None:
                time.sleep(pause)
    return figures


class LoadProbe:
    """CPU time used by processes other than ours (the parent and its workers) over an interval,
    from /proc: jiffies the machine was busy (steal included) minus our processes' jiffies.
    On another system (no /proc) it reports 0."""

    def __init__(self):
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._start = None

    @staticmethod
    def family(roots):
        """roots and all their descendants (the pids alive now)."""
        children = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    text = f.read()
                ppid = int(text[text.rindex(")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
        out, todo = set(), list(roots)
        while todo:
            pid = todo.pop()
            if pid not in out:
                out.add(pid)
                todo.extend(children.get(pid, ()))
        return sorted(out)

    @staticmethod
    def _busy():
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:9]]
        return sum(vals) - vals[3] - vals[4]  # all but idle and iowait

    @staticmethod
    def _proc(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                text = f.read()
        except OSError:
            return 0
        fields = text[text.rindex(")") + 2:].split()
        return int(fields[11]) + int(fields[12])  # utime + stime, all threads

    def _sample(self, pids):
        try:
            return self._busy() - sum(self._proc(p) for p in pids), time.monotonic()
        except (OSError, ValueError, IndexError):
            return None, time.monotonic()

    def start(self, worker=None):
        """Starts an interval. Foreign: CPU time of the processes other than this one and
        worker and its descendants; without worker, other than this one and all its
        descendants."""
        try:
            if worker is None:
                self._pids = self.family([os.getpid()])
            else:
                self._pids = [os.getpid()] + self.family([worker])
        except OSError:
            self._pids = [os.getpid()] + ([] if worker is None else [worker])
        self._start = self._sample(self._pids)

    def stop(self):
        """Foreign CPUs used since start() (0.5 = half a core on average)."""
        (j0, t0), (j1, t1) = self._start, self._sample(self._pids)
        if j0 is None or j1 is None or t1 <= t0:
            return 0.0
        # A jiffy or two of accounting skew is not load: forgive 2 jiffies.
        return max(0, j1 - j0 - 2) / self.tick / (t1 - t0)

    def wait_quiet(self, limit, max_wait, window=0.5):
        """Waits until a window of `window` seconds has foreign load <= limit. Returns the
        seconds waited, or None when it gave up after max_wait."""
        start = time.monotonic()
        while True:
            self.start()
            time.sleep(window)
            if self.stop() <= limit:
                return time.monotonic() - start
            if time.monotonic() - start > max_wait:
                return None



def quiet(probe, args, what, budget, log):
    """Waits (up to args.quiet_wait seconds, and no more than the model's remaining budget[0])
    until other processes leave the CPUs alone (foreign load at most args.max_foreign); says
    so through log when it waited long or gave up."""
    if budget[0] <= 0:
        return
    limit = min(args.quiet_wait, budget[0])
    waited = probe.wait_quiet(args.max_foreign, limit)
    budget[0] = max(0.0, budget[0] - (limit if waited is None else waited))
    if waited is None:
        log(f"{what}: the machine is still busy after {limit:.0f} s; going on"
            + ("" if budget[0] > 0 else " (no more waiting for this model)"))
    elif waited > 2:
        log(f"{what}: waited {waited:.0f} s for other processes to leave the CPUs")



def interleave(workers, live, R, args, probe, budget, model, labels, log):
    """Times the runtimes live (a list, in table order; a runtime that fails is taken out) on
    their workers: workers.Worker by runtime. First a warm-up (args.warmup seconds, at least 5
    inferences) gives each its block size K (a block lasting about args.block seconds); then,
    for each of args.runs rounds, each runtime in turn (the order rotating from round to round)
    runs a block of K inferences, args.pause seconds apart; K shrinks if a later quiet block
    shows the warm-up was slowed down. A block during which other processes used more than
    args.max_foreign CPUs (probe, a LoadProbe) is run again, up to args.retries times, after
    waiting for quiet (quiet: args.quiet_wait, the model's budget). Writes into R[runtime]:
    block_runs, warmup_runs, ms (the median over rounds of block time / K), p10, p90,
    samples_ms, foreign_cpus, retried_blocks, disturbed_blocks; or error. labels names the
    runtimes in log lines about model."""
    estimate = {}
    quiet(probe, args, f"{model}: before the warm-up", budget, log)
    for rt in list(live):
        try:
            reply = workers[rt].ask(("warmup", args.warmup, 5), args.block_timeout)
        except Exception as exc:  # noqa: BLE001
            R[rt]["error"] = "warm-up: " + short_error(exc)
            live.remove(rt)
            continue
        est = max(reply["estimate"], 1e-6)
        estimate[rt] = est
        R[rt]["block_runs"] = max(1, min(10000, round(args.block / est)))
        R[rt]["warmup_runs"] = reply["runs"]
        log(f"{model}: {labels[rt]} warm ({reply['runs']} runs, ~{est * 1e3:.2f} ms), "
            f"blocks of {R[rt]['block_runs']}")

    # Interleaved rounds. A block during which other processes used more than
    # --max-foreign CPUs is run again (up to --retries times, after waiting for quiet).
    samples = {rt: [] for rt in live}
    foreign = {rt: [] for rt in live}
    retried = {rt: 0 for rt in live}
    for r in range(args.runs):
        for rt in rotation(live, r):
            if R[rt].get("error"):
                continue
            k = R[rt]["block_runs"]
            try:
                for attempt in range(args.retries + 1):
                    if attempt:
                        retried[rt] += 1
                        quiet(probe, args, f"{model}: before retrying a {labels[rt]} block", budget, log)
                    # Only the parent and this worker: the other workers' threads, still
                    # spinning after their block, would disturb this one too.
                    probe.start(workers[rt].proc.pid)
                    reply = workers[rt].ask(("block", k), args.block_timeout)
                    load = probe.stop()
                    time.sleep(args.pause)
                    if load <= args.max_foreign:
                        break
            except Exception as exc:  # noqa: BLE001
                R[rt]["error"] = f"round {r + 1}: " + short_error(exc)
                log(f"{model}: {labels[rt]} failed: {R[rt]['error']}")
                continue
            samples[rt].append(reply["seconds"] / k)
            foreign[rt].append(load)
            # A warm-up disturbed by other processes gives too small blocks: adjust.
            if samples[rt][-1] < estimate[rt] and load <= args.max_foreign:
                estimate[rt] = samples[rt][-1]
                R[rt]["block_runs"] = max(1, min(10000, round(args.block / estimate[rt])))
    for rt in live:
        if R[rt].get("error") or not samples[rt]:
            continue
        ms = [s * 1e3 for s in samples[rt]]
        R[rt].update(ms=percentile(ms, 50), p10=percentile(ms, 10), p90=percentile(ms, 90),
                     samples_ms=[round(v, 4) for v in ms],
                     foreign_cpus=[round(v, 3) for v in foreign[rt]],
                     retried_blocks=retried[rt],
                     disturbed_blocks=sum(1 for v in foreign[rt] if v > args.max_foreign))
