#!/bin/sh
# serve.sh: serve a folder of `fotagate publish` output to fotagate gateways over HTTPS and
# HTTP/3, with Debian's caddy and the Caddyfile beside this script.
#
#   serve.sh SITE ADDRESS CERT KEY   with a certificate you have (from your CA or ACME)
#   serve.sh SITE ADDRESS internal   with caddy's own LAN CA
#
# SITE is the directory given to `fotagate publish --out`; ADDRESS is the name gateways use,
# "firmware.example.com" (port 443) or "https://fw.lan:8443". Gateways then use
# https://ADDRESS/<class>/manifest.json. Set FOTA_BIND to listen on one local address only.
set -eu

usage() {
	echo "usage: $0 SITE ADDRESS CERT KEY | $0 SITE ADDRESS internal" >&2
	exit 2
}
[ $# -ge 3 ] || usage
FOTA_SITE=$1 FOTA_ADDR=$2 FOTA_CERT=$3 FOTA_KEY=${4-}
case $FOTA_CERT in
internal) [ $# -eq 3 ] || usage ;;
*) [ $# -eq 4 ] || usage ;;
esac
[ -d "$FOTA_SITE" ] || { echo "$0: $FOTA_SITE is not a directory" >&2; exit 1; }
command -v caddy >/dev/null || { echo "$0: caddy not found: apt-get install caddy" >&2; exit 1; }
export FOTA_SITE FOTA_ADDR FOTA_CERT FOTA_KEY
FOTA_BIND=${FOTA_BIND-}
export FOTA_BIND

if [ "$FOTA_CERT" = internal ]; then
	data=${XDG_DATA_HOME:-$HOME/.local/share}/caddy
	echo "$0: caddy's LAN CA issues the certificate; give gateways its root as upstream.ca_bundle:" >&2
	echo "  $data/pki/authorities/local/root.crt (created on first start)" >&2
fi
exec caddy run --config "$(dirname "$0")/Caddyfile" --adapter caddyfile
