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
# A timing process holds every point of its model: one per (job, generation).
processes = {}
for r in records:
    for p in r.get("process_results") or []:
        key = (p["session"], p["generation"])
        seconds = processes.get(key, (p["process_seconds"], 0.0))[1] + p["warmup_seconds"] + p["measure_seconds"]
        processes[key] = (p["process_seconds"], seconds)
measured = sum(r["measure_seconds"] or 0 for r in records)
warm = sum(r.get("warmup_seconds") or 0 for r in records)
# A process's life less its points' warm-up and timing: start-up, model building, the rounds' own cost.
start_up = sum(life - busy for life, busy in processes.values())
search = sum(r["search_seconds"] for r in searches)
rest = wall = end - start
Path(work, "wall.json").write_text(json.dumps({"seconds": wall}))
rest -= measured + warm + start_up + search
print(f"overhead: wall {wall:.1f} s for {len(records)} throughput points ({len(processes)} timing processes, "
      f"each holding a model's points, plus {len(records)} memory trials) and {len(searches)} largest-batch searches: "
      f"measuring {measured:.1f} s ({measured / wall:.0%} of wall), warm-up {warm:.1f} s ({warm / wall:.0%}), "
      f"process start and model building {start_up:.1f} s ({start_up / wall:.0%}), "
      f"searches {search:.1f} s ({search / wall:.0%}; {sum(r['trials'] for r in searches)} trials), "
      f"the rest (Snakemake jobs, variants, tables, figures) {rest:.1f} s ({rest / wall:.0%})")
print(f"no-op dry run (snakemake -n on complete results): {dry_end - dry_start:.2f} s (target < 3 s)")
print(f"results in {work}")
PY
