/*
 * fota_aead.c - ChaCha20-Poly1305 AEAD, RFC 8439 section 2.8, in place.
 *
 * Opening authenticates the ciphertext first and decrypts only if the
 * tag is right, so a forged frame never turns into plaintext in the
 * caller's buffer, and the frame needs no second buffer.
 */
#include <stddef.h>
#include <string.h>

#include "fota_crypto.h"
#include "fota_internal.h"

/*
 * The tag over (ad, ciphertext), into ctx->block[0..15], from the ChaCha20
 * state set up in ctx->chacha. The one-time Poly1305 key is the first 32
 * bytes of ChaCha20 block 0 (section 2.6); once the MAC has taken r, the
 * first 16 of them hold the lengths and then the tag, while s waits in
 * the last 16 (no copy of it in the MAC state), so the whole computation
 * needs no stack beyond its frames.
 */
static void aead_tag(fota_aead_ctx *ctx, const uint8_t *ad, size_t ad_len,
                     const uint8_t *ct, size_t ct_len)
{
	uint8_t *b = ctx->block;
	int i;

	memset(b, 0, sizeof ctx->block);
	fota_chacha20_xor(ctx->chacha, b, sizeof ctx->block, 0);
	fota_poly1305_key_r(&ctx->poly, b);   /* s stays in b[16..32) */

	/* Section 2.8: each padded with zeros to a multiple of 16. */
	fota_poly1305_padded(&ctx->poly, ad, ad_len);
	fota_poly1305_padded(&ctx->poly, ct, ct_len);

	/* Both lengths as 64-bit little-endian; size_t may be 32-bit, and
	 * then the high words are the zeros of the memset. */
	memset(b, 0, 16);
	for (i = 0; i < 4; i++) {   /* a loop: 20 bytes less than two stores */
		b[i] = (uint8_t)(ad_len >> 8 * i);
		b[8 + i] = (uint8_t)(ct_len >> 8 * i);
	}
#if SIZE_MAX > 0xffffffffu
	fota_store32_le(b + 4, (uint32_t)((uint64_t)ad_len >> 32));
	fota_store32_le(b + 12, (uint32_t)((uint64_t)ct_len >> 32));
#endif
	fota_poly1305_padded(&ctx->poly, b, 16);
	fota_poly1305_tag(&ctx->poly, b + 16, b);   /* wipes the MAC state */
}

/* One wipe clears the key stream state and the tag block together. */
typedef char fota_aead_wipe_adjacent[
	offsetof(fota_aead_ctx, block) == offsetof(fota_aead_ctx, chacha) +
	sizeof(((fota_aead_ctx *)0)->chacha) ? 1 : -1];

int fota_aead_run(fota_aead_ctx *ctx, int seal,
                  uint8_t tag[FOTA_AEAD_TAG_SIZE],
                  uint8_t *buf, size_t len,
                  const uint8_t *ad, size_t ad_len)
{
	int ok;

	/* Block 0 keys Poly1305, the message is block 1 on. */
	if (seal) {
		fota_chacha20_xor(ctx->chacha, buf, len, 1);
	}
	aead_tag(ctx, ad, ad_len, buf, len);
	if (seal) {
		memcpy(tag, ctx->block, FOTA_AEAD_TAG_SIZE);
	}
	/*
	 * Compare all 16 bytes in constant time: an early exit would tell a
	 * forger how many leading bytes of a guessed tag were right. The
	 * branch below is on the verdict only, which is public anyway (a
	 * seal compares its tag with itself: equal).
	 */
	ok = fota_ct_equal(ctx->block, tag, FOTA_AEAD_TAG_SIZE);
	if (ok && !seal) {
		fota_chacha20_xor(ctx->chacha, buf, len, 1);
	}
	/* The key (in the state) and the tag do not outlive the call. */
	fota_wipe(ctx->chacha, sizeof ctx->chacha + sizeof ctx->block);
	return ok - 1;   /* 0, or -1: one exit, one wipe */
}

void fota_aead_seal_ctx(fota_aead_ctx *ctx,
                        uint8_t tag[FOTA_AEAD_TAG_SIZE],
                        uint8_t *buf, size_t len,
                        const uint8_t key[FOTA_AEAD_KEY_SIZE],
                        const uint8_t nonce[FOTA_AEAD_NONCE_SIZE],
                        const uint8_t *ad, size_t ad_len)
{
	fota_chacha20_setup(ctx->chacha, key, nonce);
	(void)fota_aead_run(ctx, 1, tag, buf, len, ad, ad_len);
}

int fota_aead_open_ctx(fota_aead_ctx *ctx,
                       const uint8_t tag[FOTA_AEAD_TAG_SIZE],
                       uint8_t *buf, size_t len,
                       const uint8_t key[FOTA_AEAD_KEY_SIZE],
                       const uint8_t nonce[FOTA_AEAD_NONCE_SIZE],
                       const uint8_t *ad, size_t ad_len)
{
	fota_chacha20_setup(ctx->chacha, key, nonce);
	/* Opening only reads the tag; the cast is for the shared code. */
	return fota_aead_run(ctx, 0, (uint8_t *)tag, buf, len, ad, ad_len);
}

void fota_aead_seal(uint8_t tag[FOTA_AEAD_TAG_SIZE],
                    uint8_t *buf, size_t len,
                    const uint8_t key[FOTA_AEAD_KEY_SIZE],
                    const uint8_t nonce[FOTA_AEAD_NONCE_SIZE],
                    const uint8_t *ad, size_t ad_len)
{
	fota_aead_ctx ctx;

	fota_aead_seal_ctx(&ctx, tag, buf, len, key, nonce, ad, ad_len);
}

int fota_aead_open(const uint8_t tag[FOTA_AEAD_TAG_SIZE],
                   uint8_t *buf, size_t len,
                   const uint8_t key[FOTA_AEAD_KEY_SIZE],
                   const uint8_t nonce[FOTA_AEAD_NONCE_SIZE],
                   const uint8_t *ad, size_t ad_len)
{
	fota_aead_ctx ctx;

	return fota_aead_open_ctx(&ctx, tag, buf, len, key, nonce, ad, ad_len);
}
