#!/usr/bin/env bash
# Here (dev machine): source trees of git revisions for an A/B run on the GPU box, as
# .ab/<name>/ (git-ignored; pass `carry: [".ab"]` to the device tool). Builds must not go into a
# carried folder (it is replaced whole on every call): bench/cuda/ab_on_box.sh builds into build-ab/.
#   bash bench/cuda/ab_prepare.sh A=main B=my-branch [C=HEAD~3 ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf .ab && mkdir -p .ab
for spec in "$@"; do
  name=${spec%%=*} rev=${spec#*=}
  [[ $name =~ ^[A-Za-z0-9_]+$ && $name != "$spec" ]] || { echo "usage: $0 NAME=REV ..." >&2; exit 2; }
  mkdir .ab/$name && git archive "$rev" | tar -x -C .ab/$name
  echo "$name = $(git rev-parse --short "$rev") ($rev)" | tee -a .ab/REVS
done
