"""Where a kernel's warps wait, from Nsight Compute's per-instruction sampling: python3 bench/ncu_stalls.py SRC.csv
[--split REGEX] [--top N]

SRC.csv is `ncu -i REPORT.ncu-rep --page source --csv --print-source sass` of a report taken with `--set full` (one
or more kernels). For each kernel it prints the warp-stall sample total, the stall reasons summed over the kernel
(or over the two regions before / from the first instruction matching --split, e.g. 'LDGSTS' to separate a
warp-specialized kernel's consumer code from its producer code), and the --top instructions by samples with their
main reason and the instruction before each (what a scoreboard wait usually waits on).
"""
from __future__ import annotations

import argparse
import csv
import re
import sys
from typing import Dict, List

ALL = "Warp Stall Sampling (All Samples)"


def _num(v: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def parse(path: str) -> List[Dict]:
    """[{name, header, rows}] per kernel of the CSV (a 'Kernel Name' line, then a header line, then one row a SASS
    instruction)."""
    kernels: List[Dict] = []
    with open(path, newline="") as f:
        it = csv.reader(f)
        for row in it:
            if row and row[0] == "Kernel Name":
                kernels.append({"name": row[1] if len(row) > 1 else "?", "header": next(it), "rows": []})
            elif kernels and row:
                kernels[-1]["rows"].append(row)
    return kernels


def _stall_cols(header: List[str]) -> Dict[str, int]:  # per-reason sample columns (not the 'Not Issued' copies)
    return {h: i for i, h in enumerate(header) if h.startswith("stall_") and "Not Issued" not in h}


def reasons(header: List[str], rows: List[List[str]]) -> Dict[str, float]:
    """Stall reason -> samples summed over rows."""
    cols = _stall_cols(header)
    return {h: sum(_num(r[i]) for r in rows if i < len(r)) for h, i in cols.items()}


def summary(kernel: Dict, split: str = "", top: int = 12) -> str:
    """The text this script prints for one kernel."""
    hdr, rows = kernel["header"], kernel["rows"]
    ia, isrc = hdr.index(ALL), hdr.index("Source")
    total = sum(_num(r[ia]) for r in rows) or 1.0
    out = [f"{kernel['name'][:110]}", f"  samples {total:.0f}, instructions {len(rows)}"]
    cut = next((i for i, r in enumerate(rows) if split and re.search(split, r[isrc])), None)
    regions = [("all", rows)] if cut is None else [(f"before /{split}/", rows[:cut]), (f"from /{split}/", rows[cut:])]
    for label, part in regions:
        agg = sorted(reasons(hdr, part).items(), key=lambda kv: -kv[1])
        n = sum(_num(r[ia]) for r in part)
        out.append(f"  {label}: {100 * n / total:.0f}% of samples; " +
                   ", ".join(f"{k[6:]} {100 * v / total:.0f}%" for k, v in agg[:6] if v > 0))
    cols = _stall_cols(hdr)
    for i in sorted(range(len(rows)), key=lambda j: -_num(rows[j][ia]))[:top]:
        r = rows[i]
        main = max(cols, key=lambda h: _num(r[cols[h]]) if cols[h] < len(r) else 0.0) if cols else "?"
        prev = rows[i - 1][isrc].strip() if i > 0 else ""
        out.append(f"  {100 * _num(r[ia]) / total:5.1f}% [{main[6:]}] {r[isrc].strip()[:70]}   <- {prev[:50]}")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("--split", default="", help="regex of the instruction that starts the second region")
    ap.add_argument("--top", type=int, default=12)
    a = ap.parse_args(argv)
    kernels = parse(a.csv)
    if not kernels:
        print(f"{a.csv}: no kernel found (expected ncu --page source --csv output)", file=sys.stderr)
        return 1
    for k in kernels:
        print(summary(k, a.split, a.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
