#!/usr/bin/python3
"""Markdown tables from docs/quality/*.json (written by scripts/quality_eval.sh), one per figure,
each headed by the command that regenerates it."""
import glob
import json
import os
import sys

VEC = [("codec", "codec", "s"), ("bits_per_value", "bits/value", ".3f"), ("rel_mse", "rel. MSE", ".4g"),
       ("vs_optimum", "/ Beta opt.", ".4f"), ("ip_rel_err_random", "IP err (random dir.)", ".4g"),
       ("ip_rel_err_real", "IP err (real queries)", ".4g"), ("ip_bias_real", "IP bias", ".3g")]
ATT = [("codec", "codec", "s"), ("k_bits", "K bits", ".3f"), ("v_bits", "V bits", ".3f"),
       ("bits_per_value", "bits/value", ".3f"), ("kld", "KLD", ".4g"), ("attn_rel_l2", "attn rel. L2", ".4g"),
       ("top1_agree", "top-1", ".3f"), ("top8_agree", "top-8", ".3f"), ("score_rel_err", "score err", ".3g"),
       ("k_rel_mse", "K rel. MSE", ".3g"), ("v_rel_mse", "V rel. MSE", ".3g")]


def fmt(v, f):
    if v is None:
        return "–"
    return v if f == "s" else format(v, f)


def main():
    d = sys.argv[1]
    for path in sorted(glob.glob(os.path.join(d, "*.json"))):
        name = os.path.splitext(os.path.basename(path))[0]
        j = json.load(open(path))
        cmd = open(os.path.join(d, name + ".cmd")).read().strip()
        cols = VEC if j["data"]["mode"] == "vectors" else ATT
        data = j["data"]
        desc = (f"{data['source']}, n={data['n']}, d={data['dim']}" if data["mode"] == "vectors" else
                f"B={data['B']} Hq={data['Hq']} Hkv={data['Hkv']} Tq={data['Tq']} T={data['T']} D={data['D']}, "
                f"KIVI G={data['kivi_group']} R={data['kivi_window']}")
        print(f"### {name}\n\n{desc}. Plot: [{name}.svg]({name}.svg). Regenerate: `bash scripts/quality_eval.sh {name}`"
              f" (runs `{cmd}`).\n")
        print("| " + " | ".join(c[1] for c in cols) + " |")
        print("|" + "|".join("---" if c[2] == "s" else "---:" for c in cols) + "|")
        for r in j["results"]:
            print("| " + " | ".join(fmt(r.get(c[0]), c[2]) for c in cols) + " |")
        print()


if __name__ == "__main__":
    main()
