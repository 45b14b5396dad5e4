"""kilnbench: what the benchmark scripts of bench/ share, each piece once.

    models   the model names and sets (the 12 torchvision CNNs, the zoo), where their files
             and caches are, their inputs and calibration samples
    peers    ONNX Runtime, OpenVINO and PyTorch (Inductor, AOTInductor) set up alike: sessions,
             compiles, runners, quantize_static, the AOTInductor cache key
    kiln     the kiln binary (compile, run, bench) and a compiled library through ctypes
    workers  child processes that run one peer each (a crash costs a cell, not the run)
    timing   the peers taking turns: median of round medians, perf.py's interleaved blocks
    report   log lines, error cells, footnotes, number formats, geometric means, output
             differences and cosines
    machine  the machine, package versions, load, date and commit a report states

The scripts import it from bench/ (their own folder is on sys.path). Every module is standard
library only at import time: numpy, onnxruntime, openvino and torch are imported inside the
functions that use them, so that a script's --help stays fast.
"""
