"""Driving Kiln: the `kiln` binary (compile, run, bench) and a compiled library through ctypes.
Standard library only at import time (numpy inside the functions)."""

import os
import re
import subprocess
import time

from .models import REPO

DEFAULT_BINARY = os.path.join(REPO, ".build/release/kiln")


def binary(env=False):
    """The kiln binary: <repo>/.build/release/kiln, or with env, $KILN when set."""
    return os.environ.get("KILN", DEFAULT_BINARY) if env else DEFAULT_BINARY


def compile_argv(kiln, args, out, name):
    """`kiln compile ARGS -o OUT --name NAME --library shared`."""
    return [kiln, "compile"] + list(args) + ["-o", out, "--name", name, "--library", "shared"]


def compile_library(kiln, args, out, name):
    """`kiln compile ARGS -o OUT --name NAME --library shared`: (library path, its "int8: ..."
    summary line, seconds), or (None, the end of its error, seconds)."""
    t0 = time.time()
    c = subprocess.run(compile_argv(kiln, args, out, name), capture_output=True, text=True)
    seconds = time.time() - t0
    if c.returncode != 0:
        return None, c.stderr.strip()[-200:], seconds
    return os.path.join(out, f"lib{name}.so"), next((l for l in c.stdout.splitlines() if l.startswith("int8:")), ""), seconds


def input_args(inp):
    """`--input` arguments: inp a file (a model of one input) or a list of NAME=FILE."""
    return [a for i in ([inp] if isinstance(inp, str) else inp) for a in ("--input", i)]


def run_output(kiln, lib, inp, out, threads, name="output"):
    """The library's output `name` on the input file inp, or the NAME=FILE list inp (`kiln run`,
    written into the directory out), flattened."""
    import numpy as np

    subprocess.run([kiln, "run", lib] + input_args(inp) + ["--output-dir", out, "--threads", str(threads)],
                   check=True, capture_output=True)
    return np.load(os.path.join(out, output_file_name(name) + ".npy")).ravel()


def bench_ms(kiln, lib, threads, seconds, inp=()):
    """The library's median ms over seconds (`kiln bench`; on the input file or NAME=FILE list
    inp, or zeros)."""
    b = subprocess.run([kiln, "bench", lib, "--threads", str(threads), "--seconds", str(seconds)] + input_args(inp),
                       capture_output=True, text=True, check=True)
    med = re.search(r"median\s+([0-9.]+)", b.stdout)
    return float(med.group(1)) if med else float("nan")


def output_file_name(name):
    """The file name (without .npy) `kiln eval` gives an output: chars other than
    [A-Za-z0-9._-] become '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


class KilnRunner:
    """A compiled library, lib<model>.so (cfg["kiln_lib"], symbol prefix cfg["kiln_name"]),
    through ctypes: NAME_create, NAME_set_num_threads(cfg["threads"]), NAME_run on numpy buffers
    with prebuilt pointer arrays, fed cfg["input_npy"]. A runner as those of peers.py: block(k)
    the seconds of k inferences, result() the outputs, info."""

    def __init__(self, cfg):
        import ctypes

        import numpy as np

        self.name = "kiln"
        lib_path, prefix = cfg["kiln_lib"], cfg["kiln_name"]
        lib = ctypes.CDLL(lib_path)
        c_size, c_int, c_void, c_str = ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p

        def fn(suffix, restype, *argtypes):
            f = getattr(lib, f"{prefix}_{suffix}")
            f.restype = restype
            f.argtypes = list(argtypes)
            return f

        create = fn("create", c_int, ctypes.POINTER(c_void))
        self._destroy = fn("destroy", None, c_void)
        self._last_error = fn("last_error", c_str, c_void)
        set_threads = fn("set_num_threads", c_int, c_void, c_int)
        run = fn("run", c_int, c_void, c_size, ctypes.POINTER(c_void), ctypes.POINTER(c_size),
                 c_size, ctypes.POINTER(c_void), ctypes.POINTER(c_size))
        num = {k: fn(f"num_{k}s", c_size) for k in ("input", "output")}
        name = {k: fn(f"{k}_name", c_str, c_size) for k in ("input", "output")}
        nbytes = {k: fn(f"{k}_bytes", c_size, c_size) for k in ("input", "output")}
        rank = {k: fn(f"{k}_rank", c_size, c_size) for k in ("input", "output")}
        shape = {k: fn(f"{k}_shape", ctypes.POINTER(ctypes.c_int64), c_size) for k in ("input", "output")}
        etype = {k: fn(f"{k}_type", c_int, c_size) for k in ("input", "output")}
        dtypes = {1: np.float32, 2: np.float16, 4: np.int8, 5: np.uint8, 6: np.int32, 7: np.int64, 8: np.bool_}

        def describe(kind, i):
            dims = tuple(shape[kind](i)[d] for d in range(rank[kind](i)))
            code = etype[kind](i)
            if code not in dtypes:
                raise RuntimeError(f"{kind} {i}: element type {code} not supported by perf.py")
            return name[kind](i).decode(), dims, np.dtype(dtypes[code]), nbytes[kind](i)

        x = np.load(cfg["input_npy"])
        n_in, n_out = num["input"](), num["output"]()
        if n_in != 1:
            raise RuntimeError(f"the library has {n_in} inputs; perf.py feeds exactly one")
        in_name, in_dims, in_dtype, in_bytes = describe("input", 0)
        if in_dims != x.shape or in_dtype != x.dtype or in_bytes != x.nbytes:
            raise RuntimeError(f"input {in_name!r} is {in_dtype}{list(in_dims)} ({in_bytes} bytes), "
                               f"the input file {x.dtype}{list(x.shape)}")
        self.x = np.ascontiguousarray(x)
        self.outputs = []
        for i in range(n_out):
            _, dims, dtype, size = describe("output", i)
            out = np.zeros(dims, dtype)
            if out.nbytes != size:
                raise RuntimeError(f"output {i}: {size} bytes for {dtype}{list(dims)}")
            self.outputs.append(out)

        handle = c_void()
        status = create(ctypes.byref(handle))
        if status != 0 or not handle.value:
            raise RuntimeError(f"{prefix}_create failed with status {status}")
        self.handle = handle
        status = set_threads(handle, cfg["threads"])
        if status != 0:
            raise RuntimeError(f"{prefix}_set_num_threads({cfg['threads']}) failed: {self.last_error()}")

        # Everything the call needs, built once: no Python allocation per inference.
        in_ptrs = (c_void * 1)(self.x.ctypes.data)
        in_sizes = (c_size * 1)(self.x.nbytes)
        out_ptrs = (c_void * n_out)(*[o.ctypes.data for o in self.outputs])
        out_sizes = (c_size * n_out)(*[o.nbytes for o in self.outputs])
        self._keep = (in_ptrs, in_sizes, out_ptrs, out_sizes)
        self._run = run
        self._args = (handle, 1, in_ptrs, in_sizes, n_out, out_ptrs, out_sizes)
        self.info = {"library": lib_path}
        self.block(1)  # the outputs that result() reports

    def last_error(self):
        msg = self._last_error(self.handle)
        return msg.decode(errors="replace") if msg else ""

    def block(self, k):
        run, args = self._run, self._args
        start = time.perf_counter()
        for _ in range(k):
            if run(*args):
                break
        else:
            return time.perf_counter() - start
        raise RuntimeError(f"run failed: {self.last_error()}")

    def result(self):
        return [o.copy() for o in self.outputs]

