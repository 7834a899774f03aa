/*
 * ed25519_harness.c - runs the SHA-512 and Ed25519 verification of
 * fota_crypto.h on requests from stdin, for ../crypto_test.go (Wycheproof
 * cases and differential tests against Go's crypto/ed25519), and for
 * `make speed-ed25519` (one verification under callgrind).
 *
 * One request per line, one answer line per request; fields separated by
 * one space, byte strings in lowercase hex ("-" for empty).
 *
 *   sha512 CHUNK MSG          -> DIGEST   (MSG fed CHUNK bytes per update;
 *                                         0: in one piece)
 *   verify CHUNK PUB MSG SIG  -> ok | fail (the same for MSG; PUB must be
 *                                         32 bytes, SIG 64)
 *
 * Malformed requests answer "error ..." and exit with status 2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fota_crypto.h"

#define MAX_LINE  (1 << 20)
#define MAX_FIELD (MAX_LINE / 2)

static char line[MAX_LINE];
static uint8_t pub[MAX_FIELD], msg[MAX_FIELD], sig[MAX_FIELD];

static void die(const char *why)
{
	printf("error %s\n", why);
	exit(2);
}

static int nibble(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	die("bad hex digit");
	return 0;
}

static char *next_field(char **cursor)
{
	char *f = *cursor, *end;

	while (*f == ' ') f++;
	if (*f == '\0' || *f == '\n') die("missing field");
	end = f + strcspn(f, " \n");
	*cursor = *end == '\0' ? end : end + 1;
	*end = '\0';
	return f;
}

static size_t next_hex(char **cursor, uint8_t *out)
{
	char *f = next_field(cursor);
	size_t n, i;

	if (strcmp(f, "-") == 0) return 0;
	n = strlen(f);
	if (n % 2 != 0 || n / 2 > MAX_FIELD) die("bad hex length");
	for (i = 0; i < n / 2; i++) {
		out[i] = (uint8_t)(nibble(f[2 * i]) << 4 | nibble(f[2 * i + 1]));
	}
	return n / 2;
}

static size_t next_num(char **cursor)
{
	char *end, *f = next_field(cursor);
	unsigned long v = strtoul(f, &end, 10);

	if (*end != '\0') die("bad number");
	return (size_t)v;
}

/* noinline: `make speed-ed25519` counts instructions inside this call only. */
__attribute__((noinline)) static int verify_chunked(size_t chunk, size_t len)
{
	fota_ed25519_ctx ctx;
	size_t off;

	if (chunk == 0) {
		return fota_ed25519_verify(sig, pub, len ? msg : NULL, len);
	}
	fota_ed25519_init(&ctx, sig, pub);
	for (off = 0; off < len; off += chunk) {
		fota_ed25519_update(&ctx, msg + off, len - off < chunk ? len - off : chunk);
	}
	return fota_ed25519_final(&ctx);
}

int main(void)
{
	while (fgets(line, sizeof line, stdin) != NULL) {
		char *cursor = line;
		char *op;

		if (strchr(line, '\n') == NULL && !feof(stdin)) die("line too long");
		op = next_field(&cursor);
		if (strcmp(op, "sha512") == 0) {
			size_t chunk = next_num(&cursor), len = next_hex(&cursor, msg), off, i;
			uint8_t out[FOTA_SHA512_SIZE];
			fota_sha512_ctx ctx;

			if (chunk == 0) chunk = len + 1;
			fota_sha512_init(&ctx);
			for (off = 0; off < len; off += chunk) {
				fota_sha512_update(&ctx, msg + off, len - off < chunk ? len - off : chunk);
			}
			fota_sha512_final(&ctx, out);
			for (i = 0; i < sizeof out; i++) {
				printf("%02x", out[i]);
			}
		} else if (strcmp(op, "verify") == 0) {
			size_t chunk = next_num(&cursor);
			size_t pl = next_hex(&cursor, pub), len = next_hex(&cursor, msg);
			size_t sl = next_hex(&cursor, sig);

			if (pl != FOTA_ED25519_KEY_SIZE || sl != FOTA_ED25519_SIG_SIZE) die("bad key or signature size");
			fputs(verify_chunked(chunk, len) == 0 ? "ok" : "fail", stdout);
		} else {
			die("unknown request");
		}
		fputc('\n', stdout);
		fflush(stdout);
	}
	return 0;
}
