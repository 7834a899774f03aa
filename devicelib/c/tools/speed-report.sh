#!/usr/bin/env bash
# Instructions per KiB to open (verify + decrypt) one ChaCha20-Poly1305 frame, ours against
# BearSSL's br_poly1305_ctmul32_run + br_chacha20_ct_run (Debian's libbearssl, the same host),
# counted by callgrind inside the bench_* functions of tests/speed.c only.
# Usage: tools/speed-report.sh path/to/speed   (make speed builds it)
set -euo pipefail
bin=$1
iter=${ITER:-50}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

command -v valgrind >/dev/null || { echo "speed: valgrind is missing (./.ci/deps installs it)" >&2; exit 1; }

# count IMPL SIZE: instructions per open, from callgrind's totals for bench_IMPL.
count() {
	valgrind --tool=callgrind --toggle-collect="bench_$1*" --callgrind-out-file="$out/cg" \
		"$bin" "$1" "$2" "$iter" 2>/dev/null
	awk -v n="$iter" '/^totals:/ { printf "%d", $2 / n }' "$out/cg"
}

printf '%-8s %14s %14s %14s %14s %7s\n' size fota/open bearssl/open fota/KiB bearssl/KiB ratio
for size in 64 512 4096; do
	f=$(count fota "$size")
	b=$(count bearssl "$size")
	awk -v s="$size" -v f="$f" -v b="$b" 'BEGIN {
		printf "%-8s %14d %14d %14.0f %14.0f %7.3f\n", s, f, b, f * 1024 / s, b * 1024 / s, f / b }'
done
