#!/usr/bin/env bash
# What the device library costs on an ESP8266, measured on the cross-compiled code
# (xtensa-lx106-elf-gcc with picolibc, -Os -mlongcalls, one section per function):
#
#  1. Flash and RAM of the protocol core (fota.c) and the crypto, as a firmware links them:
#     --gc-sections from the API entry points (so functions nothing calls, such as the
#     stack-hungry one-shot crypto wrappers, are not counted) and the linker's longcall
#     relaxation. code = .text + .literal; read per object from the link map.
#  2. sizeof(struct fota_ctx) for each FOTA_MAX_PAYLOAD: the RAM a session needs.
#  3. Worst-case stack per API call: the sum of -fstack-usage frames along the deepest call
#     chain of -fcallgraph-info (tools/stack-chains.awk), platform callbacks not included.
#  4. Every function's code and frame, largest first.
#  5. The same code linked with -flto, for firmware that builds with link-time optimization:
#     the library's sources are unchanged and still compile to separate objects; only the
#     firmware's compile and link flags add -flto. The table above is without it.
#  6. The library's RAM on the ESP8266 itself (__ets__ defined: constant tables in flash), and
#     BearSSL's TLS client contexts measured by the same compiler (Debian's libbearssl-dev).
# Each for the default build and with -DFOTA_WITH_ED25519 (vendor signatures: SHA-512 and Ed25519
# verification added, and the stack of fota_feed's chain through the check).
#
# Usage: tools/size-report.sh           (make size)
# With BEARSSL_SRC=/path/to/a/BearSSL/tree it also builds that tree's chacha20_ct.c and
# poly1305_ctmul32.c the same way, for comparison with our ChaCha20 + Poly1305 + AEAD.
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

crypto=(src/fota_ct.c src/fota_chacha20.c src/fota_poly1305.c src/fota_aead.c src/fota_sha256.c src/fota_hmac.c)
core=(src/fota.c)
ed25519=(src/fota_sha512.c src/fota_ed25519.c)
api="fota_init_abi fota_start fota_feed fota_erase_ahead fota_close fota_decline fota_tx fota_error fota_manifest fota_retry_after fota_progress fota_confirm"
payloads=${PAYLOADS:-256 512 1024 4096}
cflags=(-std=c99 -Os -mlongcalls -ffunction-sections -fdata-sections -fstack-usage -fcallgraph-info=su
	-Wall -Wextra -Wpedantic -Wconversion -Wshadow -Werror "--specs=$specs" -Iinclude -Isrc)
# The same code generation without the per-function stack files, which -flto does not give.
ltoflags=(-std=c99 -Os -mlongcalls -ffunction-sections -fdata-sections -Wall -Wextra -Wpedantic
	-Wconversion -Wshadow -Werror "--specs=$specs" -Iinclude -Isrc)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# A firmware-like link: flash code at 0x40200000 (irom0), literals before the code that loads
# them (as the SDK's linker script places them), RAM data elsewhere; libgcc's division comes
# from the ESP8266 mask ROM (eagle.rom.addr.v6.ld), not from flash.
cat >"$out/fw.ld" <<'EOF'
ENTRY(fota_size_entry)
PROVIDE(__udivsi3 = 0x4000e21c);
PROVIDE(__umodsi3 = 0x4000e268);
SECTIONS {
  .irom0.text 0x40200000 : { *(.literal .literal.* .text .text.*) *(.irom.text .irom.text.*) }
  .rodata 0x3ffe8000 : { *(.rodata .rodata.*) }
  .data : { *(.data .data.*) }
  .bss : { *(.bss .bss.* COMMON) }
  /DISCARD/ : { *(.comment) *(.xt.*) *(.xtensa.info) }
}
EOF
# Every API call reached, as an application would; and the context's size as a symbol.
{
	echo '#include "fota.h"'
	echo 'struct fota_ctx fota_size_ctx;'
	echo 'void fota_size_entry(const struct fota_config *c, const uint8_t *d, size_t n);'
	echo 'void fota_size_entry(const struct fota_config *c, const uint8_t *d, size_t n)'
	echo '{ size_t u; struct fota_progress p; fota_init(&fota_size_ctx, c); fota_start(&fota_size_ctx);'
	echo '  fota_feed(&fota_size_ctx, d, n, &u); fota_erase_ahead(&fota_size_ctx); fota_close(&fota_size_ctx); fota_decline(&fota_size_ctx);'
	echo '  fota_tx(&fota_size_ctx, &u); fota_error(&fota_size_ctx); fota_manifest(&fota_size_ctx);'
	echo '  fota_retry_after(&fota_size_ctx); fota_progress(&fota_size_ctx, &p); fota_confirm(c); }'
} >"$out/entry.c"

# sizes MAP OBJ...: code rodata data bss of the objects' input sections in a link map.
sizes() {
	local map=$1
	shift
	awk -v objs="$*" '
		function hex(s,    i, v, c) { v = 0; s = tolower(substr(s, 3))
			for (i = 1; i <= length(s); i++) { c = index("0123456789abcdef", substr(s, i, 1)) - 1; v = v * 16 + c }
			return v }
		BEGIN { n = split(objs, o, " "); for (i = 1; i <= n; i++) want[o[i]] = 1 }
		/^Linker script and memory map/ { go = 1 }
		!go { next }
		# An input section: " .name 0xADDR 0xSIZE file", or its name alone with the rest below.
		/^ \.[^ ]+$/ { pend = $1; next }
		{ if (pend != "" && $1 ~ /^0x/) { sec = pend; sz = $2; file = $3 } else if ($1 ~ /^\./ && $2 ~ /^0x/ && NF >= 4) { sec = $1; sz = $3; file = $4 } else { pend = ""; next }
		  pend = ""; sub(/.*\//, "", file); if (file ~ /\.ltrans[0-9]*\.ltrans\.o$/) file = "ltrans"
		  if (!(file in want)) next
		  if (sec ~ /^\.(text|literal)/) c += hex(sz); else if (sec ~ /^\.rodata/) r += hex(sz)
		  else if (sec ~ /^\.data/) d += hex(sz); else if (sec ~ /^\.bss/) b += hex(sz) }
		END { printf "%d %d %d %d\n", c, r, d, b }' "$map"
}

echo "== fotagate device library on the ESP8266: $($cc --version | head -1), -Os, linked with --gc-sections =="
echo "code = .text + .literal after relaxation, only what the API reaches; RAM = sizeof(struct fota_ctx)"
echo "(the frame buffer is FOTA_BODY_SIZE of it); stack = deepest chain below an API call, callbacks excluded"
echo
echo "ed25519 = SHA-512 + Ed25519 verification, linked with -DFOTA_WITH_ED25519 (rows +ed25519); it is counted"
echo "in code, not in crypto; with it, stack is that of fota_feed's chain through the signature check"
echo
printf '%-12s %6s %6s %7s %6s %6s %6s %6s %6s %7s %7s %6s\n' payload core crypto ed25519 code rodata data bss ctx body ctx-body stack
first=""
for variant in plain ed25519; do
for p in $payloads; do
	d="$out/$p-$variant"
	mkdir -p "$d"
	objs=()
	srcs=("${crypto[@]}" "${core[@]}" "$out/entry.c")
	vflags=()
	if [ "$variant" = ed25519 ]; then
		srcs+=("${ed25519[@]}")
		vflags=(-DFOTA_WITH_ED25519)
	fi
	for src in "${srcs[@]}"; do
		obj="$d/$(basename "${src%.c}").o"
		"$cc" "${cflags[@]}" "${vflags[@]}" -DFOTA_MAX_PAYLOAD="$p" -c "$src" -o "$obj"
		objs+=("$obj")
	done
	"$cc" "--specs=$specs" -nostartfiles -nostdlib -T "$out/fw.ld" -Wl,--gc-sections -Wl,-Map,"$d/map" \
		"${objs[@]}" -lc -lgcc -o "$d/fw.elf"
	read -r cc_ cr_ cd_ cb_ < <(sizes "$d/map" fota.o)
	read -r kc kr kd kb < <(sizes "$d/map" fota_ct.o fota_chacha20.o fota_poly1305.o fota_aead.o fota_sha256.o fota_hmac.o)
	ctx=$("$size" -A "$d/entry.o" | awk '/^\.bss/ { s += $2 } END { print s }')
	body=$((p + 16 > 174 ? p + 16 : 174))
	read -r ec er ed_ eb < <(sizes "$d/map" fota_sha512.o fota_ed25519.o)
	stack=$(awk -f tools/stack-chains.awk -v roots="$api" "$d"/*.ci | sort -k2 -n | tail -1 | awk '{ print $2 }')
	label=$p
	[ "$variant" = plain ] || label="$p+ed25519"
	printf '%-12s %6d %6d %7d %6d %6d %6d %6d %6d %7d %7d %6d\n' "$label" "$cc_" "$kc" "$ec" $((cc_ + kc + ec)) \
		$((cr_ + kr + er)) $((cd_ + kd + ed_)) $((cb_ + kb + eb)) "$ctx" "$body" $((ctx - body)) "$stack"
	[ -n "$first" ] || first=$p
done
done
# The ESP8266 maps .rodata into its RAM. Builds for it define __ets__ (the SDK's and the
# Arduino core's do), which puts the constant tables in flash (FOTA_RODATA): the RAM the
# library takes there is the context, .data, .bss and the .rodata left.
d="$out/ets"
mkdir -p "$d"
objs=()
for src in "${crypto[@]}" "${core[@]}" "$out/entry.c"; do
	obj="$d/$(basename "${src%.c}").o"
	"$cc" "${cflags[@]}" -D__ets__ -DFOTA_MAX_PAYLOAD="$first" -c "$src" -o "$obj"
	objs+=("$obj")
done
"$cc" "--specs=$specs" -nostartfiles -nostdlib -T "$out/fw.ld" -Wl,--gc-sections -Wl,-Map,"$d/map" \
	"${objs[@]}" -lc -lgcc -o "$d/fw.elf"
read -r _ er ed eb < <(sizes "$d/map" fota.o fota_ct.o fota_chacha20.o fota_poly1305.o fota_aead.o fota_sha256.o fota_hmac.o)
eflash=$(awk '/^ \.irom\.text/ && $3 ~ /^0x/ { v = 0; s = tolower(substr($3, 3)); for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; t += v } END { print t + 0 }' "$d/map")
ectx=$("$size" -A "$d/entry.o" | awk '/^\.bss/ { s += $2 } END { print s }')
ebody=$((first + 16 > 174 ? first + 16 : 174))
echo
echo "On the ESP8266 (built with __ets__ defined, as its SDK and Arduino core do; FOTA_MAX_PAYLOAD=$first):"
echo "  constant tables in flash (.irom.text): $eflash B; .rodata left in RAM: $er B"
echo "  RAM: context less frame buffer $((ectx - ebody)) + .rodata $er + .data $ed + .bss $eb = $((ectx - ebody + er + ed + eb)) B, plus the frame buffer ($ebody B)"

# TLS's state on the same chip, for comparison: BearSSL's client and X.509 contexts, measured
# by the same compiler from Debian's libbearssl-dev headers (copied aside, so that no other
# host header comes along), before any record buffer.
brh=${BEARSSL_INCLUDE:-/usr/include}
[ -f "$brh/bearssl.h" ] || { echo "size: $brh/bearssl.h is missing (./.ci/deps installs libbearssl-dev)" >&2; exit 1; }
mkdir -p "$out/br/inc"
cp "$brh/bearssl.h" "$out/br/inc/"
[ ! -d "$brh/bearssl" ] || cp -r "$brh/bearssl" "$out/br/inc/"
cat >"$out/br/ctx.c" <<'EOF_BR'
#include <bearssl.h>
char br_client[sizeof(br_ssl_client_context)];
char br_x509[sizeof(br_x509_minimal_context)];
EOF_BR
"$cc" -std=c99 -Os -mlongcalls "--specs=$specs" -I"$out/br/inc" -c "$out/br/ctx.c" -o "$out/br/ctx.o"
read -r brc brx < <("${cc%gcc}nm" -S "$out/br/ctx.o" | awk '
	function hex(s,    i, v) { v = 0; s = tolower(s); for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return v }
	$4 == "br_client" { c = hex($2) } $4 == "br_x509" { x = hex($2) } END { print c + 0, x + 0 }')
echo
echo "BearSSL's TLS client on the same chip (same compiler, Debian's libbearssl-dev headers), before its record buffers:"
echo "  sizeof(br_ssl_client_context) $brc B + sizeof(br_x509_minimal_context) $brx B = $((brc + brx)) B"

# -flto: the library compiled to GIMPLE and optimized as one unit at the link; its code
# is what the link-time partitions (ltrans objects) hold, core and crypto no longer apart.
echo
echo "Linked with -flto (firmware compile and link flags; the sources unchanged), core + crypto code:"
for p in $payloads; do
	d="$out/$p-lto"
	mkdir -p "$d"
	objs=()
	for src in "${crypto[@]}" "${core[@]}"; do
		obj="$d/$(basename "${src%.c}").o"
		"$cc" "${ltoflags[@]}" -flto -DFOTA_MAX_PAYLOAD="$p" -c "$src" -o "$obj"
		objs+=("$obj")
	done
	"$cc" "${ltoflags[@]}" -DFOTA_MAX_PAYLOAD="$p" -c "$out/entry.c" -o "$d/entry.o"
	"$cc" "${ltoflags[@]}" -flto -nostartfiles -nostdlib -T "$out/fw.ld" -Wl,--gc-sections \
		-Wl,-Map,"$d/map" "${objs[@]}" "$d/entry.o" -lc -lgcc -o "$d/fw.elf"
	read -r lc _ < <(sizes "$d/map" ltrans)
	read -r pc _ < <(sizes "$out/$p-plain/map" fota.o fota_ct.o fota_chacha20.o fota_poly1305.o fota_aead.o fota_sha256.o fota_hmac.o)
	printf '  %-10s %6d   (without -flto %d)\n' "$p" "$lc" "$pc"
done

d="$out/$first-plain"
de="$out/$first-ed25519"
echo
echo "Per object at FOTA_MAX_PAYLOAD=$first (code rodata data bss):"
for o in fota.o fota_ct.o fota_chacha20.o fota_poly1305.o fota_aead.o fota_sha256.o fota_hmac.o; do
	printf '  %-18s %s\n' "$o" "$(sizes "$d/map" "$o")"
done
echo "  (fota_names.c, fota_err_name's strings, is linked only by firmware that logs them:"
"$cc" "${cflags[@]}" -c src/fota_names.c -o "$out/names.o"
echo "   $("$size" -A "$out/names.o" | awk '/^\.(text|literal)/ { c += $2 } /^\.rodata/ { r += $2 } END { printf "%d code, %d rodata", c, r }'))"
echo
echo "Worst-case stack per API call at FOTA_MAX_PAYLOAD=$first (bytes; chain of -fstack-usage frames):"
awk -f tools/stack-chains.awk -v roots="$api" "$d"/*.ci | sort -k2 -rn
echo
echo "With FOTA_WITH_ED25519: SHA-512 and Ed25519 per object (code rodata data bss), and the deepest"
echo "chains: fota_feed through the signature check, and fota_ed25519_final alone:"
for o in fota.o fota_sha512.o fota_ed25519.o; do
	printf '  %-18s %s\n' "$o" "$(sizes "$de/map" "$o")"
done
awk -f tools/stack-chains.awk -v roots="fota_feed fota_ed25519_final" "$de"/*.ci
echo
echo "Functions linked, largest code first (bytes of code, frame):"
# GCC names a specialized copy "f.constprop" in .su files and "f$constprop$0" in symbols: both
# are listed as f.
cat "$d"/*.su | awk -F'\t' '{ n = split($1, p, ":"); f = p[n]; sub(/\..*/, "", f); print f, $2 }' | sort -u >"$out/frames"
"${cc%gcc}nm" -S "$d/fw.elf" | awk '$3 ~ /^[tT]$/ { f = $4; sub(/\$.*/, "", f); print f, $2 }' | sort >"$out/codes"
join -a1 -e0 -o 1.1,1.2,2.2 "$out/codes" "$out/frames" | awk '
	function hex(s,    i, v) { v = 0; s = tolower(s); for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return v }
	$1 !~ /^(memcpy|memset|memmove|memcmp|fota_size_entry)$/ { printf "  %6d %5d  %s\n", hex($2), $3, $1 }' | sort -rn

if [ -n "${BEARSSL_SRC:-}" ]; then
	echo
	echo "== BearSSL chacha20_ct + poly1305_ctmul32 (its AEAD glue included), from $BEARSSL_SRC, same flags =="
	for f in chacha20_ct poly1305_ctmul32; do
		# BearSSL's own code: no -Werror on its warnings.
		"$cc" -std=c99 -Os -mlongcalls -ffunction-sections -fdata-sections "--specs=$specs" \
			-I"$BEARSSL_SRC/inc" -I"$BEARSSL_SRC/src" -c "$BEARSSL_SRC/src/symcipher/$f.c" -o "$out/br_$f.o"
		printf '  %-22s %s\n' "$f.o" "$("$size" -A "$out/br_$f.o" | awk '/^\.(text|literal)/ { c += $2 } /^\.rodata/ { r += $2 } END { printf "%d code, %d rodata", c, r }')"
	done
fi
