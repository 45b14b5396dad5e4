"""What the benchmarks print and write: log lines, error cells, footnotes, numbers in tables,
and the measures they report (geometric means, percentiles, output differences, cosines).
Standard library only at import time (numpy inside the functions)."""

import math
import re
import sys
import time


def logger(name, stamp=False):
    """A log function printing "name: msg" (with stamp, "name [HH:MM:SS]: msg") to stderr."""
    def log(msg):
        if stamp:
            print(f"{name} [{time.strftime('%H:%M:%S')}]: {msg}", file=sys.stderr, flush=True)
        else:
            print(f"{name}: {msg}", file=sys.stderr, flush=True)
    return log


class WorkerError(Exception):
    """A worker's failure, its message already in words."""


def short_error(exc_or_text, limit=400):
    """One line (the last meaningful one) of an exception or an error text, cut to limit."""
    if isinstance(exc_or_text, WorkerError):
        text = str(exc_or_text)
    elif isinstance(exc_or_text, BaseException):
        text = f"{type(exc_or_text).__name__}: {exc_or_text}"
    else:
        text = str(exc_or_text)
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return "unknown error"
    line = lines[0] if len(lines) == 1 or isinstance(exc_or_text, BaseException) else lines[-1]
    line = re.sub(r"\s+", " ", line)
    return line if len(line) <= limit else line[: limit - 3] + "..."


class Notes:
    """A table's footnotes: mark(text) gives "[^n]", the same text the same n."""

    def __init__(self):
        self.texts = []

    def mark(self, text):
        if text not in self.texts:
            self.texts.append(text)
        return f"[^{self.texts.index(text) + 1}]"

    def lines(self):
        """"[^1]: text", ... in order."""
        return [f"[^{i}]: {text}" for i, text in enumerate(self.texts, 1)]

    def __bool__(self):
        return bool(self.texts)


def words(items):
    """"a", "a and b", "a, b and c"."""
    items = list(items)
    return " and ".join(items) if len(items) < 3 else ", ".join(items[:-1]) + " and " + items[-1]


def fmt_ms(v):
    if v is None:
        return "—"
    return f"{v:.2f}" if v < 100 else f"{v:.1f}"


def fmt_s(v):
    return "—" if v is None else f"{v:.1f}"


# --------------------------------------------------------------------------------------------
# Measures.
# --------------------------------------------------------------------------------------------


def geomean(values):
    """The geometric mean of the positive finite values (None and the others left out), or
    None when there are none."""
    values = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def percentile(values, q):
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def rel_diff(got, ref):
    """max|got - ref| / max|ref| (in float64; max|got - ref| itself when max|ref| is 0, inf
    when it is not finite), and max|got - ref| itself. 0, 0 for empty arrays."""
    import numpy as np

    got64 = got.astype(np.float64)
    ref64 = ref.astype(np.float64)
    if ref64.size == 0:
        return 0.0, 0.0
    abs_diff = float(np.max(np.abs(got64 - ref64)))
    scale = float(np.max(np.abs(ref64)))
    if not np.isfinite(abs_diff):
        return float("inf"), abs_diff
    return (abs_diff / scale if scale > 0 else abs_diff), abs_diff


def compare(got, ref):
    """Worst rel_diff over outputs (inf on a count or shape mismatch or non-finite)."""
    if len(got) != len(ref):
        return float("inf")
    worst = 0.0
    for g, r in zip(got, ref):
        if g.shape != r.shape:
            return float("inf")
        worst = max(worst, rel_diff(g, r)[0])
    return worst


def cos(a, b):
    """Cosine similarity of two flat arrays."""
    import numpy as np

    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def write_table(path, lines):
    """The lines of a Markdown report, written to path and printed."""
    text = "\n".join(lines) + "\n"
    with open(path, "w") as f:
        f.write(text)
    print(text)
