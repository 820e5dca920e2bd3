#!/usr/bin/python3
"""Plots for docs/ANN.md from tq_ann_compare's JSON lines, as plain SVG (no matplotlib on the
build machines), plus a markdown table on stdout.
Usage: plot_svg.py RESULTS_DIR   (reads NAME.jsonl, writes NAME_qps.svg, NAME_curve.svg)"""
import glob
import json
import math
import os
import sys

W, H, L, R, T, B = 720, 440, 70, 190, 40, 50
COL = {"turboquant": "#c0392b", "faiss": "#2471a3"}


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def axes(title, xlabel, ylabel, xt, yt, fx, fy):
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{L}" y="22" font-size="14" font-weight="bold">{esc(title)}</text>',
         f'<rect x="{L}" y="{T}" width="{W-L-R}" height="{H-T-B}" fill="none" stroke="#444"/>']
    for v, lab in xt:
        x = fx(v)
        o.append(f'<line x1="{x:.1f}" y1="{T}" x2="{x:.1f}" y2="{H-B}" stroke="#ddd"/>')
        o.append(f'<text x="{x:.1f}" y="{H-B+15}" text-anchor="middle">{lab}</text>')
    for v, lab in yt:
        y = fy(v)
        o.append(f'<line x1="{L}" y1="{y:.1f}" x2="{W-R}" y2="{y:.1f}" stroke="#ddd"/>')
        o.append(f'<text x="{L-6}" y="{y+4:.1f}" text-anchor="end">{lab}</text>')
    o.append(f'<text x="{(L+W-R)/2}" y="{H-12}" text-anchor="middle">{esc(xlabel)}</text>')
    o.append(f'<text x="16" y="{(T+H-B)/2}" text-anchor="middle" transform="rotate(-90 16 {(T+H-B)/2})">{esc(ylabel)}</text>')
    return o


def log_ticks(lo, hi):
    t, v = [], 10 ** math.floor(math.log10(lo))
    while v <= hi * 1.0001:
        for m in (1, 2, 5):
            if lo <= v * m <= hi:
                t.append((v * m, f"{v*m:g}"))
        v *= 10
    return t


def label_bytes(r):
    """Code bytes, plus the fp32 copies a re-ranking index keeps in memory."""
    if "rerank" in r["index"]:
        return f'{r["bytes_per_vector"]} B + {4 * r["dim"]} B fp32'
    return f'{r["bytes_per_vector"]} B'


def qps_plot(rows, title, path):
    qs = [r["qps"] for r in rows]
    lo, hi = min(qs) / 1.5, max(qs) * 1.5
    fx = lambda v: L + (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (W - L - R)
    fy = lambda v: H - B - v * (H - T - B)
    o = axes(title, "queries per second (log)", "recall@1@1", log_ticks(lo, hi), [(i / 5, f"{i/5:.1f}") for i in range(6)], fx, fy)
    placed = []  # label boxes already drawn: move a label down until it overlaps none
    for r in sorted(rows, key=lambda r: -r["recall_at_1_at_k"][0]):
        x, y = fx(r["qps"]), fy(r["recall_at_1_at_k"][0])
        c = COL[r["lib"]]
        o.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{c}"/>')
        text = f'{r["index"]} ({label_bytes(r)})'
        w, ly = 5.5 * len(text), y - 4
        while any(abs(ly - py) < 11 and x + 6 < px + pw and px < x + 6 + w for px, py, pw in placed):
            ly += 11
        placed.append((x + 6, ly, w))
        o.append(f'<text x="{x+6:.1f}" y="{ly:.1f}" fill="{c}" font-size="10">{esc(text)}</text>')
    o.append(f'<text x="{W-R+10}" y="{H-B-26}" fill="{COL["turboquant"]}">● turboquant FlatIndex</text>')
    o.append(f'<text x="{W-R+10}" y="{H-B-10}" fill="{COL["faiss"]}">● faiss 1.7.3 (Debian)</text>')
    o.append("</svg>")
    open(path, "w").write("\n".join(o))


def curve_plot(rows, title, path):
    kmax = len(rows[0]["recall_at_1_at_k"])
    fx = lambda k: L + math.log2(k) / math.log2(kmax) * (W - L - R)
    fy = lambda v: H - B - v * (H - T - B)
    o = axes(title, "k (log)", "recall@1@k", [(k, str(k)) for k in (1, 2, 4, 8, 16, 32, 64) if k <= kmax],
             [(i / 5, f"{i/5:.1f}") for i in range(6)], fx, fy)
    dashes = ["", "6,3", "2,2", "8,3,2,3"]
    seen = {"turboquant": 0, "faiss": 0}
    for i, r in enumerate(rows):
        pts = " ".join(f"{fx(k+1):.1f},{fy(v):.1f}" for k, v in enumerate(r["recall_at_1_at_k"]))
        c = COL[r["lib"]]
        dash = dashes[seen[r["lib"]] % len(dashes)]
        width = 1.2 + 0.8 * (seen[r["lib"]] // len(dashes))
        seen[r["lib"]] += 1
        da = f' stroke-dasharray="{dash}"' if dash else ""
        o.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="{width}"{da}/>')
        y = T + 14 + 16 * i
        o.append(f'<line x1="{W-R+8}" y1="{y-4}" x2="{W-R+34}" y2="{y-4}" stroke="{c}" stroke-width="{width}"{da}/>')
        o.append(f'<text x="{W-R+38}" y="{y}" fill="{c}" font-size="10">{esc(r["index"])} ({label_bytes(r)})</text>')
    o.append("</svg>")
    open(path, "w").write("\n".join(o))


def main(d):
    for f in sorted(glob.glob(os.path.join(d, "*.jsonl"))):
        rows = [json.loads(l) for l in open(f) if l.strip().startswith("{")]
        if not rows:
            continue
        name = os.path.basename(f)[:-6]
        r0 = rows[0]
        desc = f'{name}: {r0["n_base"]} x {r0["dim"]}, {r0["n_queries"]} queries, {r0["metric"]}, {r0["threads"]} threads'
        qps_plot(rows, desc, os.path.join(d, name + "_qps.svg"))
        # The curve plot keeps the rows that are not all at 1.0 and not near-duplicates of others.
        keep = {"TQ2,nc", "TQ3,nc", "TQ4", "TQ4,nc", "SQ4", "PQ25", "PQ50", "PQ100x4fs", "PQ384x4fs", "PQ768x4fs",
                "TQ1,nc", "TQ2"}
        curve_plot([r for r in rows if r["index"] in keep], desc, os.path.join(d, name + "_curve.svg"))
        print(f"\n{desc}\n")
        print("| library | index | bytes/vector | threads | build s (train s) | QPS | R@1@1 | R@1@10 | R@1@64 | 10-recall@10 |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        notes = []
        for r in rows:
            c = r["recall_at_1_at_k"]
            tr = f' ({r["train_s"]:.3g})' if r["lib"] == "faiss" and r["train_s"] > 0 else ""
            mark = ""
            if r.get("note"):  # e.g. a row carried over from an earlier run
                if r["note"] not in notes:
                    notes.append(r["note"])
                mark = " " + "*" * (notes.index(r["note"]) + 1)
            print(f'| {r["lib"]} | {r["index"]}{mark} | {label_bytes(r)} | {r["threads"]} | {r["build_s"]:.3g}{tr} | '
                  f'{r["qps"]:.0f} | {c[0]:.3f} | {c[min(9, len(c)-1)]:.3f} | {c[-1]:.3f} | {r["recall_at_k"]:.3f} |')
        for i, n in enumerate(notes):
            print(f'\n{"*" * (i + 1)} {n}')


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
