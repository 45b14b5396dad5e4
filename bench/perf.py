#!/usr/bin/env python3
"""FP32 latency of Kiln's compiled libraries against PyTorch Inductor, AOTInductor, ONNX Runtime and OpenVINO.

    perf.py --kiln-dir DIR [--models a,b,...] [--set cnn12|zoo|all] [--threads 2] [--runs 15]
            [--runtimes inductor,aoti,ort,openvino,kiln] [--out-dir bench/results]

Usually run through bench/perf.sh, which exports the models, compiles them with Kiln into
DIR/<model>/lib<model>.so (timed, DIR/<model>/compile.json) and then calls this script.

Models: --models takes model names and set names, --set one set name (both may be given; the
default is cnn12). The sets: cnn12, the twelve torchvision CNNs of export_models.py (random
weights from torch.manual_seed(0), batch 1, 3x224x224); zoo, the fifteen models of
export_zoo.py (timm, torchvision segmentation, ultralytics YOLO, a U-Net, a CRNN, an ESPCN;
random weights, batch 1, each at its own input size); all, both. Every model is read from
--models-dir as <model>.onnx with its seeded input <model>.input.npy (one input, whatever its
name: "input", or "images" for YOLO). The runtimes (--runtimes, default all five) run with
the same number of threads (OMP_NUM_THREADS is set before anything is imported):

  inductor   torch.compile(model), torch._inductor.config.freezing = True, grad disabled, eval
             mode; its compile time is the first call's. The model is the PyTorch module the
             ONNX file was exported from (export_models.build_torchvision, export_zoo.build_torch);
             not run on the YOLO models (ultralytics' export is not such a module): their cell
             shows "—" with a footnote.
  aoti       torch.export.export + torch._inductor.aoti_compile_and_package (freezing on),
             loaded with aoti_load_package, on the same module (not on YOLO either). Packages
             are cached under ${KILN_CACHE:-~/.cache/kiln}/bench/aoti, keyed by torch,
             torchvision, CPU and model (a zoo model's also by export_zoo.py's hash and timm's
             version); a cached package's compile time is the one measured when it was built.
  ort        ONNX Runtime, CPUExecutionProvider, ORT_ENABLE_ALL, intra-op threads = --threads,
             inter-op 1, sequential; run through an IOBinding onto preallocated outputs.
  openvino   OpenVINO's CPU plugin on the same ONNX file: compile_model with
             INFERENCE_PRECISION_HINT f32, PERFORMANCE_HINT LATENCY, INFERENCE_NUM_THREADS =
             --threads, NUM_STREAMS 1; one infer request, reused, its input tensor set once on
             the numpy buffer (shared), outputs shared (not copied) while timing.
  kiln       lib<model>.so through ctypes: NAME_create, NAME_set_num_threads(--threads),
             NAME_run on numpy buffers with prebuilt pointer arrays.

The peers are Inductor, AOTInductor, ORT and OpenVINO; a model's best peer is the fastest of
those that ran on it. The table gives Kiln/best and Kiln / best of ORT and OpenVINO, the
project's target metric, with their geometric means (over all models, and per set when both
sets ran); perf.json has them under meta.summary.

Each runtime lives in its own worker process (so that a crash or a hang costs one cell of
the table, not the run, and each library brings its own OpenMP runtime as it would in an
application). Each Inductor and AOTInductor compile starts from an empty Inductor cache
(TORCHINDUCTOR_CACHE_DIR), so their compile times are cold, like Kiln's.

Check: Kiln's outputs against ONNX Runtime's, max|kiln - ort| <= 1e-3 * max|ort| per output
(against eager PyTorch when ONNX Runtime failed). A mismatch marks the model FAIL; it is timed
all the same. OpenVINO's, Inductor's and AOTInductor's outputs are checked the same way (a
footnote if off).

Timing is interleaved: every runtime is first warmed up (--warmup seconds, at least 5
inferences); then, for each of --runs rounds, each runtime in turn (the order rotates from
round to round) runs a block of K back-to-back inferences, K chosen from the warm-up so that a
block lasts about --block seconds (K shrinks if a later quiet block shows the warm-up was
slowed down); a short pause (--pause) separates blocks so that the previous
runtime's spinning threads go idle. A runtime's latency is the median over rounds of block
time / K (p10 and p90 kept in perf.json).

Writes OUT_DIR/perf.md (the table, with columns for the runtimes asked for), OUT_DIR/perf.png
(latency relative to the best peer) and OUT_DIR/perf.json (all numbers), and prints the table
and the target metric. A runtime that fails on a model shows "error" with its message in a
footnote; the run goes on. Exit status 1 when Kiln failed or mismatched on a model (after
writing everything), else 0.

Other processes on the machine disturb the numbers (two OpenMP threads on two cores suffer
badly from a third busy process). So the harness reads /proc: before each setup and warm-up it
waits (--quiet-wait, --quiet-budget) until other processes leave the CPUs alone, and a block
during which they used more than --max-foreign CPUs is run again (--retries); the ones that had
to be kept are counted in perf.md.
"""

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# All of kilnbench is stdlib-only at import time.
from kilnbench.machine import dist_version, gxx_version, load_average, machine_info, utc_now  # noqa: E402
from kilnbench.models import MODEL_SETS, TORCHVISION_MODELS, YOLO_MODELS, ZOO_MODELS  # noqa: E402
from kilnbench.models import cache_root, export_script, model_paths, model_set, resolve_models  # noqa: E402
from kilnbench.peers import aoti_dir, aoti_key  # noqa: E402
from kilnbench.report import Notes, compare, fmt_ms, fmt_s, geomean, logger, short_error, words  # noqa: E402
from kilnbench.timing import LoadProbe, interleave, quiet  # noqa: E402
from kilnbench.workers import Worker  # noqa: E402

RUNTIMES = ["inductor", "aoti", "ort", "openvino", "kiln"]
PEERS = ["inductor", "aoti", "ort", "openvino"]
ONNX_PEERS = ["ort", "openvino"]  # the project's target: Kiln against the best of these two
TORCH_RUNTIMES = ["inductor", "aoti"]
LABELS = {"inductor": "Inductor", "aoti": "AOTInductor", "ort": "ORT", "openvino": "OpenVINO", "kiln": "Kiln"}
SETUP_ORDER = ["ort", "openvino", "kiln", "inductor", "aoti"]  # cheap ones first
# The zoo models that Inductor and AOTInductor cannot run: the YOLO exports are ultralytics' own
# (fused, post-processed), not a module built here.
NO_TORCH_MODELS = set(YOLO_MODELS)
NO_TORCH_REASON = "not run: PyTorch runtimes only for the models built in PyTorch here (not the YOLO exports)"
TOLERANCE = 1e-3

log = logger("perf", stamp=True)


def aoti_package_name(model, state):
    """The cached package's file name: a zoo model's also names the source of its module (the
    builders of export_zoo.py) and timm's version; the directory names torch, torchvision, CPU."""
    if model in TORCHVISION_MODELS:
        return f"{model}.pt2"
    return f"{model}-zoo{state['zoo_key']}.pt2"


def bench_model(model, args, ctx, state):
    """Sets up the runtimes for one model, checks and times them. Returns the model's record."""
    rec = {"model": model, "set": model_set(model), "runtimes": {rt: {} for rt in RUNTIMES}}
    R = rec["runtimes"]
    onnx_path, npy_path = model_paths(args.models_dir, model)
    kiln_model_dir = os.path.join(args.kiln_dir, model)
    base_cfg = {
        "model": model, "onnx": onnx_path, "input_npy": npy_path, "threads": args.threads,
        "kiln_lib": os.path.join(kiln_model_dir, f"lib{model}.so"), "kiln_name": model,
        "aoti_package": os.path.join(state["aoti_dir"], aoti_package_name(model, state)),
        "aoti_key": state["aoti_key"], "fresh_aoti": args.fresh_aoti,
    }
    # Kiln's compile record, written by perf.sh.
    compile_json = os.path.join(kiln_model_dir, "compile.json")
    compile_err = os.path.join(kiln_model_dir, "compile.error")
    if os.path.exists(compile_json):
        with open(compile_json) as f:
            R["kiln"]["compile_s"] = json.load(f).get("seconds")
    if os.path.exists(compile_err):
        with open(compile_err, errors="replace") as f:
            R["kiln"]["error"] = "kiln compile failed: " + short_error(f.read())
    elif not os.path.exists(base_cfg["kiln_lib"]):
        R["kiln"]["error"] = f"no library {base_cfg['kiln_lib']} (run bench/perf.sh)"
    if model in NO_TORCH_MODELS:
        for rt in TORCH_RUNTIMES:
            if rt in args.runtimes:
                R[rt]["skipped"] = NO_TORCH_REASON

    workers = {}
    probe = LoadProbe()
    budget = [args.quiet_budget]  # seconds this model may still wait for quiet
    try:
        for rt in SETUP_ORDER:
            if rt not in args.runtimes or R[rt].get("error") or R[rt].get("skipped"):
                continue
            quiet(probe, args, f"{model}: before setting up {LABELS[rt]}", budget, log)
            log(f"{model}: setting up {LABELS[rt]}")
            start = time.monotonic()
            # Each torch worker gets an empty Inductor cache: cold compiles, nothing shared
            # between models or between Inductor and AOTInductor.
            cfg = dict(base_cfg, inductor_cache=os.path.join(state["inductor_cache"], f"{model}-{rt}"))
            try:
                workers[rt] = Worker(ctx, rt, cfg, LABELS[rt], log)
                reply = workers[rt].recv(args.setup_timeout)
            except Exception as exc:  # noqa: BLE001
                R[rt]["error"] = short_error(exc)
                log(f"{model}: {LABELS[rt]} failed: {R[rt]['error']}")
                failed = workers.pop(rt, None)
                if failed is not None:
                    failed.kill()
                continue
            info = reply["info"]
            R[rt]["outputs"] = reply["outputs"]
            R[rt]["info"] = {k: v for k, v in info.items() if k != "compile_s"}
            R[rt]["setup_wall_s"] = round(time.monotonic() - start, 2)
            if "compile_s" in info:
                R[rt]["compile_s"] = info["compile_s"]
            if rt == "aoti":
                R[rt]["compile_cached"] = bool(info.get("cached"))
            if rt == "inductor":
                rec["eager"] = reply["eager"]
            extra = f", compile {info['compile_s']:.1f} s" if "compile_s" in info else ""
            cached = " (cached package)" if info.get("cached") else ""
            log(f"{model}: {LABELS[rt]} ready in {R[rt]['setup_wall_s']:.1f} s{extra}{cached}")

        # Checks against ONNX Runtime (eager PyTorch when ORT failed).
        if "outputs" in R["ort"]:
            ref, ref_name = R["ort"]["outputs"], "ORT"
        elif "eager" in rec:
            ref, ref_name = rec["eager"], "eager PyTorch"
        else:
            ref, ref_name = None, None
        rec["reference"] = ref_name
        for rt in ("kiln", "openvino", "inductor", "aoti"):
            if "outputs" in R[rt] and ref is not None:
                rel = compare(R[rt]["outputs"], ref)
                R[rt]["rel_diff"] = rel
                R[rt]["check"] = "ok" if rel <= TOLERANCE else "FAIL"
                log(f"{model}: {LABELS[rt]} vs {ref_name}: max rel diff {rel:.3g} -> {R[rt]['check']}")
        for rt in RUNTIMES:
            R[rt].pop("outputs", None)
        rec.pop("eager", None)

        # Warm-up, then interleaved rounds of blocks.
        live = [rt for rt in RUNTIMES if rt in workers]
        interleave(workers, live, R, args, probe, budget, model, LABELS, log)
        summary = ", ".join(f"{LABELS[rt]} {R[rt]['ms']:.2f}" for rt in RUNTIMES if "ms" in R[rt])
        if summary:
            log(f"{model}: median ms: {summary}")
    finally:
        for w in workers.values():
            w.close()
        for rt in TORCH_RUNTIMES:
            shutil.rmtree(os.path.join(state["inductor_cache"], f"{model}-{rt}"), ignore_errors=True)
    return rec


# --------------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------------


def best_peer(rec, peers=PEERS):
    """(ms, runtime) of the fastest of peers that ran on the model, or (None, None)."""
    timed = [(rec["runtimes"][p]["ms"], p) for p in peers if "ms" in rec["runtimes"][p]]
    return min(timed) if timed else (None, None)


def kiln_ratio(rec, peers=PEERS):
    """Kiln's latency over the best of peers', or None."""
    best, _ = best_peer(rec, peers)
    kiln = rec["runtimes"]["kiln"].get("ms")
    return kiln / best if kiln is not None and best else None


def model_groups(results):
    """[(label, records)]: all models, then each set on its own when both are there."""
    groups = [("all", list(results))]
    sets = [s for s in MODEL_SETS if s != "all" and any(r.get("set") == s for r in results)]
    if len(sets) > 1:
        groups += [(s, [r for r in results if r.get("set") == s]) for s in sets]
    return groups


def summarize(results):
    """Per-model ratios (added to the records) and their geometric means per model group."""
    for rec in results:
        best, peer = best_peer(rec)
        rec["best_peer"] = peer
        rec["kiln_over_best_peer"] = kiln_ratio(rec)
        rec["kiln_over_ort_openvino"] = kiln_ratio(rec, ONNX_PEERS)
    summary = {}
    for label, recs in model_groups(results):
        entry = {"models": len(recs)}
        for key in ("kiln_over_best_peer", "kiln_over_ort_openvino"):
            vals = [r[key] for r in recs if r[key] is not None]
            entry[key] = geomean(vals)
            entry[key + "_models"] = len(vals)
        summary[label] = entry
    return summary


def onnx_peers_label(runtimes):
    shown = [LABELS[p] for p in ONNX_PEERS if p in runtimes]
    return "best of " + words(shown) if len(shown) > 1 else (shown[0] if shown else "ORT/OpenVINO (not run)")


def target_line(summary, runtimes, markdown=True):
    """The project's target metric in a sentence: Kiln / min(ORT, OpenVINO), geometric mean."""
    bold = "**" if markdown else ""
    label = onnx_peers_label(runtimes)
    parts = []
    for group, entry in summary.items():
        gm, n = entry["kiln_over_ort_openvino"], entry["kiln_over_ort_openvino_models"]
        value = f"{gm:.3f}×" if gm else "—"
        if group == "all":
            head = f"{bold}Kiln / {label}, geometric mean: {value}{bold} over {n} model(s)"
            if n != entry["models"]:
                head += f" (of {entry['models']})"
        else:
            parts.append(f"{group} {value} over {n}")
    return head + (f" ({'; '.join(parts)})" if parts else "") + "."


def write_report(results, meta, out_dir):
    notes = Notes()
    note = notes.mark

    shown = meta["runtimes"]  # the runtimes asked for, in table order
    torch_shown = [rt for rt in TORCH_RUNTIMES if rt in shown]
    peers_shown = [p for p in PEERS if p in shown]
    onnx_label = onnx_peers_label(shown)
    compile_labels = {"kiln": "Kiln", "inductor": "Inductor", "aoti": "AOTI"}
    compile_cols = ["kiln"] + torch_shown
    head = ("| model | " + " | ".join(f"{LABELS[rt]} ms" for rt in shown) + " | best peer | Kiln/best "
            f"| Kiln / {onnx_label} | " + " | ".join(f"compile s {compile_labels[rt]}" for rt in compile_cols)
            + " | check |")
    rows = [head, "|---|" + "---:|" * len(shown) + "---|---:|---:|" + "---:|" * len(compile_cols) + "---|"]
    for rec in results:
        R = rec["runtimes"]
        cells = [rec["model"]]
        for rt in shown:
            if "ms" in R[rt]:
                cell = fmt_ms(R[rt]["ms"])
                if rt in PEERS and R[rt].get("check") == "FAIL":
                    cell += " " + note(f"{rec['model']}, {LABELS[rt]}: output differs from "
                                       f"{rec.get('reference')} (max rel diff {R[rt]['rel_diff']:.3g})")
            elif R[rt].get("error"):
                cell = "error " + note(f"{rec['model']}, {LABELS[rt]}: {R[rt]['error']}")
            elif R[rt].get("skipped"):
                cell = "— " + note(R[rt]["skipped"])
            else:
                cell = "—"
            cells.append(cell)
        best, peer = best_peer(rec)
        cells.append(f"{LABELS[peer]} {fmt_ms(best)}" if peer else "—")
        for ratio in (rec.get("kiln_over_best_peer"), rec.get("kiln_over_ort_openvino")):
            cells.append(f"{ratio:.2f}×" if ratio is not None else "—")
        for rt in compile_cols:
            cell = fmt_s(R[rt].get("compile_s"))
            if rt == "aoti" and R[rt].get("compile_cached") and R[rt].get("compile_s") is not None:
                cell += "*"
            cells.append(cell)
        chk = R["kiln"].get("check")
        if chk:
            cells.append(f"{chk} ({R['kiln']['rel_diff']:.1e})"
                         + ("" if rec.get("reference") == "ORT" else f" vs {rec.get('reference')}"))
        else:
            cells.append("—")
        rows.append("| " + " | ".join(cells) + " |")

    # Geometric means: of all models, and of each set when both are there.
    for label, recs in model_groups(results) if results else []:
        complete = [r for r in recs if all("ms" in r["runtimes"][rt] for rt in shown)]
        name = "geometric mean" + ("" if label == "all" else f", {label}")
        if len(complete) != len(recs):
            name += f" ({len(complete)} of {len(recs)} models)"
        gm = [name]
        for rt in shown:
            gm.append(fmt_ms(geomean([r["runtimes"][rt]["ms"] for r in complete])) if complete else "—")
        gm_best = geomean([best_peer(r)[0] for r in complete]) if complete and peers_shown else None
        gm.append(f"best {fmt_ms(gm_best)}" if gm_best else "—")
        for key in ("kiln_over_best_peer", "kiln_over_ort_openvino"):
            vals = [r[key] for r in recs if r.get(key) is not None]
            value = geomean(vals)
            gm.append("—" if value is None else f"{value:.2f}×"
                      + ("" if len(vals) == len(recs) else f" ({len(vals)})"))
        for rt in compile_cols:
            gm.append(fmt_s(geomean([r["runtimes"][rt].get("compile_s") for r in recs])))
        n_ok = sum(1 for r in recs if r["runtimes"]["kiln"].get("check") == "ok")
        gm.append(f"{n_ok}/{len(recs)} ok")
        rows.append("| " + " | ".join(f"**{c}**" if c not in ("—",) else c for c in gm) + " |")

    # Spread table.
    spread = ["| model | " + " | ".join(f"{LABELS[rt]} p10–p90 ms" for rt in shown)
              + " | blocks × runs per block | blocks rerun / kept disturbed |",
              "|---|" + "---:|" * len(shown) + "---|---|"]
    for rec in results:
        R = rec["runtimes"]
        cells = [rec["model"]]
        for rt in shown:
            cells.append(f"{fmt_ms(R[rt]['p10'])}–{fmt_ms(R[rt]['p90'])}" if "ms" in R[rt] else "—")
        timed = [rt for rt in shown if "samples_ms" in R[rt]]
        cells.append(", ".join(f"{LABELS[rt]} {len(R[rt]['samples_ms'])}×{R[rt]['block_runs']}"
                               for rt in timed))
        cells.append(", ".join(f"{LABELS[rt]} {R[rt]['retried_blocks']}/{R[rt]['disturbed_blocks']}"
                               for rt in timed))
        spread.append("| " + " | ".join(cells) + " |")
    kept_disturbed = sum(r["runtimes"][rt].get("disturbed_blocks", 0) for r in results for rt in RUNTIMES)

    m = meta
    machine = m["machine"]
    threads = machine["threads"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    sets = {r.get("set") for r in results}
    inputs = []
    if "cnn12" in sets:
        inputs.append("the torchvision CNNs of `export_models.py` (torchvision, 3×224×224)")
    if "zoo" in sets:
        inputs.append("the public zoo of `export_zoo.py` (timm, torchvision segmentation, ultralytics "
                      "YOLO and three models defined there, each at its own input size)")
    how = {
        "inductor": "Inductor: `torch.compile` with freezing",
        "aoti": "AOTInductor: `torch.export` + `aoti_compile_and_package` with freezing",
        "ort": "ORT: ORT_ENABLE_ALL, CPU provider, IOBinding",
        "openvino": "OpenVINO: CPU plugin on the same ONNX file, INFERENCE_PRECISION_HINT f32, "
                    "PERFORMANCE_HINT LATENCY, one stream, one infer request reused",
        "kiln": "Kiln: the shared library through ctypes",
    }
    thread_how = {
        "inductor": "torch.set_num_threads", "aoti": None,
        "ort": f"ORT intra-op {threads} / inter-op 1",
        "openvino": f"OpenVINO INFERENCE_NUM_THREADS {threads}",
        "kiln": f"NAME_set_num_threads({threads})",
    }
    thread_text = ", ".join([f"OMP_NUM_THREADS={threads}"] + [thread_how[rt] for rt in shown if thread_how[rt]])
    torch_note = (" Inductor and AOTInductor run the PyTorch module the ONNX file was exported from."
                  if torch_shown else "")
    lines = [
        "# FP32 latency: Kiln against PyTorch Inductor, AOTInductor, ONNX Runtime and OpenVINO",
        "",
        f"Generated by `bench/perf.sh` ({m['command']}) on {m['date']}; Kiln {m['kiln_version']} "
        f"at commit {m['commit']} (binary `{m['kiln_binary']}`), compile flags "
        f"`{m['kiln_compile_flags'] or '(none)'}`.",
        f"Machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs "
        f"({', '.join(machine['isa']) or 'no AVX2'}); load average {m['load_start']} at the start, "
        f"{m['load_end']} at the end (anything near or above the thread count means the numbers are disturbed).",
        f"Versions: {versions}.",
        "",
        f"Every runtime uses {threads} threads ({thread_text}), each in its own process. Batch 1, "
        f"random weights (seed 0), ONNX opset 17, the seeded input file of the export; models: "
        f"{' and '.join(inputs) or 'none'}.{torch_note} "
        + "; ".join(how[rt] for rt in shown) + ".",
        f"Latency: median per-inference time over {m['runs']} interleaved rounds (rotating order, one block "
        f"of ≈{m['block']} s per runtime per round, after ≥{m['warmup']} s of warm-up). A block during "
        f"which other processes (other workers included) used more than {m['max_foreign']} CPU was run "
        f"again, up to {m['retries']} times"
        + (f"; {kept_disturbed} disturbed block(s) had to be kept (see the spread table)." if kept_disturbed
           else "; none had to be kept.") + " "
        f"Best peer: the fastest of {words(LABELS[p] for p in peers_shown) or '(no peer run)'} on the "
        f"model; Kiln/best < 1 means Kiln is faster. Kiln / {onnx_label}: the project's target metric, "
        "Kiln against the faster of the ONNX runtimes that ran on the model.",
        "Compile s: wall time of `kiln compile --library shared`"
        + (", of Inductor's first call (cold cache)" if "inductor" in torch_shown else "")
        + (", of `torch.export` + `aoti_compile_and_package` (cold cache)" if "aoti" in torch_shown else "")
        + "."
        + (" \\* = a cached package; the time measured when it was built." if any(
            r["runtimes"]["aoti"].get("compile_cached") for r in results) else ""),
        f"Check: Kiln's output against ORT's (eager PyTorch's when ORT failed), max|kiln − ort| ≤ "
        f"{TOLERANCE:g}·max|ort| (the value shown is max|kiln − ort| / max|ort|); FAIL models are timed "
        "all the same. The peers' outputs are checked the same way; a mismatch is a footnote.",
        "",
        *rows,
        "",
        target_line(m["summary"], shown),
        "",
        "Geometric means of the latencies are over the models where every runtime of the table ran (the "
        "count is given when some did not); those of the ratios over the models where Kiln and a peer "
        "ran (the count in parentheses when fewer); compile-time means over the models that have one.",
        "",
        "Spread over the rounds:",
        "",
        *spread,
        "",
        f"Harness wall time: {m['wall_s'] / 60:.1f} min for {len(results)} model(s) "
        f"(perf.py only; model export and Kiln compiles are perf.sh's).",
    ]
    if notes:
        lines.append("")
        lines.extend(notes.lines())
    text = "\n".join(lines) + "\n"
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "perf.md"), "w") as f:
        f.write(text)
    return "\n".join(rows), notes


def write_chart(results, meta, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    colors = {"inductor": "#4c72b0", "aoti": "#55a868", "ort": "#8172b2", "openvino": "#c44e52",
              "kiln": "#dd8452"}
    shown = meta["runtimes"]
    peers_shown = [p for p in PEERS if p in shown]
    names, rel = [], {rt: [] for rt in shown}
    complete = [r for r in results if all("ms" in r["runtimes"][rt] for rt in shown)]
    groups = list(results) + (["geomean"] if len(complete) and peers_shown else [])
    for rec in groups:
        if rec == "geomean":
            names.append(f"geomean\n({len(complete)})")
            best = geomean([best_peer(r)[0] for r in complete])
            for rt in shown:
                rel[rt].append(geomean([r["runtimes"][rt]["ms"] for r in complete]) / best)
            continue
        names.append(rec["model"])
        best, _ = best_peer(rec)
        for rt in shown:
            v = rec["runtimes"][rt].get("ms")
            rel[rt].append(v / best if v is not None and best else np.nan)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.0 * len(names) + 3), 5.2))
    x = np.arange(len(names))
    width = 0.8 / max(1, len(shown))
    finite = [v for rt in shown for v in rel[rt] if not np.isnan(v)] or [1.0]
    lo, hi = min(0.8, min(finite) / 1.3), max(1.25, max(finite) * 1.5)
    for i, rt in enumerate(shown):
        vals = np.array(rel[rt], dtype=float)
        # Bars grow from 1 (the best peer): up when slower, down when faster.
        heights = np.nan_to_num(vals, nan=1.0) - 1.0
        bars = ax.bar(x + (i - (len(shown) - 1) / 2) * width, heights, width, bottom=1.0, label=LABELS[rt],
                      color=colors[rt], edgecolor=colors[rt])
        for j, (bar, v) in enumerate(zip(bars, vals)):
            rec = groups[j]
            cx = bar.get_x() + width / 2
            if np.isnan(v):  # error, or not run
                ax.text(cx, 1.0, "×", ha="center", va="center", color=colors[rt], fontsize=10)
                continue
            if v == 1.0:  # the best peer itself: a tick on the line
                ax.plot([bar.get_x(), bar.get_x() + width], [1.0, 1.0], color=colors[rt], linewidth=3)
            if rt == "kiln":
                if rec != "geomean" and rec["runtimes"]["kiln"].get("check") == "FAIL":
                    bar.set_hatch("//")
                    bar.set_edgecolor("black")
                ax.text(cx, v * 1.04 if v >= 1 else v / 1.04, f"{v:.2g}", ha="center",
                        va="bottom" if v >= 1 else "top", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("latency / best peer's (log scale; lower is better)")
    machine = meta["machine"]
    ax.set_title(f"FP32 batch-1 latency relative to the best of {words(LABELS[p] for p in peers_shown)}\n"
                 f"{machine['cpu']}, {machine['threads']} threads, {meta['date']}"
                 + ("; hatched: Kiln's output check failed" if any(
                     r["runtimes"]["kiln"].get("check") == "FAIL" for r in results) else ""),
                 fontsize=9)
    ticks = [t for t in (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100,
                         200, 500, 1000) if lo <= t <= hi]
    ax.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kiln-dir",
                        help="DIR/<model>/lib<model>.so and compile.json, as bench/perf.sh writes them")
    parser.add_argument("--models", default=None,
                        help="comma-separated model names and set names (cnn12, zoo, all); the "
                             "torchvision CNNs: " + ", ".join(TORCHVISION_MODELS) + "; the zoo: "
                             + ", ".join(ZOO_MODELS))
    parser.add_argument("--set", default=None, choices=sorted(MODEL_SETS),
                        help="a model set: cnn12 (the torchvision CNNs of export_models.py), zoo (the "
                             "models of export_zoo.py) or all; with --models, both are run. Default "
                             "(neither given): cnn12")
    parser.add_argument("--models-dir", default=os.path.join(cache_root(), "bench"),
                        help="where export_models.py and export_zoo.py wrote <model>.onnx and "
                             "<model>.input.npy")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument("--block", type=float, default=0.25,
                        help="seconds per timed block of inferences (default 0.25)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per runtime (default 1)")
    parser.add_argument("--pause", type=float, default=0.05, help="seconds between blocks (default 0.05)")
    parser.add_argument("--max-foreign", type=float, default=0.1,
                        help="CPUs other processes may use during a timed block before it is "
                             "run again (default 0.1)")
    parser.add_argument("--retries", type=int, default=3,
                        help="times a disturbed block is run again (default 3)")
    parser.add_argument("--quiet-wait", type=float, default=20,
                        help="seconds to wait at most for other processes to leave the CPUs "
                             "before a setup, a warm-up or a retried block (default 20)")
    parser.add_argument("--quiet-budget", type=float, default=60,
                        help="seconds to wait for quiet at most per model, in all (default 60)")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES),
                        help="comma-separated subset of: " + ", ".join(RUNTIMES))
    parser.add_argument("--fresh-aoti", action="store_true", help="rebuild cached AOTInductor packages")
    parser.add_argument("--setup-timeout", type=float, default=1800,
                        help="seconds a runtime may take to compile and load one model (default 1800)")
    parser.add_argument("--block-timeout", type=float, default=600)
    parser.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    parser.add_argument("--command", default=None, help=argparse.SUPPRESS)
    # For perf.sh: prints the models (sets expanded) and exits. Three lines: all of them, the
    # torchvision CNNs among them, the zoo models among them (comma-separated, maybe empty).
    parser.add_argument("--print-models", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.models = resolve_models(args.models, args.set)
    except ValueError as exc:
        parser.error(str(exc))
    if args.print_models:
        return args
    if not args.kiln_dir:
        parser.error("the following arguments are required: --kiln-dir")
    args.runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    bad = [r for r in args.runtimes if r not in RUNTIMES]
    if bad:
        parser.error(f"unknown runtime(s): {', '.join(bad)}")
    if args.threads < 1 or args.runs < 1:
        parser.error("--threads and --runs must be at least 1")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.print_models:
        print(",".join(args.models))
        print(",".join(m for m in args.models if m in TORCHVISION_MODELS))
        print(",".join(m for m in args.models if m not in TORCHVISION_MODELS))
        return 0
    # The thread count for every runtime, before anything that reads it is imported (the
    # workers inherit the environment).
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import multiprocessing

    wall_start = time.monotonic()
    load_start = load_average()
    ctx = multiprocessing.get_context("spawn")

    torch_v, tv_v = dist_version("torch"), dist_version("torchvision")
    root = cache_root()
    key = aoti_key()
    state = {"aoti_key": key, "aoti_dir": aoti_dir(key)}
    # A zoo model's module is built by export_zoo.py, timm's models by timm.
    import hashlib

    with open(os.path.join(HERE, "export_zoo.py"), "rb") as f:
        zoo_hash = hashlib.sha256(f.read()).hexdigest()[:10]
    state["zoo_key"] = f"{zoo_hash}-timm{dist_version('timm')}"
    os.makedirs(os.path.join(root, "bench"), exist_ok=True)
    inductor_cache = tempfile.mkdtemp(prefix="perf-inductor-", dir=os.path.join(root, "bench"))
    state["inductor_cache"] = inductor_cache
    results = []
    try:
        for model in args.models:
            for path in model_paths(args.models_dir, model):
                if not os.path.exists(path):
                    raise SystemExit(f"perf: {path} missing (bench/{export_script(model)} --out {args.models_dir})")
            start = time.monotonic()
            rec = bench_model(model, args, ctx, state)
            rec["wall_s"] = round(time.monotonic() - start, 1)
            log(f"{model}: done in {rec['wall_s']:.0f} s")
            results.append(rec)
    finally:
        shutil.rmtree(inductor_cache, ignore_errors=True)

    kiln_version, commit, binary = "unknown", "unknown", "unknown"
    kiln_meta = os.path.join(args.kiln_dir, "kiln.json")
    compile_flags = os.environ.get("KILN_COMPILE_FLAGS", "")
    if os.path.exists(kiln_meta):
        with open(kiln_meta) as f:
            km = json.load(f)
        kiln_version, commit = km.get("version", kiln_version), km.get("commit", commit)
        compile_flags = km.get("compile_flags", compile_flags)
        binary = km.get("binary", binary)
    meta = {
        "date": utc_now(),
        "command": args.command or "perf.py " + " ".join(sys.argv[1:]),
        "kiln_version": kiln_version, "commit": commit, "kiln_binary": binary, "kiln_compile_flags": compile_flags,
        "machine": machine_info(args.threads),
        "versions": {"torch": torch_v, "torchvision": tv_v, "onnxruntime": dist_version("onnxruntime"),
                     "openvino": dist_version("openvino"),
                     "timm": dist_version("timm") if any(m in ZOO_MODELS for m in args.models) else None,
                     "onnx": dist_version("onnx"), "numpy": dist_version("numpy"),
                     "python": platform.python_version(),
                     "g++": gxx_version()},
        "load_start": load_start, "load_end": load_average(),
        "runtimes": [rt for rt in RUNTIMES if rt in args.runtimes],
        "runs": args.runs, "block": args.block, "warmup": args.warmup, "pause": args.pause,
        "max_foreign": args.max_foreign, "retries": args.retries,
        "threads": args.threads, "env": {k: v for k, v in os.environ.items()
                                         if k.startswith(("OMP_", "GOMP_", "KMP_", "ONEDNN_", "DNNL_"))},
        "wall_s": time.monotonic() - wall_start,
    }
    meta["summary"] = summarize(results)
    table, notes = write_report(results, meta, args.out_dir)
    chart = os.path.join(args.out_dir, "perf.png")
    try:
        write_chart(results, meta, chart)
    except Exception as exc:  # noqa: BLE001 - the table matters more than the picture
        log(f"chart failed: {short_error(exc)}")
    with open(os.path.join(args.out_dir, "perf.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1, default=str)
    print(table)
    for line in notes.lines():
        print(line)
    print(target_line(meta["summary"], meta["runtimes"], markdown=False))
    log(f"wrote {os.path.join(args.out_dir, 'perf.md')}, perf.png, perf.json "
        f"({meta['wall_s'] / 60:.1f} min)")
    bad = [r["model"] for r in results
           if "kiln" in args.runtimes and r["runtimes"]["kiln"].get("check") != "ok"]
    if bad:
        log(f"Kiln failed or mismatched on: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
