/*
 * fota_hmac.c - HMAC-SHA256 (RFC 2104) and HKDF-SHA256 (RFC 5869).
 */
#include <string.h>

#include "fota_crypto.h"
#include "fota_internal.h"

void fota_hmac_sha256_init(fota_hmac_sha256_ctx *ctx,
                           const uint8_t *key, size_t key_len)
{
	/*
	 * RFC 2104 section 2: K is hashed if longer than a block. The hashed
	 * key is parked in the outer hash's block buffer, which is not in use
	 * yet; fota_hmac_sha256_key reads each of its bytes before it writes
	 * the same position.
	 */
	if (key_len > FOTA_SHA256_BLOCK_SIZE) {
		fota_sha256_init(&ctx->inner);
		fota_sha256_update(&ctx->inner, key, key_len);
		fota_sha256_final(&ctx->inner, ctx->outer.block);
		key = ctx->outer.block;
		key_len = FOTA_SHA256_SIZE;
	}
	fota_hmac_sha256_key(ctx, key, key_len);
}

void fota_hmac_sha256_key(fota_hmac_sha256_ctx *ctx, const uint8_t *key, size_t key_len)
{
	fota_sha256_ctx *h = &ctx->inner;
	uint8_t pad = 0x36;
	size_t i;

	/*
	 * K ^ ipad, then K ^ opad, is built straight in the block buffer
	 * that the hash would copy it into, then absorbed from there as one
	 * whole block (init leaves the buffer alone, and update hashes a
	 * whole block in place without copying it): no 64-byte key block on
	 * the stack. The loop bound depends on key_len only.
	 */
	for (;;) {
		fota_sha256_init(h);
		for (i = 0; i < FOTA_SHA256_BLOCK_SIZE; i++) {
			h->block[i] = (uint8_t)((i < key_len ? key[i] : 0) ^ pad);
		}
		fota_sha256_update(h, h->block, FOTA_SHA256_BLOCK_SIZE);
		if (h == &ctx->outer) {
			break;
		}
		h = &ctx->outer;
		pad = 0x5c;
	}
}

void fota_hmac_sha256_update(fota_hmac_sha256_ctx *ctx,
                             const uint8_t *msg, size_t len)
{
	fota_sha256_update(&ctx->inner, msg, len);
}

void fota_hmac_sha256_final(fota_hmac_sha256_ctx *ctx,
                            uint8_t out[FOTA_SHA256_SIZE])
{
	/* The inner hash passes through out, which the outer one overwrites. */
	fota_sha256_final(&ctx->inner, out);
	fota_sha256_update(&ctx->outer, out, FOTA_SHA256_SIZE);
	fota_sha256_final(&ctx->outer, out);
}

void fota_hmac_sha256(uint8_t out[FOTA_SHA256_SIZE],
                      const uint8_t *key, size_t key_len,
                      const uint8_t *msg, size_t len)
{
	fota_hmac_sha256_ctx ctx;

	fota_hmac_sha256_init(&ctx, key, key_len);
	fota_hmac_sha256_update(&ctx, msg, len);
	fota_hmac_sha256_final(&ctx, out);
}

void fota_hkdf_sha256_extract(uint8_t prk[FOTA_SHA256_SIZE],
                              const uint8_t *salt, size_t salt_len,
                              const uint8_t *ikm, size_t ikm_len)
{
	/*
	 * An empty salt stands for HashLen zero bytes; HMAC pads any key
	 * with zeros to a block, so passing the empty key is the same.
	 */
	fota_hmac_sha256(prk, salt, salt_len, ikm, ikm_len);
}

int fota_hkdf_sha256_expand(uint8_t *okm, size_t okm_len,
                            const uint8_t prk[FOTA_SHA256_SIZE],
                            const uint8_t *info, size_t info_len)
{
	fota_hmac_sha256_ctx ctx;
	uint8_t t[FOTA_SHA256_SIZE];
	uint8_t i;
	size_t n;

	if (okm_len > FOTA_HKDF_SHA256_MAX_OKM) {
		return -1;
	}
	/*
	 * RFC 5869 section 2.3: T(i) = HMAC(PRK, T(i-1) | info | i), with
	 * T(0) empty; okm is the first okm_len bytes of T(1) | T(2) | ...
	 * The limit above keeps i within 1..255.
	 */
	for (i = 1; okm_len > 0; i++) {
		fota_hmac_sha256_init(&ctx, prk, FOTA_SHA256_SIZE);
		if (i > 1) {
			fota_hmac_sha256_update(&ctx, t, sizeof t);
		}
		fota_hmac_sha256_update(&ctx, info, info_len);
		fota_hmac_sha256_update(&ctx, &i, 1);
		fota_hmac_sha256_final(&ctx, t);

		n = okm_len < sizeof t ? okm_len : sizeof t;
		memcpy(okm, t, n);
		okm += n;
		okm_len -= n;
	}
	fota_wipe(t, sizeof t);
	return 0;
}
