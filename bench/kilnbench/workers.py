"""Child processes that run one peer each, so that a crash or a hang (a signal, not an
exception: OpenVINO compiling densenet121's QDQ graph) costs one cell of a table, not the run.

Two kinds: Worker, a multiprocessing process holding a runner (peers.py, kiln.py) that times
blocks of inferences on request (bench/perf.py); LineWorker, a subprocess answering one line per
request (`run IN OUT`, `time S`; see serve), as OpenVINO (below) and bench/int8.py's PyTorch
workers are. Standard library only at import time.

Run as a script, `workers.py --openvino-worker PATH THREADS` serves OpenVINO on PATH.
"""

import os
import subprocess
import sys
import tempfile
import time
import traceback

if __name__ == "__main__" and not __package__:  # run as a script (PEP 366)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import kilnbench  # noqa: F401

    __package__ = "kilnbench"

from .report import WorkerError, short_error  # noqa: E402
from .timing import median_ms  # noqa: E402


def worker_main(conn, runtime, cfg):
    """Runs in the worker process: set up runtime's runner ("inductor", "aoti", "ort",
    "openvino" or "kiln") on cfg, report, then serve warm-up and block requests."""
    import gc

    from .kiln import KilnRunner
    from .peers import OpenVinoRunner, OrtRunner, TorchRunner

    try:
        if runtime in ("inductor", "aoti"):
            # Before torch is imported: a fresh Inductor cache, so that compile times are cold.
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = cfg["inductor_cache"]
            runner = TorchRunner(cfg, runtime)
        elif runtime == "ort":
            runner = OrtRunner(cfg)
        elif runtime == "openvino":
            runner = OpenVinoRunner(cfg)
        else:
            runner = KilnRunner(cfg)
        reply = {"ok": True, "info": runner.info, "outputs": runner.result()}
        if runtime == "inductor":
            reply["eager"] = runner.eager
        conn.send(reply)
    except BaseException as exc:  # noqa: BLE001 - everything is reported, nothing raised
        conn.send({"ok": False, "error": short_error(exc), "trace": traceback.format_exc()})
        return
    gc.collect()
    gc.disable()
    while True:
        msg = conn.recv()
        try:
            if msg[0] == "quit":
                break
            if msg[0] == "warmup":
                seconds, min_runs = msg[1], msg[2]
                runs, start, estimate = 0, time.perf_counter(), float("inf")
                while runs < min_runs or time.perf_counter() - start < seconds:
                    t = runner.block(1)
                    if runs >= 2:  # the first runs may still be allocating
                        estimate = min(estimate, t)
                    runs += 1
                conn.send({"ok": True, "estimate": estimate, "runs": runs})
            elif msg[0] == "block":
                conn.send({"ok": True, "seconds": runner.block(msg[1])})
        except BaseException as exc:  # noqa: BLE001
            conn.send({"ok": False, "error": short_error(exc), "trace": traceback.format_exc()})


# --------------------------------------------------------------------------------------------
# The parent: workers, checks, timing, report.
# --------------------------------------------------------------------------------------------


class Worker:
    """worker_main(runtime, cfg) in a process of the multiprocessing context ctx; label names
    the runtime in errors, log gets a failed worker's traceback."""

    def __init__(self, ctx, runtime, cfg, label, log):
        self.runtime, self.label, self.log = runtime, label, log
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main, args=(child, runtime, cfg),
                                name=f"perf-{runtime}", daemon=True)
        self.proc.start()
        child.close()

    def died(self):
        """A WorkerError saying how the worker process ended."""
        self.proc.join(5)
        code = self.proc.exitcode
        how = f"exit code {code}"
        if code is not None and code < 0:
            import signal

            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        return WorkerError(f"the {self.label} worker process died ({how})")

    def recv(self, timeout):
        """The worker's next reply; raises WorkerError if it failed, died or timed out."""
        deadline = time.monotonic() + timeout
        while not self.conn.poll(1.0):
            if not self.proc.is_alive():
                # It may have sent something just before exiting.
                if self.conn.poll(0):
                    break
                raise self.died()
            if time.monotonic() > deadline:
                self.kill()
                raise WorkerError(f"no answer within {timeout:.0f} s (worker killed)")
        try:
            reply = self.conn.recv()
        except (EOFError, OSError):
            raise self.died() from None
        if not reply.get("ok"):
            if reply.get("trace"):
                self.log(f"{self.runtime} worker traceback:\n{reply['trace']}")
            raise WorkerError(reply.get("error", "unknown error"))
        return reply

    def ask(self, msg, timeout):
        try:
            self.conn.send(msg)
        except (BrokenPipeError, OSError):
            raise self.died() from None
        return self.recv(timeout)

    def close(self):
        if self.proc.is_alive():
            try:
                self.conn.send(("quit",))
            except (BrokenPipeError, OSError):
                pass
            self.proc.join(10)
        self.kill()

    def kill(self):
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)



# --------------------------------------------------------------------------------------------
# Line workers: one line per request on stdin, one line per answer on stdout.
# --------------------------------------------------------------------------------------------


class LineWorker:
    """A child process (argv) that stays for a model's rounds and answers one line per request
    (see serve), so that a crash (a signal, not an exception: OpenVINO compiling densenet121's
    QDQ graph) costs its entry, not the script. `error` says why it failed, else None. Its
    stderr goes to a file (a pipe nobody reads could fill and block it)."""

    def __init__(self, argv):
        self.log = tempfile.TemporaryFile("w+")
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.error = None

    def ask(self, line):
        if self.error:
            return None
        try:
            self.p.stdin.write(line + "\n")
            self.p.stdin.flush()
            answer = self.p.stdout.readline()
        except BrokenPipeError:
            answer = ""
        if not answer:
            self.p.wait()
            self.log.seek(0)
            lines = [l for l in self.log.read().strip().splitlines() if l.strip()]
            # Killed by a signal: what it printed before says nothing about it.
            why = lines[-1].strip() if lines and self.p.returncode >= 0 else f"exit status {self.p.returncode}"
            self.error = why[:120]
            return None
        return answer.strip()

    def time(self, seconds):
        """The median ms of an inference on the last input over seconds, or None."""
        answer = self.ask(f"time {seconds}")
        return float(answer) if answer else None

    def output(self, inp, out):
        """The output on the input file inp (through the file out), flat, or None."""
        import numpy as np

        return np.load(out).ravel() if self.ask(f"run {inp} {out}") else None

    def close(self):
        if not self.error:
            self.p.stdin.close()
            self.p.wait()
        self.log.close()


class OpenVINO(LineWorker):
    """OpenVINO on an ONNX (or OpenVINO IR) file in a LineWorker (openvino_worker)."""

    def __init__(self, path, threads):
        super().__init__([sys.executable, os.path.abspath(__file__), "--openvino-worker", path, str(threads)])


def worker_channel():
    """In a worker process: the file its answers go to (the original stdout); whatever else
    writes to stdout (a library's messages) goes to stderr."""
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    return channel


def serve(channel, infer, output, load=None):
    """A worker's loop: `run IN OUT` loads input file IN (numpy's load unless given), runs
    infer on it and saves output(its result) to OUT, answering "ok"; `time S` answers the median
    ms of infer on the last input over S seconds."""
    import numpy as np

    load = np.load if load is None else load
    x = None
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "run":
            x = load(args[0])
            np.save(args[1], output(infer(x)))
            print("ok", file=channel, flush=True)
        elif cmd == "time":
            print(median_ms(lambda: infer(x), float(args[0])), file=channel, flush=True)


def openvino_worker(path, threads):
    """Serves OpenVINO (peers.openvino_compile, no stream count) on path."""
    channel = worker_channel()
    import numpy as np
    import openvino as ov

    from .peers import openvino_compile

    compiled, _ = openvino_compile(ov.Core(), path, int(threads))
    request = compiled.create_infer_request()
    serve(channel, lambda x: request.infer({0: x}), lambda r: np.array(r[compiled.output(0)]))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--openvino-worker":
        openvino_worker(*sys.argv[2:])
    else:
        sys.exit(f"usage: {os.path.basename(__file__)} --openvino-worker PATH THREADS")
