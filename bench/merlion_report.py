"""Score the detector on the Merlion synthetic anomaly set (BSD-3-Clause, salesforce/Merlion).

Usage: ``python bench/merlion_report.py [DATASET_DIR] [--detector NAME] [--per-file]``.
Prints, for every registered detector side by side (or only ``--detector``), overall
point-wise and point-adjusted precision/recall/F1, the mean detection delay (points from the
start of a labelled anomaly to the first alarm inside it) and the alarm points on the three
anomaly-free files; ``--per-file`` adds one table per detector. A prediction is the
tracker's active state, exactly what ``selfheal detect`` writes.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from selfheal_kg.detect.batch import Point  # noqa: E402
from selfheal_kg.detect.registry import DETECTORS, make_detector, make_tracker  # noqa: E402

DEFAULT_DIR = REPO.parent / "shared" / "datasets" / "merlion-synthetic"


def load(path: Path) -> tuple[list[Point], np.ndarray]:
    """Return the points and the 0/1 labels (all 0 when the file has no label column)."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    header, data = rows[0], rows[1:]
    points = [Point(float(r[0]), float(r[1])) for r in data]
    has_label = len(header) > 2 and header[2] == "anomaly"
    labels = np.array([float(r[2]) > 0 if has_label else False for r in data])
    return points, labels


def segments(labels: np.ndarray) -> list[tuple[int, int]]:
    """Return [start, end) of each run of True."""
    padded = np.concatenate([[False], labels, [False]]).astype(int)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def adjust(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Point-adjust: a labelled segment with any alarm counts as fully detected."""
    out = pred.copy()
    for a, b in segments(labels):
        if pred[a:b].any():
            out[a:b] = True
    return out


def counts(pred: np.ndarray, labels: np.ndarray) -> tuple[int, int, int]:
    """Return (true positives, false positives, false negatives)."""
    return int((pred & labels).sum()), int((pred & ~labels).sum()), int((~pred & labels).sum())


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Return precision, recall, F1 (precision 1 when nothing was predicted)."""
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def delays(pred: np.ndarray, labels: np.ndarray) -> list[int]:
    """Return, for each detected segment, the points from its start to the first alarm."""
    out = []
    for a, b in segments(labels):
        hits = np.flatnonzero(pred[a:b])
        if hits.size:
            out.append(int(hits[0]))
    return out


def predict(files: list[list[Point]], detector: str) -> list[np.ndarray]:
    """Run every file as one series of a single detector (one vectorised update per step).

    Files are aligned by row index; a shorter file is padded with missing values.
    """
    n = max(len(f) for f in files)
    values = np.full((len(files), n), np.nan)
    for k, pts in enumerate(files):
        values[k, : len(pts)] = [p.value for p in pts]
    names = [f"series{k}" for k in range(len(files))]
    det, tracker = make_detector(detector), make_tracker()
    active = np.zeros((len(files), n), dtype=bool)
    for i in range(n):
        t = files[0][min(i, len(files[0]) - 1)].t
        scores = det.update(t, names, values[:, i])
        tracker.update(t, names, names, names, scores, values[:, i])
        active[:, i] = [tracker.is_active(s) for s in names]
    return [active[k, : len(pts)] for k, pts in enumerate(files)]


def main(argv: list[str] | None = None) -> int:
    """Print the report; return 0 (2 when the dataset has no CSV file)."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dataset", nargs="?", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--detector", choices=sorted(DETECTORS), default=None)
    ap.add_argument("--per-file", action="store_true")
    args = ap.parse_args(argv)
    paths = sorted(args.dataset.glob("*.csv"))
    if not paths:
        print(f"no CSV files in {args.dataset}", file=sys.stderr)
        return 2
    loaded = [load(p) for p in paths]
    names = [args.detector] if args.detector else list(DETECTORS)
    summary = [_report(name, paths, loaded, per_file=args.per_file) for name in names]
    print(f"{'detector':10} {'P':>5} {'R':>5} {'F1':>5} | {'P-adj':>5} {'R-adj':>5} {'F1-adj':>6}"
          f" | {'delay':>5} {'FP':>6} {'cleanFP':>7}")
    for line in summary:
        print(line)
    return 0


def _report(
    name: str, paths: list[Path], loaded: list[tuple[list[Point], np.ndarray]], *, per_file: bool
) -> str:
    """Run one detector over every file; return its summary line (print per file if asked)."""
    preds = predict([pts for pts, _ in loaded], name)
    totals = np.zeros(6, dtype=int)
    all_delays: list[int] = []
    clean_fp = 0
    if per_file:
        print(f"== {name}")
    for path, (_, labels), pred in zip(paths, loaded, preds, strict=True):
        raw, adj = counts(pred, labels), counts(adjust(pred, labels), labels)
        totals += np.array(raw + adj)
        d = delays(pred, labels)
        all_delays += d
        clean_fp += raw[1] if not labels.any() else 0
        if per_file:
            mean_d = f"{np.mean(d):5.1f}" if d else "    -"
            print(f"  {path.name:38} {_fmt(*raw)} | {_fmt(*adj)} | {mean_d} {raw[1]:6d}")
    mean_all = f"{np.mean(all_delays):5.1f}" if all_delays else "    -"
    t = totals.tolist()
    return f"{name:10} {_fmt(*t[:3])} | {_fmt(*t[3:])}  | {mean_all} {t[1]:6d} {clean_fp:7d}"


def _fmt(tp: int, fp: int, fn: int) -> str:
    p, r, f = prf(tp, fp, fn)
    return f"{p:5.2f} {r:5.2f} {f:5.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
