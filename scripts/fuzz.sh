#!/usr/bin/env bash
# npm run fuzz -- [--seconds N] [--ts-seconds N] [--target NAME] [--only native|ts] [--jobs J] [--replay]
#
# Builds the libFuzzer harnesses of test/fuzz/native/ into build-fuzz/ and
# runs each for N seconds (default 60) on a scratch copy of its committed
# corpus (test/fuzz/corpus/<target>/), so a run never writes into the repo.
# A crash input is kept under build-fuzz/crashes/ and fails the run. Then,
# unless --only native, the TypeScript fuzzers run (test/fuzz/ts/run.ts),
# --ts-seconds each (default: --seconds). --jobs J runs J targets at a time,
# native and TypeScript alike.
#
# --replay runs every committed corpus file once through its harness (native
# and TS), with no fuzzing: the regression check that keeps a fixed crash fixed.
# docs/fuzzing.md has the targets, what they check and measured numbers.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

seconds=60
ts_seconds=
only=
jobs=1
replay=0
targets=()
while (($#)); do
  case $1 in
    --seconds) seconds=${2:?--seconds needs a value}; shift 2 ;;
    --ts-seconds) ts_seconds=${2:?--ts-seconds needs a value}; shift 2 ;;
    --target) targets+=("${2:?--target needs a name}"); shift 2 ;;
    --only) only=${2:?--only needs native or ts}; shift 2 ;;
    --jobs) jobs=${2:?--jobs needs a count}; shift 2 ;;
    --replay) replay=1; shift ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "fuzz: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -z $only || $only == native || $only == ts ]] || { echo "fuzz: --only takes native or ts" >&2; exit 2; }
ts_seconds=${ts_seconds:-$seconds}
[[ $seconds =~ ^[0-9]+$ && $ts_seconds =~ ^[0-9]+$ && $jobs =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: --seconds, --ts-seconds and --jobs take numbers" >&2; exit 2; }

# Each target: its harness, then the native sources it links (no N-API, no node).
# pseudo_tcp takes the whole mux layer, so a new file there is never left out.
# @lwip stands for lwIP's files as the addon compiles them (binding-sources.json's
# "lwip", under the tree scripts/build-lwip.sh unpacks), resolved only when a
# chosen target needs them.
declare -A sources=(
  [mux_frame]="test/fuzz/native/mux_frame_fuzz.cc native/mux/frame.cc"
  [reassembler]="test/fuzz/native/reassembler_fuzz.cc native/mux/frame.cc"
  [cable_descriptor]="test/fuzz/native/cable_descriptor_fuzz.cc native/usb/cable_descriptor.cc"
  [pseudo_tcp]="test/fuzz/native/pseudo_tcp_fuzz.cc test/fuzz/native/session_harness.cc
    test/fuzz/native/session_checks.cc test/fuzz/native/fake_client.cc $(echo native/mux/*.cc)
    native/core/buffers.cc native/core/event_loop.cc native/core/capture_tap.cc native/core/capture_ring.cc"
  [cdtunnel_stream]="test/fuzz/native/cdtunnel_stream_fuzz.cc native/tunnel/cdtunnel_frame.cc"
  [lwip_input]="test/fuzz/native/lwip_input_fuzz.cc native/tunnel/ipv6_guard.cc native/tunnel/lwip_platform.cc @lwip"
)
# Extra link flags. lwip_input links lwip_platform.cc for what lwIP needs of
# it, but the harness's own clock, random source and assert hook stand in for
# its sys_now, tsmuxd_lwip_rand and tsmuxd_lwip_assert_failed (--wrap).
declare -A link_flags=(
  [lwip_input]="-Wl,--wrap=sys_now -Wl,--wrap=tsmuxd_lwip_rand -Wl,--wrap=tsmuxd_lwip_assert_failed"
)
all_targets=(mux_frame reassembler cable_descriptor pseudo_tcp cdtunnel_stream lwip_input)
((${#targets[@]})) || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [[ -n ${sources[$t]:-} ]] || { echo "fuzz: no target $t (have: ${all_targets[*]})" >&2; exit 2; }
done

out=$repo_root/build-fuzz
failed=0
declare -A result

# lwIP's tree (fetched from Debian's source package on first use) and its files.
lwip_src=
lwip_files=
for t in "${targets[@]}"; do
  if [[ " ${sources[$t]} " == *" @lwip "* && $only != ts ]]; then
    lwip_src=$(bash scripts/build-lwip.sh --print-src) \
      || { echo "fuzz: scripts/build-lwip.sh failed: $t needs lwIP's source" >&2; exit 1; }
    lwip_files=$(node -p 'require("./binding-sources.json").lwip.map((f) => process.argv[1] + "/" + f).join(" ")' "$lwip_src")
    break
  fi
done
for t in "${targets[@]}"; do
  sources[$t]=${sources[$t]//@lwip/$lwip_files}
done

# ---- build: one object per source, rebuilt when it or a header it includes changed ----
CXX=${CXX:-clang++}
CC_FUZZ=${CXX/clang++/clang}
[[ $CC_FUZZ != "$CXX" ]] || CC_FUZZ=clang
sanitize=(-g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
flags=(-std=c++17 -O1 "${sanitize[@]}" -Wall -Wextra -Wno-unused-parameter
  -Inative -Itest/fuzz/native)
# Code that calls lwIP sees its headers and our lwipopts.h (-I, not -isystem:
# -MMD leaves a system header's includes, lwipopts.h among them, out of the
# depfile, and a changed lwipopts.h must rebuild whatever sees lwIP's structs).
lwip_includes=(-I"$lwip_src/src/include" -Inative/tunnel/lwip_port)
# lwIP itself: the addon's flags for it (CMakeLists.txt's tsmuxd_lwip: -O2,
# hidden, its warnings off, our lwipopts.h), plus the fuzzer's instrumentation.
lwip_cflags=(-O2 -fvisibility=hidden -w "${sanitize[@]}" -I"$lwip_src/src/include" -Inative/tunnel/lwip_port)

object_of() {  # source -> build-fuzz/obj/<path>.o (lwIP's under obj/lwip/)
  local src=$1
  if [[ -n $lwip_src && $src == "$lwip_src"/* ]]; then
    src=lwip/${src#"$lwip_src"/}
  fi
  printf '%s\n' "$out/obj/${src%.*}.o"
}

stale() {  # object, depfile: true when any prerequisite is newer
  local obj=$1 dep=$2 f
  [[ -f $obj && -f $dep ]] || return 0
  for f in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$dep"); do
    [[ $f -nt $obj ]] && return 0
  done
  return 1
}

compile() {  # source -> build-fuzz/obj/<path>.o
  local src=$1 obj
  obj=$(object_of "$src")
  mkdir -p "$(dirname "$obj")"
  if stale "$obj" "${obj%.o}.d"; then
    case $src in
      *.c) "$CC_FUZZ" "${lwip_cflags[@]}" -MMD -MF "${obj%.o}.d" -c "$src" -o "$obj" ;;
      test/fuzz/native/lwip_*|native/tunnel/lwip_*)
        "$CXX" "${flags[@]}" "${lwip_includes[@]}" -MMD -MF "${obj%.o}.d" -c "$src" -o "$obj" ;;
      *) "$CXX" "${flags[@]}" -MMD -MF "${obj%.o}.d" -c "$src" -o "$obj" ;;
    esac
  fi
}

build_native() {
  command -v "$CXX" >/dev/null || { echo "fuzz: $CXX not found (apt-get install clang libclang-rt-14-dev)" >&2; return 1; }
  local want=() src t
  declare -A seen=()
  for t in "${targets[@]}"; do
    for src in ${sources[$t]}; do
      [[ -n ${seen[$src]:-} ]] || { seen[$src]=1; want+=("$src"); }
    done
  done
  echo "fuzz: building ${targets[*]} into build-fuzz/ ($CXX, $jobs jobs)"
  local pids=() rc=0
  for src in "${want[@]}"; do
    compile "$src" &
    pids+=($!)
    if ((${#pids[@]} >= jobs)); then wait "${pids[0]}" || rc=1; pids=("${pids[@]:1}"); fi
  done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  ((rc == 0)) || { echo "fuzz: build failed" >&2; return 1; }
  for t in "${targets[@]}"; do
    local objs=() bin=$out/${t}_fuzz relink=0
    for src in ${sources[$t]}; do
      objs+=("$(object_of "$src")")
      [[ ${objs[-1]} -nt $bin ]] && relink=1
    done
    [[ -f $bin ]] || relink=1
    # (An && list would not stop the script: a link error must not pass for a crash later.)
    if ((relink)); then
      # shellcheck disable=SC2086 # link_flags holds several words
      "$CXX" "${flags[@]}" "${objs[@]}" ${link_flags[$t]:-} -o "$bin" \
        || { echo "fuzz: linking $t failed" >&2; rm -f "$bin"; return 1; }
    fi
  done
  return 0
}

# ---- fuzz one target; prints one summary line into build-fuzz/logs/<t>.summary ----
run_target() {
  local t=$1 log=$out/logs/$t.log work
  work=$(mktemp -d "${TMPDIR:-/tmp}/tsmuxd-fuzz-$t.XXXXXX")
  # The committed corpus only seeds a scratch copy: new units land there.
  cp -r "test/fuzz/corpus/$t/." "$work/" 2>/dev/null || true
  mkdir -p "$out/crashes"
  local rc=0
  "$out/${t}_fuzz" -max_total_time="$seconds" -print_final_stats=1 -max_len=4096 -timeout=10 \
    -rss_limit_mb=2560 -artifact_prefix="$out/crashes/$t-" "$work" >"$log" 2>&1 || rc=$?
  local last execs rate cov ft corp crash
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
  crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | head -n 1)
  local status=ok
  if ((rc != 0)) || [[ -n $crash ]]; then status="CRASH ${crash:-(exit $rc, see build-fuzz/logs/$t.log)}"; fi
  printf '%s|%s|%s|%s|%s|%s|%s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" \
    "$status" >"$out/logs/$t.summary"
  rm -rf "$work"
}

# ---- replay the committed corpus: each file once, no fuzzing ----
replay_target() {
  local t=$1 log=$out/logs/$t.replay.log files=()
  mapfile -t files < <(find "test/fuzz/corpus/$t" -type f | sort)
  if ((${#files[@]} == 0)); then result[$t]="no corpus"; return 0; fi
  if "$out/${t}_fuzz" -runs=1 "${files[@]}" >"$log" 2>&1; then
    result[$t]="ok: ${#files[@]} inputs"
  else
    result[$t]="CRASH (see build-fuzz/logs/$t.replay.log)"
    grep -E 'Running: |invariant broken|ERROR:' "$log" | tail -n 5 >&2 || true
    failed=1
  fi
}

native_status=skipped
if [[ $only != ts ]]; then
  mkdir -p "$out/logs"
  build_native || exit 1
  if ((replay)); then
    for t in "${targets[@]}"; do replay_target "$t"; done
    printf '\n%-18s %s\n' target replay
    for t in "${targets[@]}"; do printf '%-18s %s\n' "$t" "${result[$t]}"; done
  else
    echo "fuzz: ${seconds}s per target, $jobs at a time; logs in build-fuzz/logs/"
    pids=()
    for t in "${targets[@]}"; do
      rm -f "$out/logs/$t.summary"
      run_target "$t" &
      pids+=($!)
      if ((${#pids[@]} >= jobs)); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
    done
    for p in "${pids[@]}"; do wait "$p"; done
    printf '\n%-18s %12s %9s %7s %8s %12s  %s\n' target execs exec/s cov ft corpus result
    for t in "${targets[@]}"; do
      IFS='|' read -r name execs rate cov ft corp status <"$out/logs/$t.summary"
      printf '%-18s %12s %9s %7s %8s %12s  %s\n' "$name" "$execs" "$rate" "$cov" "$ft" "$corp" "$status"
      [[ $status == ok ]] || failed=1
    done
  fi
  native_status=$([[ $failed == 0 ]] && echo ok || echo FAILED)
fi

ts_status=skipped
if [[ $only != native ]]; then
  if [[ -f test/fuzz/ts/run.ts ]]; then
    npm run build
    ts_args=(--seconds "$ts_seconds" --jobs "$jobs")
    ((replay)) && ts_args=(--replay)
    if [[ ! -f dist/test/fuzz/ts/run.js ]]; then
      # tsconfig.build.json must include test/fuzz/ts for npm run build to emit it.
      echo "fuzz: npm run build did not emit dist/test/fuzz/ts/run.js" >&2
      ts_status=FAILED
      failed=1
    elif node dist/test/fuzz/ts/run.js "${ts_args[@]}"; then
      ts_status=ok
    else
      ts_status=FAILED
      failed=1
    fi
  else
    echo "fuzz: the TypeScript fuzzers are absent (no test/fuzz/ts/run.ts); skipped"
    ts_status=absent
  fi
fi

printf '\nfuzz summary: native %s, typescript %s\n' "$native_status" "$ts_status"
exit "$failed"
