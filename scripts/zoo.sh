#!/usr/bin/env bash
# Regenerate one zoo entry from its recipe: train it, then pack it (fp16 + provenance +
# recall on the named segments) into vpr_embedded/zoo/.
#   bash scripts/zoo.sh nordland-lite0-mixvpr          # trained entries: recipes/zoo/NAME.toml
#   bash scripts/zoo.sh nordland-lite0-mixvpr-pruned   # pruned entries: recipes/zoo/NAME.prune.toml
# Reads the data from $VPR_DATA_DIR (default ../shared/data). CPU by default; pass
# --device cuda (forwarded to train/prune) where a GPU exists.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/zoo.sh NAME [train/prune flags]}
shift
export VPR_DATA_DIR=${VPR_DATA_DIR:-$(cd .. && pwd)/shared/data}
bin=.venv/bin
runs=runs/zoo/$name
if [[ -f recipes/zoo/$name.toml ]]; then
  cmd="vpr-embedded train --config recipes/zoo/$name.toml --out $runs $*"
  $bin/$cmd
  checkpoint=$runs/best.pt
  record=$runs/config.json
elif [[ -f recipes/zoo/$name.prune.toml ]]; then
  cmd="vpr-embedded prune --config recipes/zoo/$name.prune.toml --out $runs/pruned.pt $*"
  $bin/$cmd
  checkpoint=$runs/pruned.pt
  record=$runs/pruned.pt.json
else
  echo "no recipe recipes/zoo/$name.toml or recipes/zoo/$name.prune.toml" >&2
  exit 2
fi
$bin/vpr-embedded zoo-pack --checkpoint "$checkpoint" --name "$name" \
  --command "bash scripts/zoo.sh $name" --train-config "$record"
