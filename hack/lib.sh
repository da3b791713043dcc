# Shared by the hack/ scripts (sourced, not run).
#
# Phase timing: `phase_start NAME` ... `phase_end` prints NAME's wall time as it ends and records
# it in $KAR_PHASES (default target/phases.txt, appended to, so that a caller such as .ci/run
# that runs several scripts can print them all at the end with `phase_report`).

: "${KAR_PHASES:=$PWD/target/phases.txt}"
export KAR_PHASES
mkdir -p "$(dirname "$KAR_PHASES")"

_phase_name=
_phase_t0=

phase_start() {
  _phase_name=$1
  _phase_t0=$(date +%s.%N)
  echo "== $1" >&2
}

phase_end() {
  local secs
  secs=$(awk -v a="$(date +%s.%N)" -v b="$_phase_t0" 'BEGIN { print a - b }')
  printf '%-48s %8.1f s\n' "$_phase_name" "$secs" >>"$KAR_PHASES"
  printf '== %s: %.1f s\n' "$_phase_name" "$secs" >&2
}

phase_report() {
  echo "phase times (wall clock):"
  cat "$KAR_PHASES"
}
