#!/bin/sh
# A ranking run killed with SIGKILL and resumed from its checkpoint ends with the same
# final metrics as an uninterrupted run of the same seed (issue: bit-exact --resume).
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

# SIGKILL as soon as a checkpoint exists, then resume
$prog $common --checkpoint "$tmp/b.ck" --out "$tmp/b.jsonl" > /dev/null 2>&1 &
pid=$!
while [ ! -f "$tmp/b.ck" ] && kill -0 $pid 2>/dev/null; do sleep 0.05; done
kill -9 $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
$prog $common --checkpoint "$tmp/b.ck" --resume --out "$tmp/b.jsonl" > /dev/null 2>&1
[ "$(final "$tmp/full.jsonl")" = "$(final "$tmp/b.jsonl")" ] ||
    { echo "FAIL: kill + resume differs:"; final "$tmp/full.jsonl"; final "$tmp/b.jsonl"; exit 1; }
echo "1 passed, 0 failed"
