#!/bin/sh
# A ranking run killed with SIGKILL and resumed from its checkpoint ends with the same
# final metrics as an uninterrupted run of the same seed (issue: bit-exact --resume):
# after a clean stop, after a kill, with the newest checkpoint damaged after a kill
# (truncated or one byte changed: rejected with a message, the previous one FILE.prev is
# used and the steps after it are replayed), and killed again and again, at random
# moments and inside checkpoint writes (at least one kill must land in a write).
set -eu
prog=${PROG:-experiments/ranking}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
common="--n 3 --batch 2 --steps 8 --eval-every 1 --test-sets 8 --threads 1 --seed 3"
final() { tail -n 1 "$1" | sed 's/"seconds": *[0-9.e+-]*,//'; }

$prog $common --out "$tmp/full.jsonl" > /dev/null 2>&1

# stop cleanly after 4 steps, then resume to 8
$prog $common --steps 4 --checkpoint "$tmp/a.ck" --out "$tmp/a.jsonl" > /dev/null 2>&1
$prog $common --checkpoint "$tmp/a.ck" --resume --out "$tmp/a.jsonl" > /dev/null 2>&1
[ "$(final "$tmp/full.jsonl")" = "$(final "$tmp/a.jsonl")" ] ||
    { echo "FAIL: stop + resume differs:"; final "$tmp/full.jsonl"; final "$tmp/a.jsonl"; exit 1; }
# resuming a finished run (a kill after its last checkpoint) appends nothing
lines=$(wc -l < "$tmp/a.jsonl")
$prog $common --checkpoint "$tmp/a.ck" --resume --out "$tmp/a.jsonl" > /dev/null 2>&1
[ "$(wc -l < "$tmp/a.jsonl")" = "$lines" ] && [ "$(final "$tmp/full.jsonl")" = "$(final "$tmp/a.jsonl")" ] ||
    { echo "FAIL: resuming a finished run changed its output"; tail -n 2 "$tmp/a.jsonl"; exit 1; }

# SIGKILL as soon as a checkpoint exists, then resume
$prog $common --checkpoint "$tmp/b.ck" --out "$tmp/b.jsonl" > /dev/null 2>&1 &
pid=$!
while [ ! -f "$tmp/b.ck" ] && kill -0 $pid 2>/dev/null; do sleep 0.05; done
kill -9 $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
$prog $common --checkpoint "$tmp/b.ck" --resume --out "$tmp/b.jsonl" > /dev/null 2>&1
[ "$(final "$tmp/full.jsonl")" = "$(final "$tmp/b.jsonl")" ] ||
    { echo "FAIL: kill + resume differs:"; final "$tmp/full.jsonl"; final "$tmp/b.jsonl"; exit 1; }

fail() { echo "FAIL: $*"; exit 1; }
same_final() {
    [ "$(final "$tmp/full.jsonl")" = "$(final "$1")" ] ||
        { echo "FAIL: $2 differs:"; final "$tmp/full.jsonl"; final "$1"; exit 1; }
}

# damage the newest checkpoint after a kill, then resume from the previous one
for damage in truncate change; do
    ck="$tmp/c-$damage.ck"
    $prog $common --checkpoint "$ck" --out "$tmp/c.jsonl" > /dev/null 2>&1 &
    pid=$!
    while ! { [ -f "$ck" ] && [ -f "$ck.prev" ]; } && kill -0 $pid 2>/dev/null; do sleep 0.02; done
    kill -9 $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
    [ -f "$ck.prev" ] || fail "no previous checkpoint $ck.prev after two evaluations"
    if [ -f "$ck" ]; then # (else the kill fell between the two renames of a save)
        size=$(wc -c < "$ck")
        if [ $damage = truncate ]; then
            head -c $((size / 2)) "$ck" > "$tmp/cut" && mv "$tmp/cut" "$ck"
            why="truncated"
        else
            cp "$ck" "$tmp/orig"
            printf '\377' | dd of="$ck" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
            cmp -s "$ck" "$tmp/orig" &&
                printf '\000' | dd of="$ck" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
            why="CRC mismatch"
        fi
        $prog $common --checkpoint "$ck" --resume --out "$tmp/c.jsonl" \
            > /dev/null 2> "$tmp/c.err" ||
            { cat "$tmp/c.err"; fail "resume from the previous checkpoint ($damage)"; }
        grep -q "rejected.*$why.*previous checkpoint" "$tmp/c.err" ||
            { cat "$tmp/c.err"; fail "no rejection message for the $damage checkpoint"; }
    else
        $prog $common --checkpoint "$ck" --resume --out "$tmp/c.jsonl" > /dev/null 2>&1
    fi
    same_final "$tmp/c.jsonl" "resume after a $damage checkpoint"
done

# kill at random moments (odd attempts) and as soon as a checkpoint write has started
# (even attempts: its temporary file exists), resuming each time
ck="$tmp/d.ck"
in_write() {
    [ -f "$ck.prev" ] && [ ! -f "$ck" ] && return 0 # between the two renames
    for f in "$ck".tmp.*; do [ -e "$f" ] && return 0; done
    return 1
}
attempt=0 in_writes=0 kills=0
while :; do
    attempt=$((attempt + 1))
    resume=
    if [ -f "$ck" ] || [ -f "$ck.prev" ]; then resume=--resume; fi
    $prog $common --checkpoint "$ck" $resume --out "$tmp/d.jsonl" > /dev/null 2> "$tmp/d.err" &
    pid=$!
    if [ $attempt -gt 6 ]; then
        wait $pid || { cat "$tmp/d.err"; fail "the last resume failed"; }
        break
    fi
    if [ $((attempt % 2)) -eq 1 ]; then
        sleep "$(awk -v s=$attempt 'BEGIN { srand(s); printf "%.2f", 0.25 + 0.5 * rand() }')"
    else
        while kill -0 $pid 2>/dev/null && ! in_write; do sleep 0.001; done
    fi
    kill -9 $pid 2>/dev/null || true
    status=0
    wait $pid 2>/dev/null || status=$?
    [ $status -ne 0 ] || break # finished before the kill
    [ $status -eq 137 ] || { cat "$tmp/d.err"; fail "attempt $attempt exited with status $status"; }
    kills=$((kills + 1))
    if in_write; then in_writes=$((in_writes + 1)); fi
    rm -f "$ck".tmp.*
done
same_final "$tmp/d.jsonl" "resume after $kills kills"
[ $in_writes -gt 0 ] || fail "none of the $kills kills landed inside a checkpoint write"
echo "5 passed, 0 failed ($kills kills, $in_writes inside a checkpoint write)"
