#!/usr/bin/env bash
# Instructions for one Ed25519 verification (RFC 8032 TEST 3: a 2-byte message, so the count is
# the verification, not the hashing of a long message), counted by callgrind inside the
# harness's verify call only: the count is repeatable, unlike a time.
# Usage: tools/ed25519-speed.sh path/to/ed25519_speed   (make speed-ed25519 builds it)
set -euo pipefail
bin=$1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

command -v valgrind >/dev/null || { echo "speed: valgrind is missing (./.ci/deps installs it)" >&2; exit 1; }

pub=fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025
sig=6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a
# count MSG SIG: instructions of one verify request, and its answer.
count() {
	answer=$(echo "verify 0 $pub $1 $2" | valgrind --tool=callgrind --toggle-collect='verify_chunked*' \
		--callgrind-out-file="$out/cg" "$bin" 2>/dev/null)
	awk -v a="$answer" '/^totals:/ { printf "%d (%s)", $2, a }' "$out/cg"
}
echo "one Ed25519 verification, RFC 8032 TEST 3 (valid):        $(count af82 "$sig") instructions"
bad=${sig:0:2}$(printf '%02x' $((0x${sig:2:2} ^ 1)))${sig:4}
echo "the same with one bit of R flipped (invalid, full work): $(count af82 "$bad") instructions"
