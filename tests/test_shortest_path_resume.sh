#!/bin/sh
# A shortest_path run killed with SIGKILL and resumed from its checkpoint ends with the
# same final metrics as an uninterrupted run of the same seed (bit-exact --resume), on
# both tasks, with stochastic methods (the rng state is part of the checkpoint).
set -eu
prog=${PROG:-experiments/shortest_path}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
final() { tail -n 1 "$1" | sed 's/"seconds": *[0-9.e+-]*,//'; }
passed=0

check() { # name, options...
    name=$1
    shift
    $prog "$@" --out "$tmp/$name-full.jsonl" > /dev/null 2>&1

    # stop cleanly after 2 epochs, then resume to 4
    $prog "$@" --epochs 2 --checkpoint "$tmp/$name-a.ck" --out "$tmp/$name-a.jsonl" > /dev/null 2>&1
    $prog "$@" --checkpoint "$tmp/$name-a.ck" --resume --out "$tmp/$name-a.jsonl" > /dev/null 2>&1
    [ "$(final "$tmp/$name-full.jsonl")" = "$(final "$tmp/$name-a.jsonl")" ] ||
        { echo "FAIL $name: stop + resume differs:"; final "$tmp/$name-full.jsonl";
          final "$tmp/$name-a.jsonl"; exit 1; }

    # SIGKILL as soon as a checkpoint exists, then resume
    $prog "$@" --checkpoint "$tmp/$name-b.ck" --out "$tmp/$name-b.jsonl" > /dev/null 2>&1 &
    pid=$!
    while [ ! -f "$tmp/$name-b.ck" ] && kill -0 $pid 2>/dev/null; do sleep 0.01; done
    kill -9 $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
    $prog "$@" --checkpoint "$tmp/$name-b.ck" --resume --out "$tmp/$name-b.jsonl" > /dev/null 2>&1
    [ "$(final "$tmp/$name-full.jsonl")" = "$(final "$tmp/$name-b.jsonl")" ] ||
        { echo "FAIL $name: kill + resume differs:"; final "$tmp/$name-full.jsonl";
          final "$tmp/$name-b.jsonl"; exit 1; }
    # a checkpoint of another run is refused
    if $prog "$@" --method blackbox:lambda=5 --checkpoint "$tmp/$name-a.ck" --resume \
        > /dev/null 2>&1; then
        echo "FAIL $name: resumed a checkpoint of another method"; exit 1
    fi
    passed=$((passed + 1))
}

check terrain --task terrain --method fy:sigma=0.5:samples=3 --grid 4 --train-maps 12 \
    --test-maps 4 --batch 4 --epochs 4 --eval-every 1 --threads 1 --seed 3
check pyepo --task pyepo --method smooth_loss:samples=8 --newton hessian --train-maps 40 \
    --test-maps 20 --batch 8 --epochs 4 --eval-every 1 --threads 1 --seed 2
echo "$passed passed, 0 failed"
