/*
 * fota_chacha20.c - ChaCha20, RFC 8439 section 2.
 *
 * Only 32-bit additions, XORs and constant rotations: nothing depends on
 * the key or data in timing, and there is no table indexed by a secret.
 */
#include <string.h>

#include "fota_crypto.h"
#include "fota_internal.h"

#define ROTL32(v, n) (((v) << (n)) | ((v) >> (32 - (n))))

/*
 * RFC 8439 section 2.1. A function, not a macro: an optimizing build
 * inlines its eight calls into straight-line code that keeps the state
 * in registers, while -Os keeps one copy (over 200 bytes fewer on the
 * LX106).
 */
static inline void quarterround(uint32_t x[16], int a, int b, int c, int d)
{
	x[a] += x[b]; x[d] ^= x[a]; x[d] = ROTL32(x[d], 16);
	x[c] += x[d]; x[b] ^= x[c]; x[b] = ROTL32(x[b], 12);
	x[a] += x[b]; x[d] ^= x[a]; x[d] = ROTL32(x[d], 8);
	x[c] += x[d]; x[b] ^= x[c]; x[b] = ROTL32(x[b], 7);
}

/*
 * RFC 8439 sections 2.3 and 2.4: XORs the first n (1..64) bytes of the
 * key stream block for state (20 rounds of it, plus state itself) into p.
 * Not inlined in optimized builds: inside its caller's loop, GCC -O2 no
 * longer merges the byte loads and stores into words (5% slower on
 * x86-64). -Os, which keeps the byte loop, inlines it (33 bytes fewer on
 * the LX106).
 */
#ifndef __OPTIMIZE_SIZE__
FOTA_NOINLINE
#endif
static void chacha20_xor_block(uint8_t *p, size_t n, const uint32_t state[16])
{
	uint32_t x[16];   /* local, so an optimizer can keep it in registers */
	int i;

	for (i = 0; i < 16; i++) {
		x[i] = state[i];
	}
	for (i = 0; i < 10; i++) {
#ifdef __OPTIMIZE_SIZE__
		/*
		 * -Os: the eight quarter rounds of a double round as a loop,
		 * about 200 bytes smaller on the LX106 than eight inlined
		 * calls. Round j works on column (or diagonal, from j = 4)
		 * j & 3: its rows advance by 0 (columns) or 1, 2, 3
		 * (diagonals). The indices are computed rather than read from a
		 * byte table, which the ESP8266 would have to keep in RAM.
		 */
		int j;

		for (j = 0; j < 8; j++) {
			int a = j & 3, s = j >> 2;

			quarterround(x, a, 4 + ((a + s) & 3), 8 + ((a + 2 * s) & 3),
			             12 + ((a + 3 * s) & 3));
		}
#else
		/* column round */
		quarterround(x, 0, 4, 8, 12);
		quarterround(x, 1, 5, 9, 13);
		quarterround(x, 2, 6, 10, 14);
		quarterround(x, 3, 7, 11, 15);
		/* diagonal round */
		quarterround(x, 0, 5, 10, 15);
		quarterround(x, 1, 6, 11, 12);
		quarterround(x, 2, 7, 8, 13);
		quarterround(x, 3, 4, 9, 14);
#endif
	}
	/*
	 * Every index of x is a loop constant, so an optimizer that unrolls
	 * these loops keeps x in registers; the branches depend on the public
	 * length only. Speed builds give a whole block its own short loop.
	 */
#ifdef __OPTIMIZE_SIZE__
	/* -Os: a byte at a time, one loop: some 80 bytes fewer on the LX106, for
	 * about 7% more instructions per frame (-O2 keeps the word loops). */
	for (i = 0; i < (int)n; i++) {
		p[i] ^= (uint8_t)((x[i >> 2] + state[i >> 2]) >> (8 * (i & 3)));
	}
#else
	if (n == 64) {
		for (i = 0; i < 16; i++) {
			uint8_t *w = p + 4 * i;
			fota_store32_le(w, fota_load32_le(w) ^ (x[i] + state[i]));
		}
		n = 0;
	}
	for (i = 0; i < 16 && n > 0; i++) {
		uint32_t k = x[i] + state[i];

		if (n >= 4) {
			fota_store32_le(p, fota_load32_le(p) ^ k);
			p += 4;
			n -= 4;
		} else {
			for (; n > 0; n--, k >>= 8) {   /* a short last block */
				*p++ ^= (uint8_t)k;
			}
		}
	}
#endif
	/* x is the permuted state, from which the key can be recovered. */
	fota_wipe(x, sizeof x);
}

void fota_chacha20_setup(uint32_t state[16],
                         const uint8_t key[FOTA_CHACHA20_KEY_SIZE],
                         const uint8_t nonce[FOTA_CHACHA20_NONCE_SIZE])
{
	int i;

	/* "expand 32-byte k", then key, block counter and nonce. */
#ifdef __OPTIMIZE_SIZE__
	/* -Os: the constants from a table with 32-bit loads (FOTA_RODATA can
	 * move it to flash), 16 bytes less code on the LX106 than four
	 * literals. GCC would fold the table back into those; the empty asm
	 * hides what c is. */
	{
		static const uint32_t sigma[4] FOTA_RODATA = {
			0x61707865, 0x3320646e, 0x79622d32, 0x6b206574
		};
		const uint32_t *c = sigma;

#ifdef __GNUC__
		__asm__("" : "+r"(c));
#endif
		for (i = 0; i < 4; i++) {
			state[i] = c[i];
		}
	}
#else
	state[0] = 0x61707865;
	state[1] = 0x3320646e;
	state[2] = 0x79622d32;
	state[3] = 0x6b206574;
#endif
#ifdef __OPTIMIZE_SIZE__
	/* -Os: key words to 4..11 and nonce words to 13..15 in one loop,
	 * the source switching at word 12, so the byte-wise load is compiled
	 * once (80 bytes fewer on the LX106 than two loops). */
	{
		const uint8_t *src = key;

		for (i = 4; i < 16; i++) {
			if (i == 12) {
				src = nonce;
				continue;
			}
			state[i] = fota_load32_le(src);
			src += 4;
		}
	}
#else
	for (i = 0; i < 8; i++) {
		state[4 + i] = fota_load32_le(key + 4 * i);
	}
	for (i = 0; i < 3; i++) {
		state[13 + i] = fota_load32_le(nonce + 4 * i);
	}
#endif
}

void fota_chacha20_xor(uint32_t state[16], uint8_t *buf, size_t len, uint32_t counter)
{
	state[12] = counter;
	while (len > 0) {
		size_t n = len < 64 ? len : 64;

		chacha20_xor_block(buf, n, state);
		state[12]++;
		buf += n;
		len -= n;
	}
}

uint32_t fota_chacha20(uint8_t *buf, size_t len,
                       const uint8_t key[FOTA_CHACHA20_KEY_SIZE],
                       const uint8_t nonce[FOTA_CHACHA20_NONCE_SIZE],
                       uint32_t counter)
{
	uint32_t state[16];

	fota_chacha20_setup(state, key, nonce);
	fota_chacha20_xor(state, buf, len, counter);
	counter = state[12];
	fota_wipe(state, sizeof state);   /* holds the key */
	return counter;
}
