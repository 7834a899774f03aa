#!/usr/bin/env bash
# `make esp8266`: compiles the esp8266-nonos port and the library for the ESP8266 with Debian's
# xtensa-lx106-elf-gcc (picolibc headers), -Werror, to object files (there is no SDK to link
# against), then checks what the objects reference:
#   - the port's undefined symbols that the library does not define are exactly the SDK functions
#     esp8266_sdk.h declares (a call the header does not declare fails; so does a declaration the
#     port no longer uses, which keeps the header "just what the port uses");
#   - the library itself references no SDK or libc function beyond mem* and libgcc's division:
#     no malloc, no stdio in the core.
# For FOTA_MAX_PAYLOAD 64, 1024 and 4096 (the struct sizes change with it), and 1024 with the
# Ed25519 option.
set -euo pipefail
cd "$(dirname "$0")/../.."

cc=${XTENSA_CC:-xtensa-lx106-elf-gcc}
nm=${cc%gcc}nm
specs=${PICOLIBC_SPECS:-/usr/lib/xtensa-lx106-elf/picolibc.specs}
command -v "$cc" >/dev/null || { echo "esp8266: $cc is missing (./.ci/deps installs gcc-xtensa-lx106)" >&2; exit 1; }
[ -f "$specs" ] || { echo "esp8266: $specs is missing (./.ci/deps installs picolibc-xtensa-lx106-elf)" >&2; exit 1; }

out=${BUILD:-build}/esp8266
mkdir -p "$out"
# -D__ets__ as the SDK's and the Arduino core's builds define it: the constant tables go to
# flash (FOTA_RODATA, src/fota_internal.h), checked below.
cflags=(-std=c99 -Os -mlongcalls -ffunction-sections -fdata-sections -D__ets__
	-Wall -Wextra -Wpedantic -Wconversion -Wshadow -Werror "--specs=$specs"
	-Iinclude -Isrc -Iports/esp8266-nonos)
lib=(src/fota_ct.c src/fota_chacha20.c src/fota_poly1305.c src/fota_aead.c src/fota_sha256.c
	src/fota_hmac.c src/fota.c src/fota_names.c)

# The SDK functions the header declares: one `extern ... name(...)` line each.
declared=$(sed -n 's/^extern [^(]*[ *]\([A-Za-z_][A-Za-z0-9_]*\)(.*/\1/p' ports/esp8266-nonos/esp8266_sdk.h | sort -u)
[ -n "$declared" ] || { echo "esp8266: no declarations found in esp8266_sdk.h" >&2; exit 1; }
libc_ok='^(memcpy|memset|memmove|memcmp|__udivsi3|__umodsi3)$'

# A configuration is a FOTA_MAX_PAYLOAD, "+ed25519" for the signature option (FOTA_WITH_ED25519).
payloads=${ESP8266_PAYLOADS:-64 1024 4096 1024+ed25519}
for p in $payloads; do
	d="$out/$p"
	mkdir -p "$d"
	srcs=("${lib[@]}")
	defs=(-DFOTA_MAX_PAYLOAD="${p%+ed25519}")
	if [ "$p" != "${p%+ed25519}" ]; then
		srcs+=(src/fota_sha512.c src/fota_ed25519.c)
		defs+=(-DFOTA_WITH_ED25519)
	fi
	objs=()
	for src in "${srcs[@]}" ports/esp8266-nonos/fota_esp8266.c; do
		o="$d/$(basename "${src%.c}").o"
		"$cc" "${cflags[@]}" "${defs[@]}" -c "$src" -o "$o"
		objs+=("$o")
	done
	port="$d/fota_esp8266.o"
	libobjs=("${objs[@]:0:${#srcs[@]}}")
	defined=$("$nm" --defined-only "${libobjs[@]}" | awk 'NF == 3 && $2 ~ /[TDBR]/ { print $3 }' | sort -u)

	# The constant tables in flash, not in RAM (.rodata): SHA-256's K and initial values.
	if ! "${cc%gcc}objdump" -h "$d/fota_sha256.o" | grep -q '\.irom\.text'; then
		echo "esp8266: SHA-256's constants are not in flash (.irom.text) with __ets__ defined" >&2
		exit 1
	fi

	# The library: nothing but its own functions, mem* and libgcc.
	bad=$("$nm" -u "${libobjs[@]}" | awk '$1 == "U" { print $2 }' | sort -u |
		comm -23 - <(echo "$defined") | grep -Ev "$libc_ok" || true)
	if [ -n "$bad" ]; then
		echo "esp8266: the library references symbols it must not (FOTA_MAX_PAYLOAD=$p):" >&2
		echo "$bad" >&2
		exit 1
	fi

	# The port: the library's API, mem*, and exactly the declared SDK functions.
	used=$("$nm" -u "$port" | awk '$1 == "U" { print $2 }' | sort -u |
		comm -23 - <(echo "$defined") | grep -Ev "$libc_ok" || true)
	undeclared=$(comm -23 <(echo "$used") <(echo "$declared"))
	unused=$(comm -13 <(echo "$used") <(echo "$declared"))
	if [ -n "$undeclared" ] || [ -n "$unused" ]; then
		echo "esp8266: the port's SDK symbols differ from esp8266_sdk.h (FOTA_MAX_PAYLOAD=$p)" >&2
		[ -z "$undeclared" ] || echo "  used, not declared: $(echo $undeclared)" >&2
		[ -z "$unused" ] || echo "  declared, not used: $(echo $unused)" >&2
		exit 1
	fi
done
echo "esp8266: port and library compile for xtensa-lx106 (FOTA_MAX_PAYLOAD $payloads);" \
	"the port uses exactly the $(echo "$declared" | wc -l) SDK functions esp8266_sdk.h declares"
