#!/usr/bin/env python3
"""Random-graph differential testing of Kiln, end to end.

    run.py --seed S --count N [--settings auto:auto,nhwc:off,blocked:always] [--kiln PATH]
           [--work DIR] [--optimization=-O0] [--save-regressions]

1. `difftest.py gen` writes N seeded random graphs (model.onnx + test_data_set_0) whose expected
   outputs come from ONNX Runtime, or from onnx.reference where ONNX Runtime departs from the spec.
2. `kiln conformance` runs every graph through the reference interpreter (what `kiln eval` runs)
   and, merged into few libraries, through the compiled path under each LAYOUT:WINOGRAD setting.
   The saved regressions (Tests/difftest/regressions/) run with them.
3. Every failing graph is shrunk automatically (`difftest.py shrink`) and printed with the command
   that reproduces it; with --save-regressions the shrunk graph is written to
   Tests/difftest/regressions/, where scripts/test runs it on every change from then on.

Exit status 1 when Kiln disagrees with the oracle on any graph.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_SETTINGS = "auto:auto,nhwc:off,blocked:always"
REGRESSIONS = os.path.join(HERE, "regressions")


def kiln_command(kiln, case_root, setting):
    cmd = [kiln, "conformance", case_root]
    if setting is not None:
        cmd += ["--compiled", "--setting", setting]
    return cmd


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--settings", default=DEFAULT_SETTINGS,
                    help="comma-separated LAYOUT:WINOGRAD settings of the compiled path (default %(default)s)")
    ap.add_argument("--kiln", default=os.environ.get("KILN_BIN", os.path.join(ROOT, ".build/release/kiln")))
    ap.add_argument("--work", help="where the graphs and libraries go (default: a temporary folder, removed after)")
    ap.add_argument("--chunk", type=int, default=2000, help="graphs per kiln run (bounds memory)")
    ap.add_argument("--save-regressions", action="store_true",
                    help="write each shrunk failing graph to Tests/difftest/regressions/")
    ap.add_argument("--no-shrink", action="store_true")
    ap.add_argument("--optimization", default="-O1",
                    help="g++ level of the compiled libraries (default %(default)s; -O0 builds three times faster)")
    args = ap.parse_args()
    py = sys.executable
    gen = os.path.join(HERE, "difftest.py")
    work = args.work or tempfile.mkdtemp(prefix="kiln-difftest-")
    os.makedirs(work, exist_ok=True)
    settings = [s for s in args.settings.split(",") if s]
    start = time.time()
    failures = []  # (case dir, setting or None, message)
    passed_lines = []
    for first in range(0, args.count, args.chunk):
        n = min(args.chunk, args.count - first)
        cases = os.path.join(work, f"graphs{first}")
        shutil.rmtree(cases, ignore_errors=True)
        subprocess.run([py, gen, "gen", "--seed", str(args.seed), "--first", str(first), "--count", str(n),
                        "--out", cases], check=True)
        roots = {os.path.basename(cases): cases}
        # The saved regressions run with the first chunk.
        if first == 0 and os.path.isdir(REGRESSIONS) and os.listdir(REGRESSIONS):
            roots[os.path.basename(REGRESSIONS)] = REGRESSIONS
        cmd = [args.kiln, "conformance", *roots.values(), "--compiled", "--work-dir", os.path.join(work, "libs"),
               f"--optimization={args.optimization}"]
        for s in settings:
            cmd += ["--setting", s]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        shutil.rmtree(os.path.join(work, "libs"), ignore_errors=True)
        out = r.stdout
        for line in out.splitlines():
            if line.startswith("conformance"):
                passed_lines.append(line)
            m = re.match(r"^FAIL(?: \(compiled ([^)]*)\))? ([^:]+): (.*)$", line)
            if m:
                setting, key, why = m.group(1), m.group(2), m.group(3)
                root, name = key.split("/", 1)
                failures.append((os.path.join(roots.get(root, cases), name), setting, why))
        if r.returncode != 0 and not any(f[0].startswith(cases) for f in failures):
            print(out)
            print(f"difftest: kiln exited with status {r.returncode} and no FAIL line", file=sys.stderr)
            sys.exit(1)
    for line in passed_lines:
        print(line)
    # Every (graph, path) pair that agreed: the reference interpreter and each compiled setting.
    agreed = sum(int(m.group(1)) for l in passed_lines for m in [re.search(r": (\d+) passed", l)] if m)
    unsupported = sum(int(m.group(1)) for l in passed_lines
                      for m in [re.search(r"(\d+) unsupported", l)] if m and l.startswith("conformance:"))
    print(f"difftest: {args.count} graphs (seed {args.seed}), settings {', '.join(settings)}: "
          f"{len(failures)} disagreements, {unsupported} unsupported, {time.time() - start:.0f} s")
    print(f"difftest: {agreed} passed, {len(failures)} failed")
    if failures:
        seen = set()
        for case, setting, why in failures:
            name = os.path.basename(case)
            print(f"FAIL {name} ({'reference interpreter' if setting is None else 'compiled ' + setting}): {why}")
            if args.no_shrink or (case, setting) in seen:
                continue
            seen.add((case, setting))
            check = " ".join(kiln_command(args.kiln, "{case}", setting))
            dest = os.path.join(REGRESSIONS, name) if args.save_regressions else os.path.join(work, "shrunk", name)
            subprocess.run([py, gen, "shrink", case, "--out", dest, "--check", check])
            print(f"  shrunk: {dest}\n  reproduce: {check.replace('{case}', dest)}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
