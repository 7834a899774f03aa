/*
 * fota_sha512.c - SHA-512, FIPS 180-4 section 6.4, for Ed25519 (RFC 8032
 * hashes R || A || M with it). Only builds with FOTA_WITH_ED25519 call it.
 *
 * 64-bit words are only added, XORed, shifted and rotated: on a 32-bit
 * core such as the LX106 the compiler does each on a pair of registers,
 * and there is no multiplication at all. Like SHA-256, the message
 * schedule is a rolling window of 16 words, and the round constants are
 * indexed by the round number only.
 */
#include <string.h>

#include "fota_crypto.h"
#include "fota_internal.h"

#define ROTR64(v, n) (((v) >> (n)) | ((v) << (64 - (n))))

/* Section 4.1.3. */
#define CH(x, y, z)  (((x) & (y)) ^ (~(x) & (z)))
#define MAJ(x, y, z) (((x) & (y)) ^ ((x) & (z)) ^ ((y) & (z)))
#define BSIG0(x) (ROTR64(x, 28) ^ ROTR64(x, 34) ^ ROTR64(x, 39))
#define BSIG1(x) (ROTR64(x, 14) ^ ROTR64(x, 18) ^ ROTR64(x, 41))
#define SSIG0(x) (ROTR64(x, 1) ^ ROTR64(x, 8) ^ ((x) >> 7))
#define SSIG1(x) (ROTR64(x, 19) ^ ROTR64(x, 61) ^ ((x) >> 6))

/* Section 4.2.3; read with 32-bit loads only, so FOTA_RODATA may place it in flash. */
static const uint64_t K[80] FOTA_RODATA = {
	0x428a2f98d728ae22u, 0x7137449123ef65cdu, 0xb5c0fbcfec4d3b2fu, 0xe9b5dba58189dbbcu,
	0x3956c25bf348b538u, 0x59f111f1b605d019u, 0x923f82a4af194f9bu, 0xab1c5ed5da6d8118u,
	0xd807aa98a3030242u, 0x12835b0145706fbeu, 0x243185be4ee4b28cu, 0x550c7dc3d5ffb4e2u,
	0x72be5d74f27b896fu, 0x80deb1fe3b1696b1u, 0x9bdc06a725c71235u, 0xc19bf174cf692694u,
	0xe49b69c19ef14ad2u, 0xefbe4786384f25e3u, 0x0fc19dc68b8cd5b5u, 0x240ca1cc77ac9c65u,
	0x2de92c6f592b0275u, 0x4a7484aa6ea6e483u, 0x5cb0a9dcbd41fbd4u, 0x76f988da831153b5u,
	0x983e5152ee66dfabu, 0xa831c66d2db43210u, 0xb00327c898fb213fu, 0xbf597fc7beef0ee4u,
	0xc6e00bf33da88fc2u, 0xd5a79147930aa725u, 0x06ca6351e003826fu, 0x142929670a0e6e70u,
	0x27b70a8546d22ffcu, 0x2e1b21385c26c926u, 0x4d2c6dfc5ac42aedu, 0x53380d139d95b3dfu,
	0x650a73548baf63deu, 0x766a0abb3c77b2a8u, 0x81c2c92e47edaee6u, 0x92722c851482353bu,
	0xa2bfe8a14cf10364u, 0xa81a664bbc423001u, 0xc24b8b70d0f89791u, 0xc76c51a30654be30u,
	0xd192e819d6ef5218u, 0xd69906245565a910u, 0xf40e35855771202au, 0x106aa07032bbd1b8u,
	0x19a4c116b8d2d0c8u, 0x1e376c085141ab53u, 0x2748774cdf8eeb99u, 0x34b0bcb5e19b48a8u,
	0x391c0cb3c5c95a63u, 0x4ed8aa4ae3418acbu, 0x5b9cca4f7763e373u, 0x682e6ff3d6b2b8a3u,
	0x748f82ee5defb2fcu, 0x78a5636f43172f60u, 0x84c87814a1f0ab72u, 0x8cc702081a6439ecu,
	0x90befffa23631e28u, 0xa4506cebde82bde9u, 0xbef9a3f7b2c67915u, 0xc67178f2e372532bu,
	0xca273eceea26619cu, 0xd186b8c721c0c207u, 0xeada7dd6cde0eb1eu, 0xf57d4f7fee6ed178u,
	0x06f067aa72176fbau, 0x0a637dc5a2c898a6u, 0x113f9804bef90daeu, 0x1b710b35131c471bu,
	0x28db77f523047d84u, 0x32caab7b40c72493u, 0x3c9ebe0a15c9bebcu, 0x431d67c49c100d4cu,
	0x4cc5d4becb3e42b6u, 0x597f299cfc657e2au, 0x5fcb6fab3ad6faecu, 0x6c44198c4a475817u
};

static uint64_t load64_be(const uint8_t *p)
{
	return (uint64_t)fota_load32_be(p) << 32 | fota_load32_be(p + 4);
}

static void store64_be(uint8_t *p, uint64_t v)
{
	fota_store32_be(p, (uint32_t)(v >> 32));
	fota_store32_be(p + 4, (uint32_t)v);
}

static void sha512_compress(uint64_t state[8], const uint8_t block[128])
{
	uint64_t w[16], s[8], t1, t2;
	int t, i;

	for (t = 0; t < 16; t++) {
		w[t] = load64_be(block + 8 * t);
	}
	memcpy(s, state, sizeof s);
	for (t = 0; t < 80; t++) {
		if (t >= 16) {
			w[t & 15] += SSIG1(w[(t - 2) & 15]) + w[(t - 7) & 15] +
			             SSIG0(w[(t - 15) & 15]);
		}
		/* s[0..7] are a..h; the working variables shift down by one. */
		t1 = s[7] + BSIG1(s[4]) + CH(s[4], s[5], s[6]) + K[t] + w[t & 15];
		t2 = BSIG0(s[0]) + MAJ(s[0], s[1], s[2]);
		for (i = 7; i > 0; i--) {
			s[i] = s[i - 1];
		}
		s[4] += t1;
		s[0] = t1 + t2;
	}
	for (i = 0; i < 8; i++) {
		state[i] += s[i];
	}
}

void fota_sha512_init(fota_sha512_ctx *ctx)
{
	/* Section 5.3.5. */
	static const uint64_t iv[8] FOTA_RODATA = {
		0x6a09e667f3bcc908u, 0xbb67ae8584caa73bu, 0x3c6ef372fe94f82bu, 0xa54ff53a5f1d36f1u,
		0x510e527fade682d1u, 0x9b05688c2b3e6c1fu, 0x1f83d9abfb41bd6bu, 0x5be0cd19137e2179u
	};

	int i;

	/* Word by word: a port may have put iv in flash (FOTA_RODATA). */
	for (i = 0; i < 8; i++) {
		ctx->state[i] = iv[i];
	}
	ctx->count = 0;
}

void fota_sha512_update(fota_sha512_ctx *ctx, const uint8_t *msg, size_t len)
{
	while (len > 0) {
		size_t used = (size_t)(ctx->count % FOTA_SHA512_BLOCK_SIZE);
		size_t n = FOTA_SHA512_BLOCK_SIZE - used;

		if (n > len) {
			n = len;
		}
		memcpy(ctx->block + used, msg, n);
		if (used + n == FOTA_SHA512_BLOCK_SIZE) {
			sha512_compress(ctx->state, ctx->block);
		}
		ctx->count += n;
		msg += n;
		len -= n;
	}
}

void fota_sha512_final(fota_sha512_ctx *ctx, uint8_t out[FOTA_SHA512_SIZE])
{
	size_t used = (size_t)(ctx->count % FOTA_SHA512_BLOCK_SIZE);
	int i;

	/*
	 * Section 5.1.2: a 1 bit, zeros up to 112 bytes mod 128, then the
	 * length in bits as a 128-bit big-endian number (its top 61 bits are
	 * zero for any count of bytes that fits in 64 bits).
	 */
	ctx->block[used++] = 0x80;
	if (used > FOTA_SHA512_BLOCK_SIZE - 16) {
		memset(ctx->block + used, 0, FOTA_SHA512_BLOCK_SIZE - used);
		sha512_compress(ctx->state, ctx->block);
		used = 0;
	}
	memset(ctx->block + used, 0, FOTA_SHA512_BLOCK_SIZE - 8 - used);
	store64_be(ctx->block + 112, ctx->count >> 61);
	store64_be(ctx->block + 120, ctx->count << 3);
	sha512_compress(ctx->state, ctx->block);

	for (i = 0; i < 8; i++) {
		store64_be(out + 8 * i, ctx->state[i]);
	}
	fota_wipe(ctx, sizeof *ctx);
}
