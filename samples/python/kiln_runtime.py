"""kiln_runtime — drive any Kiln-compiled shared library from Python through its C ABI.

Needs only ctypes and numpy: no generated glue. Everything the wrapper needs to know about a
model (its inputs' and outputs' names, element types and shapes) comes from the library's
introspection functions, so one file serves every library Kiln writes.

    import numpy as np
    from kiln_runtime import Library

    lib = Library("out/libdigits.so")          # the C prefix defaults to the file's name: digits
    print(lib.inputs, lib.outputs)             # [Tensor(name='image', dtype=float32, shape=(1, 1, 8, 8))] ...
    with lib.create(threads=1) as model:       # one handle; separate handles may run concurrently
        logits = model.run(image=np.zeros((1, 1, 8, 8), np.float32))["logits"]

Arrays are checked against the model: the dtype must match exactly and the shape must equal
the model's (no silent casts or broadcasts); a mismatch raises KilnError before any call. A
failed call raises KilnError with the status code, its name and the handle's last-error text.
"""
import ctypes
import os
import re
from collections import namedtuple

import numpy as np

__all__ = ["Library", "Model", "KilnError", "Tensor", "ABI_VERSION"]

# BEGIN ABI (generated from Sources/KilnTarget/ABI.swift: KILN_UPDATE_SNAPSHOTS=1 swift test --filter abiTexts)
# The C ABI version this module speaks (the header's NAME_ABI_VERSION).
ABI_VERSION = 1
# NAME_element_type and NAME_status: the numbers are fixed by the ABI.
_TYPE_NAMES = {1: "f32", 2: "f16", 3: "bf16", 4: "s8", 5: "u8", 6: "s32", 7: "s64", 8: "bool"}
_STATUS_NAMES = {0: "OK", 1: "NULL_POINTER", 2: "INVALID_ARGUMENT", 3: "SIZE_MISMATCH", 4: "OUT_OF_MEMORY", 5: "UNSUPPORTED_CPU", 6: "BACKEND", 7: "INTERNAL"}
# END ABI

# The numpy dtype of each element type, by name. bf16 has no numpy dtype: its tensors are
# exchanged as uint16 arrays holding the raw bits.
_DTYPE_OF = {"f32": np.float32, "f16": np.float16, "bf16": np.uint16, "s8": np.int8, "u8": np.uint8,
             "s32": np.int32, "s64": np.int64, "bool": np.bool_}
_DTYPES = {t: _DTYPE_OF[name] for t, name in _TYPE_NAMES.items()}

Tensor = namedtuple("Tensor", "name dtype shape element_type")
Tensor.__doc__ = "An input or output of the model: its name, numpy dtype, shape and the ABI's type name."


class KilnError(RuntimeError):
    """A failed call into a Kiln library: `status` is the C status code (0 never), `status_name`
    its NAME_ERROR_* suffix ("UNKNOWN" for a code newer than this module)."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status
        self.status_name = _STATUS_NAMES.get(status, "UNKNOWN") if status is not None else None


def _prefix_from_path(path):
    base = os.path.basename(path)
    m = re.fullmatch(r"lib(.+?)\.so(\..*)?", base)
    if not m:
        raise KilnError(f"{path}: not a libNAME.so file name; pass name= (the model's C prefix)")
    return m.group(1)


class Library:
    """A Kiln library loaded with ctypes. `name` is the model's C prefix (`kiln compile --name`),
    by default the NAME of libNAME.so."""

    def __init__(self, path, name=None):
        self.path = os.path.abspath(path)
        self.name = name or _prefix_from_path(path)
        try:
            self._lib = ctypes.CDLL(self.path)
        except OSError as e:
            raise KilnError(f"{path}: cannot load: {e}") from None
        self._fn = {}
        c, p, sz, i64p = ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int64)
        signatures = {
            "version": (c, []), "abi_version": (ctypes.c_int, []), "status_string": (c, [ctypes.c_int]),
            "create": (ctypes.c_int, [ctypes.POINTER(p)]), "destroy": (None, [p]), "last_error": (c, [p]),
            "set_num_threads": (ctypes.c_int, [p, ctypes.c_int]),
            "run": (ctypes.c_int, [p, sz, ctypes.POINTER(p), ctypes.POINTER(sz), sz, ctypes.POINTER(p), ctypes.POINTER(sz)]),
        }
        for side in ("input", "output"):
            signatures[f"num_{side}s"] = (sz, [])
            signatures[f"{side}_name"] = (c, [sz])
            signatures[f"{side}_type"] = (ctypes.c_int, [sz])
            signatures[f"{side}_rank"] = (sz, [sz])
            signatures[f"{side}_shape"] = (i64p, [sz])
            signatures[f"{side}_bytes"] = (sz, [sz])
        for short, (restype, argtypes) in signatures.items():
            symbol = f"{self.name}_{short}"
            try:
                f = getattr(self._lib, symbol)
            except AttributeError:
                raise KilnError(f"{path}: no function {symbol}: not a Kiln library of a model named "
                                f"'{self.name}' (pass name= if the prefix differs from the file name)") from None
            f.restype, f.argtypes = restype, argtypes
            self._fn[short] = f
        abi = self._fn["abi_version"]()
        if abi != ABI_VERSION:
            raise KilnError(f"{path}: C ABI version {abi}; this kiln_runtime speaks version {ABI_VERSION}")
        self.version = self._fn["version"]().decode()
        self.inputs = self._tensors("input")
        self.outputs = self._tensors("output")

    def _tensors(self, side):
        out = []
        for i in range(self._fn[f"num_{side}s"]()):
            t = self._fn[f"{side}_type"](i)
            if t not in _DTYPES:
                raise KilnError(f"{self.path}: {side} {i} has element type {t}, unknown to this kiln_runtime")
            rank = self._fn[f"{side}_rank"](i)
            shape_ptr = self._fn[f"{side}_shape"](i)
            shape = tuple(int(shape_ptr[k]) for k in range(rank))
            out.append(Tensor(self._fn[f"{side}_name"](i).decode(), np.dtype(_DTYPES[t]), shape, _TYPE_NAMES[t]))
        return out

    def create(self, threads=None):
        """A new handle (Model); `threads`: its OpenMP thread count (0: OpenMP's default)."""
        return Model(self, threads)

    def status_string(self, status):
        s = self._fn["status_string"](status)
        return s.decode() if s else f"status {status}"

    def __repr__(self):
        return f"Library({self.path!r}, name={self.name!r}, inputs={self.inputs}, outputs={self.outputs})"


class Model:
    """One instance (handle) of a model: create once, run many times, close (or use `with`).
    One handle runs one inference at a time; use one handle per thread."""

    def __init__(self, library, threads=None):
        self.library = library
        self._fn = library._fn
        handle = ctypes.c_void_p()
        status = self._fn["create"](ctypes.byref(handle))
        if status != 0:
            raise KilnError(f"{library.name}_create: {library.status_string(status)}", status)
        self._handle = handle
        self._outputs = [np.empty(t.shape, t.dtype) for t in library.outputs]
        if threads is not None:
            self.set_threads(threads)

    def _check(self, call, status):
        if status != 0:
            detail = self._fn["last_error"](self._handle)
            detail = detail.decode() if detail else ""
            raise KilnError(f"{self.library.name}_{call}: {self.library.status_string(status)}"
                            + (f": {detail}" if detail else ""), status)

    def _live(self):
        if self._handle is None:
            raise KilnError(f"{self.library.name}: this handle is closed")
        return self._handle

    def set_threads(self, threads):
        """OpenMP threads of this handle: 0 (OpenMP's default) or 1 to 1024."""
        self._check("set_num_threads", self._fn["set_num_threads"](self._live(), int(threads)))

    def run(self, *args, **kwargs):
        """Runs one inference. Inputs by position (in the model's order) or by name; returns a
        dict of the outputs by name (new arrays, owned by the caller)."""
        specs = self.library.inputs
        if args and kwargs:
            raise KilnError("pass the inputs either all by position or all by name")
        if args:
            if len(args) != len(specs):
                raise KilnError(f"{self.library.name} takes {len(specs)} input(s), got {len(args)}")
            given = dict(zip((s.name for s in specs), args))
        else:
            unknown = sorted(set(kwargs) - {s.name for s in specs})
            if unknown:
                raise KilnError(f"{self.library.name} has no input named {', '.join(unknown)}; "
                                f"its inputs: {', '.join(s.name for s in specs)}")
            given = kwargs
        arrays = []
        for s in specs:
            if s.name not in given:
                raise KilnError(f"missing input '{s.name}' ({s.element_type}{list(s.shape)})")
            a = given[s.name]
            if not isinstance(a, np.ndarray):
                raise KilnError(f"input '{s.name}': a numpy array is needed, got {type(a).__name__}")
            if a.dtype != s.dtype:
                raise KilnError(f"input '{s.name}': dtype {a.dtype}, the model takes {s.dtype} ({s.element_type})")
            if tuple(a.shape) != s.shape:
                raise KilnError(f"input '{s.name}': shape {tuple(a.shape)}, the model takes {s.shape}")
            arrays.append(np.ascontiguousarray(a))
        handle = self._live()
        n_in, n_out = len(arrays), len(self._outputs)
        ins = (ctypes.c_void_p * n_in)(*[a.ctypes.data for a in arrays])
        in_bytes = (ctypes.c_size_t * n_in)(*[a.nbytes for a in arrays])
        outs = (ctypes.c_void_p * n_out)(*[o.ctypes.data for o in self._outputs])
        out_bytes = (ctypes.c_size_t * n_out)(*[o.nbytes for o in self._outputs])
        self._check("run", self._fn["run"](handle, n_in, ins, in_bytes, n_out, outs, out_bytes))
        return {t.name: o.copy() for t, o in zip(self.library.outputs, self._outputs)}

    def close(self):
        """Frees the handle (again: nothing)."""
        if self._handle is not None:
            self._fn["destroy"](self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
