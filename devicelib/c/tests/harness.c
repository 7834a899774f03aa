/*
 * harness.c - runs fota_crypto.h on requests from stdin, for the Go tests
 * in ../crypto_test.go (Wycheproof vectors and differential tests).
 *
 * One request per line, one answer line per request. Fields are
 * separated by one space; byte strings are lowercase hex, "-" for empty.
 *
 *   seal KEY NONCE AD PT          -> CT TAG
 *   open KEY NONCE AD CT TAG      -> ok PT | fail BUF   (BUF: the buffer
 *                                    after the failed open, which must
 *                                    still be CT)
 *   sha256 CHUNK MSG              -> DIGEST  (MSG fed CHUNK bytes per
 *                                    update; CHUNK 0 means one-shot)
 *   hmac CHUNK KEY MSG            -> MAC
 *   hmac CHUNK KEY MSG TAG        -> ok | fail  (TAG, 1..32 bytes, checked
 *                                    against the MAC's prefix with
 *                                    fota_ct_equal)
 *   hkdf IKM SALT INFO LEN        -> OKM | fail
 *
 * Unknown or malformed requests answer "error ..." and the harness exits
 * with status 2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fota_crypto.h"

#define MAX_LINE  (1 << 20)
#define MAX_FIELD (MAX_LINE / 2)

static char line[MAX_LINE];

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

/* Cuts the next space-separated field off *cursor; NULL at the end. */
static char *next_field(char **cursor)
{
	char *f = *cursor, *end;

	while (*f == ' ') f++;
	if (*f == '\0' || *f == '\n') return NULL;
	end = f + strcspn(f, " \n");
	*cursor = *end == '\0' ? end : end + 1;
	*end = '\0';
	return f;
}

/* Next field, decoded from hex into out. */
static size_t next_hex(char **cursor, uint8_t *out)
{
	char *f = next_field(cursor);
	size_t n, i;

	if (f == NULL) die("missing field");
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
	char *f = next_field(cursor);
	char *end;
	unsigned long v;

	if (f == NULL) die("missing number");
	v = strtoul(f, &end, 10);
	if (*end != '\0') die("bad number");
	return (size_t)v;
}

static void put_hex(const uint8_t *p, size_t n)
{
	size_t i;

	if (n == 0) {
		fputc('-', stdout);
	}
	for (i = 0; i < n; i++) {
		printf("%02x", p[i]);
	}
}

static uint8_t a[MAX_FIELD], b[MAX_FIELD], c[MAX_FIELD], d[MAX_FIELD], e[MAX_FIELD];

int main(void)
{
	while (fgets(line, sizeof line, stdin) != NULL) {
		char *cursor = line;
		char *op = next_field(&cursor);

		if (op == NULL) die("empty line");
		if (strcmp(op, "seal") == 0) {
			uint8_t tag[16];
			size_t kl = next_hex(&cursor, a), nl = next_hex(&cursor, b);
			size_t adl = next_hex(&cursor, c), len = next_hex(&cursor, d);
			if (kl != 32 || nl != 12) die("bad key or nonce size");
			fota_aead_seal(tag, d, len, a, b, c, adl);
			put_hex(d, len);
			fputc(' ', stdout);
			put_hex(tag, 16);
		} else if (strcmp(op, "open") == 0) {
			size_t kl = next_hex(&cursor, a), nl = next_hex(&cursor, b);
			size_t adl = next_hex(&cursor, c), len = next_hex(&cursor, d);
			size_t tl = next_hex(&cursor, e);
			if (kl != 32 || nl != 12 || tl != 16) die("bad key, nonce or tag size");
			fputs(fota_aead_open(e, d, len, a, b, c, adl) == 0 ? "ok " : "fail ", stdout);
			put_hex(d, len);
		} else if (strcmp(op, "sha256") == 0 || strcmp(op, "hmac") == 0) {
			int hmac = op[0] == 'h';
			size_t chunk = next_num(&cursor), kl = 0, len, off;
			uint8_t out[32];
			fota_sha256_ctx s;
			fota_hmac_sha256_ctx h;
			if (hmac) kl = next_hex(&cursor, a);
			len = next_hex(&cursor, b);
			if (chunk == 0) chunk = len + 1;
			if (hmac) fota_hmac_sha256_init(&h, a, kl);
			else fota_sha256_init(&s);
			for (off = 0; off < len; off += chunk) {
				size_t n = len - off < chunk ? len - off : chunk;
				if (hmac) fota_hmac_sha256_update(&h, b + off, n);
				else fota_sha256_update(&s, b + off, n);
			}
			if (hmac) fota_hmac_sha256_final(&h, out);
			else fota_sha256_final(&s, out);
			if (hmac && *cursor != '\0' && *cursor != '\n') {
				size_t tl = next_hex(&cursor, c);
				if (tl == 0 || tl > 32) die("bad tag size");
				fputs(fota_ct_equal(out, c, tl) ? "ok" : "fail", stdout);
			} else {
				put_hex(out, 32);
			}
		} else if (strcmp(op, "hkdf") == 0) {
			uint8_t prk[32];
			size_t il = next_hex(&cursor, a), sl = next_hex(&cursor, b);
			size_t fl = next_hex(&cursor, c), len = next_num(&cursor);
			if (len > MAX_FIELD) die("hkdf length too large for the harness");
			fota_hkdf_sha256_extract(prk, b, sl, a, il);
			if (fota_hkdf_sha256_expand(d, len, prk, c, fl) == 0) {
				put_hex(d, len);
			} else {
				fputs("fail", stdout);
			}
		} else {
			die("unknown request");
		}
		fputc('\n', stdout);
		/* The Go side waits for each answer before it sends more. */
		fflush(stdout);
	}
	return 0;
}
