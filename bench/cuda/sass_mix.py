#!/usr/bin/env python3
"""Instruction mix of a kernel's main loop, from `cuobjdump -sass` text (GPU box, or a dev machine
with cuobjdump). Counting before measuring: what a change adds or removes per loop trip, which
pipe it lands on, and whether the loop spills (docs/CUDA.md "Session 13").

  cuobjdump -sass build/box/CMakeFiles/tq_objects.dir/src/cuda/decode_v3_d128.cu.o > d128.sass
  python3 bench/cuda/sass_mix.py d128.sass --fun 'decode_kernelILi128ELi3ELi3ELi0ELi0ELi1E'
  python3 bench/cuda/sass_mix.py a.sass b.sass --fun ...      # two builds side by side

The main loop is the backward branch whose body holds the most tensor-core instructions (IMMA /
HMMA / HGMMA); --loop START picks another one by its start address (hex, as printed). The pipe
classes are approximate (sm_90: integer / logic / compare and select on the half-rate ALU pipe;
FFMA, FMUL, FADD, IMAD and packed half math on the FMA pipes).
"""
import argparse
import collections
import re
import sys

ALU = {"LOP3", "PRMT", "SHF", "IADD3", "ISETP", "FSETP", "FMNMX", "FSEL", "SEL", "LEA", "PLOP3", "I2FP", "F2I",
       "IABS", "VIMNMX", "POPC", "FLO", "BMSK", "HMNMX2"}
FMA = {"FFMA", "FMUL", "FADD", "IMAD", "HFMA2", "HADD2", "HMUL2", "VIADD", "IMUL"}
MMA = {"IMMA", "HMMA", "HGMMA", "IGMMA", "QGMMA"}
MEM = {"LDS", "STS", "LDG", "STG", "LDL", "STL", "LDSM", "LDC", "ULDC", "ATOM", "RED", "LDGSTS", "UBLKCP"}


def functions(path):
    """{mangled name: [(address, instruction text), ...]} of one cuobjdump -sass file."""
    out, name = {}, None
    for line in open(path):
        m = re.match(r"\s+Function : (\S+)", line)
        if m:
            name = m.group(1)
            out[name] = []
            continue
        m = re.match(r"\s+/\*([0-9a-f]{4,6})\*/\s+(.*?);", line)
        if m and name:
            out[name].append((int(m.group(1), 16), m.group(2).strip()))
    return out


def opcode(text):
    text = re.sub(r"^@!?U?P\w+\s+", "", text)  # predicate guard
    return text.split()[0].split(".")[0]


def loops(ins):
    """(start, end) address spans of backward branches, longest first."""
    spans = set()
    for a, t in ins:
        m = re.search(r"\bBRA\b.*0x([0-9a-f]+)", t)
        if m and int(m.group(1), 16) < a:
            spans.add((int(m.group(1), 16), a))
    return sorted(spans, key=lambda s: s[0] - s[1])


def mix(path, fun, loop):
    fs = {n: v for n, v in functions(path).items() if re.search(fun, n)}
    if len(fs) != 1:
        sys.exit(f"{path}: {len(fs)} functions match {fun!r}: " + ", ".join(list(fs)[:8]))
    name, ins = next(iter(fs.items()))
    spans = loops(ins)
    if loop is not None:
        span = next((s for s in spans if s[0] == loop), None)
        if span is None:
            sys.exit(f"{path}: no loop starts at {loop:#x}: " + ", ".join(f"{a:#x}" for a, _ in spans[:20]))
    else:
        def tc(s):
            return sum(opcode(t) in MMA for a, t in ins if s[0] <= a <= s[1])
        # The innermost span with the most tensor-core instructions: the main loop, not the segment loop.
        best = max(tc(s) for s in spans) if spans else 0
        span = min((s for s in spans if tc(s) == best), key=lambda s: s[1] - s[0], default=(ins[0][0], ins[-1][0]))
    body = [t for a, t in ins if span[0] <= a <= span[1]]
    c = collections.Counter(opcode(t) for t in body)
    groups = collections.Counter()
    for op, n in c.items():
        groups["tensor" if op in MMA else "alu" if op in ALU else "fma" if op in FMA else
               "mem" if op in MEM else "other"] += n
    return dict(name=name, span=span, total=len(body), ops=c, groups=groups,
                local=c["LDL"] + c["STL"], bars=sum(1 for t in body if "BAR" in t), whole=len(ins))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sass", nargs="+", help="cuobjdump -sass output (one or two files)")
    ap.add_argument("--fun", required=True, help="regex matching one mangled kernel name")
    ap.add_argument("--loop", type=lambda x: int(x, 16), help="start address of the loop (hex)")
    ap.add_argument("--top", type=int, default=24, help="opcodes listed")
    a = ap.parse_args()
    res = [mix(p, a.fun, a.loop) for p in a.sass]
    for p, r in zip(a.sass, res):
        print(f"{p}: {r['name']}: {r['whole']} instructions; loop {r['span'][0]:#x}..{r['span'][1]:#x}: "
              f"{r['total']} ({', '.join(f'{k} {v}' for k, v in sorted(r['groups'].items()))}), "
              f"local {r['local']}, barriers {r['bars']}")
    ops = sorted(set().union(*(r["ops"] for r in res)), key=lambda o: -max(r["ops"][o] for r in res))[:a.top]
    print("| opcode | " + " | ".join(f"#{i + 1}" for i in range(len(res))) + " |")
    print("|---|" + "---|" * len(res))
    for o in ops:
        print(f"| {o} | " + " | ".join(str(r["ops"][o]) for r in res) + " |")


if __name__ == "__main__":
    main()
