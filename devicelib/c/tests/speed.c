/*
 * speed.c - opens one frame ITER times with fota_aead_open, or with
 * BearSSL's br_poly1305_ctmul32_run + br_chacha20_ct_run (Debian's
 * libbearssl), for ../tools/speed-report.sh to count instructions under
 * callgrind (--toggle-collect=bench_*).
 *
 *   speed fota|bearssl SIZE ITER
 *
 * BearSSL's decrypting call computes the tag and decrypts unconditionally;
 * the caller then compares tags, as a BearSSL user must. Each iteration
 * opens the same sealed frame: the buffer is restored from a copy outside
 * the counted function.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bearssl.h>

#include "fota_crypto.h"

static uint8_t key[32], nonce[12], ad[13], tag[16];

/* noinline: callgrind counts inside these functions (and clones) only. */
__attribute__((noinline)) static int bench_fota(uint8_t *buf, size_t len)
{
	return fota_aead_open(tag, buf, len, key, nonce, ad, sizeof ad);
}

__attribute__((noinline)) static int bench_bearssl(uint8_t *buf, size_t len)
{
	uint8_t t[16];

	br_poly1305_ctmul32_run(key, nonce, buf, len, ad, sizeof ad, t,
	                        br_chacha20_ct_run, 0);
	return fota_ct_equal(t, tag, 16) ? 0 : -1;
}

int main(int argc, char **argv)
{
	static uint8_t frame[65536], sealed[65536];
	size_t len, i, iter;
	int bearssl, bad = 0;

	if (argc != 4 || (strcmp(argv[1], "fota") != 0 && strcmp(argv[1], "bearssl") != 0)) {
		fprintf(stderr, "usage: speed fota|bearssl SIZE ITER\n");
		return 2;
	}
	bearssl = argv[1][0] == 'b';
	len = (size_t)strtoul(argv[2], NULL, 10);
	iter = (size_t)strtoul(argv[3], NULL, 10);
	if (len > sizeof frame) {
		return 2;
	}
	for (i = 0; i < sizeof key; i++) key[i] = (uint8_t)(i * 7 + 1);
	for (i = 0; i < sizeof nonce; i++) nonce[i] = (uint8_t)i;
	for (i = 0; i < sizeof ad; i++) ad[i] = (uint8_t)(0xa0 + i);
	for (i = 0; i < len; i++) sealed[i] = (uint8_t)i;
	fota_aead_seal(tag, sealed, len, key, nonce, ad, sizeof ad);

	for (i = 0; i < iter; i++) {
		memcpy(frame, sealed, len);
		bad |= (bearssl ? bench_bearssl(frame, len) : bench_fota(frame, len)) != 0;
	}
	if (bad) {
		fprintf(stderr, "speed: %s failed to open its frame\n", argv[1]);
		return 1;
	}
	return 0;
}
