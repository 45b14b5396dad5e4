"""The peers Kiln is measured against: ONNX Runtime, OpenVINO and PyTorch (Inductor,
AOTInductor), set up the same way for every benchmark. Standard library only at import time:
onnxruntime, openvino, torch and numpy are imported inside the functions.

Runners (OrtRunner, OpenVinoRunner, TorchRunner, and kiln.KilnRunner) load one model for one
input file (cfg: "onnx", "input_npy", "threads", ...) and offer block(k), the seconds of k
back-to-back inferences, result(), the outputs, and info, what a report says about them.
"""

import datetime
import json
import os
import time

from .machine import cpu_key, dist_version
from .models import build_torch, cache_root, write_atomically
from .report import short_error

# Bump when the AOTInductor recipe changes, so that cached packages are rebuilt.
AOTI_RECIPE = "2"


def ort_session(path, threads=None, optimization=None, sequential=False, cpu_only=True):
    """An ONNX Runtime session of the model file: with threads, intra-op threads = threads and
    inter-op 1; optimization, a GraphOptimizationLevel's name (ORT_ENABLE_ALL, ORT_DISABLE_ALL;
    None: ONNX Runtime's default); sequential, ORT_SEQUENTIAL; cpu_only, the
    CPUExecutionProvider alone (else ONNX Runtime's default providers)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if optimization is not None:
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, optimization)
    if threads is not None:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    if sequential:
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"] if cpu_only else None)


def openvino_compile(core, model, threads, streams=None):
    """OpenVINO's CPU plugin on model (an ov.Model or a file: ONNX or OpenVINO IR), FP32
    throughout (INFERENCE_PRECISION_HINT f32: no bf16/f16 where the CPU has them), PERFORMANCE_HINT
    LATENCY, INFERENCE_NUM_THREADS threads, NUM_STREAMS streams when given. Returns (the
    compiled model, the configuration)."""
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    config = {hints.inference_precision: ov.Type.f32,
              hints.performance_mode: hints.PerformanceMode.LATENCY,
              props.inference_num_threads: threads}
    if streams is not None:
        config[props.num_streams] = streams
    return core.compile_model(model, "CPU", config), config


def quantize_qdq(fp32, qdq, samples):
    """ONNX Runtime's quantize_static of fp32 into qdq (QDQ format, per-channel s8 weights, u8
    activations) calibrated on samples, unless qdq exists."""
    if os.path.exists(qdq):
        return
    from onnxruntime.quantization import quantize_static, CalibrationDataReader, QuantFormat, QuantType

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": s} for s in samples])

        def get_next(self):
            return next(self.it, None)

    quantize_static(fp32, qdq, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def aoti_key():
    """The cache key of AOTInductor packages: torch, torchvision, the CPU and the recipe."""
    v = dist_version
    return f"torch-{v('torch')}_tv-{v('torchvision')}_cpu-{cpu_key()}_r{AOTI_RECIPE}"


def aoti_dir(key):
    """Where the packages of the key are: ${KILN_CACHE:-~/.cache/kiln}/bench/aoti/KEY."""
    return os.path.join(cache_root(), "bench", "aoti", key)


class OrtRunner:
    """ONNX Runtime, CPUExecutionProvider, ORT_ENABLE_ALL, intra-op threads cfg["threads"],
    inter-op 1, sequential; run through an IOBinding onto preallocated outputs."""

    def __init__(self, cfg):
        import numpy as np
        import onnxruntime as ort

        self.name = "ort"
        start = time.perf_counter()
        sess = ort_session(cfg["onnx"], cfg["threads"], "ORT_ENABLE_ALL", sequential=True)
        setup_s = time.perf_counter() - start
        x = np.ascontiguousarray(np.load(cfg["input_npy"]))
        inputs = sess.get_inputs()
        if len(inputs) != 1:
            raise RuntimeError(f"the model has {len(inputs)} inputs; perf.py feeds exactly one")
        first = sess.run(None, {inputs[0].name: x})  # also gives the output shapes
        self.outputs = [np.empty_like(o) for o in first]
        io = sess.io_binding()
        io.bind_cpu_input(inputs[0].name, x)
        for meta, out in zip(sess.get_outputs(), self.outputs):
            io.bind_output(meta.name, "cpu", 0, out.dtype, list(out.shape), out.ctypes.data)
        sess.run_with_iobinding(io)
        self.x, self.sess, self.io = x, sess, io
        self.info = {"session_create_s": round(setup_s, 3), "version": ort.__version__,
                     "providers": sess.get_providers()}

    def block(self, k):
        run, io = self.sess.run_with_iobinding, self.io
        start = time.perf_counter()
        for _ in range(k):
            run(io)
        return time.perf_counter() - start

    def result(self):
        return [o.copy() for o in self.outputs]


class OpenVinoRunner:
    """OpenVINO's CPU plugin on the ONNX file (openvino_compile, one stream); one infer request,
    reused, its input tensor set once on the numpy buffer (shared), outputs shared (not copied)
    while timing."""

    def __init__(self, cfg):
        import numpy as np
        import openvino as ov

        self.name = "openvino"
        core = ov.Core()
        start = time.perf_counter()
        model = core.read_model(cfg["onnx"])
        if len(model.inputs) != 1:
            raise RuntimeError(f"the model has {len(model.inputs)} inputs; perf.py feeds exactly one")
        # FP32 throughout (no bf16/f16 where the CPU has them), one stream, --threads threads.
        compiled, config = openvino_compile(core, model, cfg["threads"], streams=1)
        setup_s = time.perf_counter() - start
        x = np.ascontiguousarray(np.load(cfg["input_npy"]))
        request = compiled.create_infer_request()
        # The input tensor set once, sharing the numpy buffer; outputs stay in OpenVINO's tensors.
        request.set_input_tensor(ov.Tensor(x, shared_memory=True))
        request.infer(share_inputs=True, share_outputs=True)
        self.x, self.compiled, self.request = x, compiled, request
        self.n_out = len(compiled.outputs)
        self.info = {"compile_model_s": round(setup_s, 3), "version": ov.get_version(),
                     "config": {str(k): getattr(v, "to_string", lambda v=v: str(v))()
                                for k, v in ((k, compiled.get_property(str(k))) for k in config)}}

    def block(self, k):
        infer = self.request.infer
        start = time.perf_counter()
        for _ in range(k):
            infer(share_inputs=True, share_outputs=True)
        return time.perf_counter() - start

    def result(self):
        return [self.request.get_output_tensor(i).data.copy() for i in range(self.n_out)]


class TorchRunner:
    """Inductor (torch.compile) or AOTInductor; of build(model name), the module the ONNX file
    was exported from unless given (bench/int8.py gives its PT2E-quantized module)."""

    def __init__(self, cfg, kind, build=None):
        import numpy as np
        import torch

        self.name = kind
        torch.set_num_threads(cfg["threads"])
        torch.set_grad_enabled(False)
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        # The very module (seed 0) that the export wrote to the ONNX file.
        if build is None:
            build = build_torch
        model = build(cfg["model"])
        x = torch.from_numpy(np.ascontiguousarray(np.load(cfg["input_npy"])))
        self.x = x
        self.info = {"torch": torch.__version__, "threads": torch.get_num_threads()}
        if kind == "inductor":
            self.eager = [model(x).numpy().copy()]
            compiled = torch.compile(model)
            start = time.perf_counter()
            compiled(x)
            self.info["compile_s"] = time.perf_counter() - start
            self.fn = compiled
        else:
            self.fn = self._aoti(cfg, model, x)
        self.out = None

    def _aoti(self, cfg, model, x):
        import torch

        path = cfg["aoti_package"]
        meta_path = path + ".json"
        if os.path.exists(path) and os.path.exists(meta_path) and not cfg["fresh_aoti"]:
            with open(meta_path) as f:
                meta = json.load(f)
            self.info.update(compile_s=meta["compile_s"], cached=True, freezing=meta.get("freezing"))
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            built = {"freezing": True}
            start = time.perf_counter()

            def build_package(tmp):
                ep = torch.export.export(model, (x,))
                try:
                    torch._inductor.aoti_compile_and_package(
                        ep, package_path=tmp, inductor_configs={"freezing": True})
                except Exception as exc:  # freezing unsupported here: say so and do without
                    self.info["freezing_error"] = short_error(exc)
                    built["freezing"] = False
                    torch._inductor.config.freezing = False
                    torch._inductor.aoti_compile_and_package(ep, package_path=tmp)
                built["compile_s"] = time.perf_counter() - start

            write_atomically(path, build_package)
            compile_s, freezing = built["compile_s"], built["freezing"]
            meta = {"compile_s": compile_s, "freezing": freezing, "key": cfg["aoti_key"],
                    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
            with open(meta_path, "w") as f:
                json.dump(meta, f, indent=1)
            self.info.update(compile_s=compile_s, cached=False, freezing=freezing)
        start = time.perf_counter()
        runner = torch._inductor.aoti_load_package(path)
        self.info["load_s"] = time.perf_counter() - start
        self.info["package"] = path
        return runner

    def block(self, k):
        fn, x = self.fn, self.x
        start = time.perf_counter()
        for _ in range(k):
            out = fn(x)
        elapsed = time.perf_counter() - start
        self.out = out
        return elapsed

    def result(self):
        out = self.fn(self.x)
        outs = out if isinstance(out, (list, tuple)) else [out]
        return [o.detach().numpy().copy() for o in outs]

