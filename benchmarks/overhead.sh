#!/usr/bin/env bash
# Overhead: wall time of a full run of the default config against the
# seconds spent warming up and measuring inside it, and the time of a no-op
# dry run on complete results. Runs in a scratch folder; prints one summary.
#   bash benchmarks/overhead.sh [WORKDIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work"
cp "$root/config.yaml" "$work/config.yaml"
sm="$root/.venv/bin/snakemake -s $root/Snakefile -d $work"
start=$(date +%s.%N)
$sm --cores 1 --resources gpu=1 --quiet >"$work/run.log" 2>&1
end=$(date +%s.%N)
dry_start=$(date +%s.%N)
$sm -n --quiet >/dev/null 2>&1
dry_end=$(date +%s.%N)
"$root/.venv/bin/python" - "$work" "$start" "$end" "$dry_start" "$dry_end" <<'PY'
import json, sys
from pathlib import Path
work, start, end, dry_start, dry_end = sys.argv[1], *map(float, sys.argv[2:])
raw = Path(work, "results/raw")
records = [json.loads(p.read_text()) for p in raw.glob("*/throughput/**/*.json")]
searches = [json.loads(p.read_text()) for p in raw.glob("*/max_batch/**/*.json")]
measured = sum(r["measure_seconds"] or 0 for r in records)
warm = sum(r.get("warmup_seconds") or 0 for r in records)
search = sum(r["search_seconds"] for r in searches)
rest = wall = end - start
Path(work, "wall.json").write_text(json.dumps({"seconds": wall}))
rest -= measured + warm + search
print(f"overhead: wall {wall:.1f} s for {len(records)} throughput points and {len(searches)} "
      f"largest-batch searches: measuring {measured:.1f} s ({measured / wall:.0%} of wall), "
      f"warm-up {warm:.1f} s, searches {search:.1f} s ({sum(r['trials'] for r in searches)} trials), "
      f"everything else {rest:.1f} s ({rest / len(records):.1f} s per point)")
print(f"no-op dry run (snakemake -n on complete results): {dry_end - dry_start:.2f} s (target < 3 s)")
print(f"results in {work}")
PY
