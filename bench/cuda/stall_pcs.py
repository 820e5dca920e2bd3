#!/usr/bin/env python3
"""Top SASS instructions by warp-stall samples from `ncu --page source --print-source sass --csv`
(bench/cuda/run_on_box.sh ncu). Usage: python3 stall_pcs.py source.csv [n]"""
import csv, sys

rows = list(csv.reader(open(sys.argv[1], errors="replace")))
n = int(sys.argv[2]) if len(sys.argv) > 2 else 40
hdr_i = next(i for i, r in enumerate(rows) if any("Source" == c.strip() for c in r))
hdr = [c.strip() for c in rows[hdr_i]]
src = hdr.index("Source")
cols = [i for i, c in enumerate(hdr) if "Stall Sampling" in c]
addr = next((i for i, c in enumerate(hdr) if c.startswith("Address")), None)
def num(x):
    try: return float(x.replace(",", ""))
    except ValueError: return 0.0
data = [r for r in rows[hdr_i + 1:] if len(r) == len(hdr)]
tot = [sum(num(r[c]) for r in data) for c in cols]
print("columns:", [hdr[c] for c in cols], "totals:", tot)
key = cols[0]
for r in sorted(data, key=lambda r: -num(r[key]))[:n]:
    print(f"{num(r[key]) / max(tot[0], 1) * 100:5.1f}%  {r[addr] if addr is not None else ''}  {r[src].strip()[:90]}")
