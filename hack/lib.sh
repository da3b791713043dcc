# Shared by the hack/ scripts (sourced, not run).
#
# Phase timing: `phase_start NAME` ... `phase_end` prints NAME's wall time as it ends and records
# it in $KAR_PHASES; `phase_report` prints them all. A caller that runs several scripts (.ci/run)
# sets KAR_PHASES to one file for all of them; otherwise each script has a fresh one.

if [[ -z ${KAR_PHASES:-} ]]; then
  KAR_PHASES=$(mktemp -t kar-phases.XXXXXX)
fi
export KAR_PHASES

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
