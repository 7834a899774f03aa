/*
 * fota_sha256.c - SHA-256, FIPS 180-4 section 6.2.
 *
 * The message schedule is kept as a rolling window of 16 words (64 bytes
 * of stack instead of 256). The round-constant table is indexed by the
 * round number only, never by data.
 */
#include <string.h>

#include "fota_crypto.h"
#include "fota_internal.h"

#define ROTR32(v, n) (((v) >> (n)) | ((v) << (32 - (n))))

/* Section 4.1.2. */
#define CH(x, y, z)  (((x) & (y)) ^ (~(x) & (z)))
#define MAJ(x, y, z) (((x) & (y)) ^ ((x) & (z)) ^ ((y) & (z)))
#define BSIG0(x) (ROTR32(x, 2) ^ ROTR32(x, 13) ^ ROTR32(x, 22))
#define BSIG1(x) (ROTR32(x, 6) ^ ROTR32(x, 11) ^ ROTR32(x, 25))
#define SSIG0(x) (ROTR32(x, 7) ^ ROTR32(x, 18) ^ ((x) >> 3))
#define SSIG1(x) (ROTR32(x, 17) ^ ROTR32(x, 19) ^ ((x) >> 10))

/*
 * Section 4.2.2, then the initial hash value of section 5.3.3 as K[64..71]:
 * init copies it with 32-bit loads (so FOTA_RODATA can still move the
 * table to flash), 50 bytes less code on the LX106 than eight constants.
 */
static const uint32_t K[64 + 8] FOTA_RODATA = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5,
	0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
	0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
	0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5,
	0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
};

/*
 * The working variables a..h are v[0..7], shifted down one place a round
 * rather than renamed: about 40 bytes less code on the LX106 than eight
 * named variables, for some 15-20% more instructions per block (the
 * slot's read back at the end of an update hashes the whole image).
 */
static void sha256_compress(uint32_t state[8], const uint8_t block[64])
{
	uint32_t w[16 + 8], *v = w + 16;   /* one wipe for both */
	uint32_t t1, t2;
	int t, i;

	for (i = 0; i < 8; i++) {
		v[i] = state[i];
	}
	for (t = 0; t < 64; t++) {
		/* The block's words are loaded as the rounds reach them: one
		 * loop instead of two (about 30 bytes less on the LX106). */
		if (t < 16) {
			w[t] = fota_load32_be(block + 4 * t);
		} else {
			w[t & 15] += SSIG1(w[(t - 2) & 15]) + w[(t - 7) & 15] +
			             SSIG0(w[(t - 15) & 15]);
		}
		t1 = v[7] + BSIG1(v[4]) + CH(v[4], v[5], v[6]) + K[t] + w[t & 15];
		t2 = BSIG0(v[0]) + MAJ(v[0], v[1], v[2]);
		/* e = d + t1 on the way: a shift GCC does not turn into a
		 * memmove call (which costs register spills around it). */
		for (i = 7; i > 0; i--) {
			v[i] = v[i - 1] + (i == 4 ? t1 : 0);
		}
		v[0] = t1 + t2;
	}
	for (i = 0; i < 8; i++) {
		state[i] += v[i];
	}
	fota_wipe(w, sizeof w);
}

void fota_sha256_init(fota_sha256_ctx *ctx)
{
	int i;

	for (i = 0; i < 8; i++) {
		const uint32_t *iv = K + 64;
#ifdef __GNUC__
		/* GCC would fold the table's words back into eight constants,
		 * each a literal of its own; the empty asm hides what iv is. */
		__asm__("" : "+r"(iv));
#endif
		ctx->state[i] = iv[i];
	}
	ctx->count = 0;
}

void fota_sha256_update(fota_sha256_ctx *ctx, const uint8_t *msg, size_t len)
{
	while (len > 0) {
		size_t used = (size_t)(ctx->count % FOTA_SHA256_BLOCK_SIZE);
		size_t n = len < FOTA_SHA256_BLOCK_SIZE - used ? len : FOTA_SHA256_BLOCK_SIZE - used;

		/* Nothing buffered and a whole block: hashed straight from msg;
		 * anything else is gathered in ctx->block. One compress call
		 * site, which -Os then inlines (13 bytes fewer on the LX106). */
		const uint8_t *block = n == FOTA_SHA256_BLOCK_SIZE ? msg : ctx->block;

		if (block != msg) {
			memcpy(ctx->block + used, msg, n);
		}
		if (used + n == FOTA_SHA256_BLOCK_SIZE) {
			sha256_compress(ctx->state, block);
		}
		ctx->count += n;
		msg += n;
		len -= n;
	}
}

void fota_sha256_final(fota_sha256_ctx *ctx, uint8_t out[FOTA_SHA256_SIZE])
{
	uint64_t bits = ctx->count * 8;
	uint8_t pad = 0x80;
	int i;

	/*
	 * Section 5.1.1: a 1 bit, zero bits up to 56 bytes mod 64 (into a
	 * second block if the first has no room), then the message length in
	 * bits, 64-bit big-endian. All of it goes through update, a byte at
	 * a time for the padding, so this compresses no block itself: some
	 * 100 bytes less code on the LX106 for at most 64 short updates,
	 * once per digest. The length waits in out, which is overwritten
	 * last.
	 */
	for (i = 7; i >= 0; i--) {
		out[i] = (uint8_t)bits;
		bits >>= 8;
	}
	do {
		fota_sha256_update(ctx, &pad, 1);
		pad = 0;
	} while (ctx->count % FOTA_SHA256_BLOCK_SIZE != FOTA_SHA256_BLOCK_SIZE - 8);
	fota_sha256_update(ctx, out, 8);

	for (i = 0; i < 8; i++) {
		fota_store32_be(out + 4 * i, ctx->state[i]);
	}
	fota_wipe(ctx, sizeof *ctx);
}

void fota_sha256(uint8_t out[FOTA_SHA256_SIZE], const uint8_t *msg, size_t len)
{
	fota_sha256_ctx ctx;

	fota_sha256_init(&ctx);
	fota_sha256_update(&ctx, msg, len);
	fota_sha256_final(&ctx, out);
}
