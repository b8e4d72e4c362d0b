#!/usr/bin/env bash
# The first GPU window (issue 13) in one command, run from the root of the carried checkout:
#
#   tools/window_1.sh --out "$OUT" [--seconds 570]      # on the GPU machine (.carry from tools/remote_carry)
#   tools/window_1.sh --out OUT --seconds 300 --rehearse --python .venv/bin/python --data ../shared/data
#
# In order, each step only while the budget (--seconds, under the device's 600 s per command) has room:
#  1. chapters 3, 4 and 5 trained in this one command (the backbone's weights exist only here) by
#     tools/remote_run: the carried wheels installed, the imports checked, then the plan's missing runs against
#     the deadline, one process, each appended to OUT/results.tar as soon as it is stored;
#  2. tests/gpu, its output in OUT/gpu_tests.log (from GPU_TESTS_S left);
#  3. benchmarks/throughput.py, its rows merged into OUT/benchmarks/<device>.json after every setting (from
#     BENCH_MIN_S left);
#  4. the pages of chapters 3-5 and the status page (OUT/chapters.tar); a page not rendered here renders on any
#     CPU from the store (tools/execute_chapters --no-train).
# OUT/window.log says what each step did; tools/remote_unpack OUT writes it all into the repository. Runs,
# weights and decoded data stay in --scratch (/tmp/window_1): called again on the same machine, a run cut off
# resumes from its last epoch and chapter 3's weights are still there; on a fresh one, stored runs are not
# trained again (only chapter 3's, when chapters 4-5 still miss runs: its weights are needed).
# --rehearse: the same steps on a CPU: the smoke configuration made smaller, nothing installed, --tiny settings.
set -uo pipefail
cd "$(dirname "$0")/.."

GPU_TESTS_S=150  # tests/gpu on an H100: about two minutes, most of it torch.compile
BENCH_MIN_S=90   # one benchmark setting: its compile and timed windows
CHAPTERS=(03_source_backbone 04_baseline 05_improved)

out="" budget=570 python=python3 data=.carry/data wheels=.carry/wheels scratch=/tmp/window_1 rehearse=false
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --seconds) budget=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --wheels) wheels=$2; shift 2 ;;
    --scratch) scratch=$2; shift 2 ;;
    --rehearse) rehearse=true; shift ;;
    *) echo "tools/window_1.sh: unknown argument $1 (see the comment at its top)" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "tools/window_1.sh: pass --out DIR (on the GPU machine: --out \"\$OUT\")" >&2; exit 2; }
[ -d "$data" ] || { echo "tools/window_1.sh: no data folder $data (carry it: tools/remote_carry)" >&2; exit 2; }
mkdir -p "$out/benchmarks" "$scratch"
out=$(cd "$out" && pwd) data=$(cd "$data" && pwd) scratch=$(cd "$scratch" && pwd)
site=$scratch/site
log() { echo "$(date +%H:%M:%S) [window_1] $*" | tee -a "$out/window.log"; }
left() { echo $((budget - SECONDS)); }

remote=(--data "$data" --out "$out" --scratch "$scratch" --site "$site" --workers 1)
bench=()
if $rehearse; then
  printf 'epochs: 1\nmax_steps_per_epoch: 2\ntrain_per_class: 10\ntest_per_class: 10\n' > "$scratch/small.yaml"
  remote+=(--no-install --smoke -f "$scratch/small.yaml")
  bench=(--tiny)
else
  remote+=(--wheels "$wheels")
fi
minutes() { awk -v s="$(left)" 'BEGIN { printf "%.3f", s / 60 }'; }

log "budget $budget s; output $out; scratch $scratch"
"$python" tools/remote_run "${remote[@]}" --no-render --minutes "$(minutes)" --chapters "${CHAPTERS[@]}"
log "training: rc $? ($(left) s left)"

export PYTHONPATH="lib:$site" CONVNEXT_REPORT_DATA="$data" CONVNEXT_REPORT_CACHE="$scratch/cache"
if [ "$(left)" -ge "$GPU_TESTS_S" ]; then
  timeout "$(left)" "$python" -m pytest tests/gpu -q -p no:cacheprovider > "$out/gpu_tests.log" 2>&1
  log "tests/gpu: rc $? ($(left) s left): $(tail -n 1 "$out/gpu_tests.log")"
else
  log "tests/gpu: skipped, $(left) s left"
fi

if [ "$(left)" -ge "$BENCH_MIN_S" ]; then
  cp benchmarks/results/*.json "$out/benchmarks/" 2>/dev/null  # throughput.py merges its rows into its device's file
  timeout "$(left)" "$python" benchmarks/throughput.py ${bench[@]+"${bench[@]}"} --out "$out/benchmarks" \
    --budget-seconds $(($(left) - BENCH_MIN_S)) >> "$out/window.log" 2>&1
  log "benchmark: rc $? ($(left) s left)"
  for rows in "$out"/benchmarks/*.json; do  # only what changed goes back
    cmp -s "$rows" "benchmarks/results/$(basename "$rows")" && rm "$rows"
  done
else
  log "benchmark: skipped, $(left) s left"
fi

if [ "$(left)" -ge 10 ]; then
  "$python" tools/remote_run "${remote[@]}" --no-install --no-train --minutes "$(minutes)" \
    --chapters "${CHAPTERS[@]}" status
  log "pages: rc $? ($(left) s left)"
else
  log "pages: skipped, $(left) s left: render them from the store (tools/execute_chapters --no-train)"
fi
log "done in $SECONDS s"
