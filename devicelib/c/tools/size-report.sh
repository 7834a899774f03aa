#!/usr/bin/env bash
# Cross-compiles C sources for the ESP8266 (xtensa-lx106, -Os, one section per function, as a
# firmware build links them) and prints per object the bytes of code (.text and the .literal
# pools the LX106 loads constants from), .rodata, .data and .bss, then the stack frame of every
# function from -fstack-usage, largest first.
#
# Usage: tools/size-report.sh SRC.c...        (make size passes the crypto sources)
# With BEARSSL_SRC=/path/to/a/BearSSL/tree it also builds and reports that tree's
# src/symcipher/chacha20_ct.c and poly1305_ctmul32.c, the same way, for comparison.
set -euo pipefail
cd "$(dirname "$0")/.."

cc=${XTENSA_CC:-xtensa-lx106-elf-gcc}
size=${XTENSA_SIZE:-xtensa-lx106-elf-size}
# picolibc supplies <stdint.h>, <stddef.h> and <string.h>; its specs file sets the include path.
specs=${PICOLIBC_SPECS:-/usr/lib/xtensa-lx106-elf/picolibc.specs}
for tool in "$cc" "$size"; do
	command -v "$tool" >/dev/null || { echo "size: $tool is missing (./.ci/deps installs gcc-xtensa-lx106)" >&2; exit 1; }
done
[ -f "$specs" ] || { echo "size: $specs is missing (./.ci/deps installs picolibc-xtensa-lx106-elf)" >&2; exit 1; }

cflags=(-std=c99 -Os -mlongcalls -ffunction-sections -fdata-sections -fstack-usage
	-Wall -Wextra -Wpedantic -Wconversion -Wshadow -Werror "--specs=$specs")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# report TITLE OBJ...: the size table, then the stack frames.
report() {
	local title=$1
	shift
	echo "== $title (xtensa-lx106-elf-gcc -Os) =="
	printf '%-24s %7s %7s %7s %7s\n' object code rodata data bss
	"$size" -A "$@" | awk '
		function flush() { if (obj != "") { printf "%-24s %7d %7d %7d %7d\n", obj, c, r, d, b; tc += c; tr += r; td += d; tb += b } }
		/:$/        { flush(); obj = $1; sub(/.*\//, "", obj); c = r = d = b = 0; next }
		/^\.text/ || /^\.literal/ { c += $2 }
		/^\.rodata/ { r += $2 }
		/^\.data/   { d += $2 }
		/^\.bss/    { b += $2 }
		END { flush(); printf "%-24s %7d %7d %7d %7d\n", "total", tc, tr, td, tb }'
	echo "stack per function (bytes, -fstack-usage; a call chain adds its frames):"
	cat "${@/%.o/.su}" | awk -F'\t' '{ n = split($1, p, ":"); printf "  %6d  %s\n", $2, p[n] }' | sort -rn
	echo
}

objs=()
for src in "$@"; do
	obj="$out/$(basename "${src%.c}").o"
	"$cc" "${cflags[@]}" -Iinclude -Isrc -c "$src" -o "$obj"
	objs+=("$obj")
done
report "fotagate crypto" "${objs[@]}"

if [ -n "${BEARSSL_SRC:-}" ]; then
	bobjs=()
	for f in chacha20_ct poly1305_ctmul32; do
		# BearSSL's own code: no -Werror on its warnings.
		"$cc" -std=c99 -Os -mlongcalls -ffunction-sections -fdata-sections -fstack-usage "--specs=$specs" \
			-I"$BEARSSL_SRC/inc" -I"$BEARSSL_SRC/src" -c "$BEARSSL_SRC/src/symcipher/$f.c" -o "$out/br_$f.o"
		bobjs+=("$out/br_$f.o")
	done
	report "BearSSL chacha20_ct + poly1305_ctmul32, its AEAD glue included, from $BEARSSL_SRC" "${bobjs[@]}"
fi
