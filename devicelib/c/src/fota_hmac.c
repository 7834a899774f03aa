/*
 * fota_hmac.c - HMAC-SHA256 (RFC 2104) and HKDF-SHA256 (RFC 5869).
 */
#include <string.h>

#include "fota_crypto.h"

void fota_hmac_sha256_init(fota_hmac_sha256_ctx *ctx,
                           const uint8_t *key, size_t key_len)
{
	uint8_t k0[FOTA_SHA256_BLOCK_SIZE];
	size_t i;

	/* RFC 2104 section 2: K is hashed if longer than a block, then padded. */
	memset(k0, 0, sizeof k0);
	if (key_len > sizeof k0) {
		fota_sha256(k0, key, key_len);
	} else if (key_len > 0) {
		memcpy(k0, key, key_len);
	}

	/* Absorb K ^ ipad; then 0x36 ^ 0x5c turns it into K ^ opad. */
	for (i = 0; i < sizeof k0; i++) {
		k0[i] ^= 0x36;
	}
	fota_sha256_init(&ctx->inner);
	fota_sha256_update(&ctx->inner, k0, sizeof k0);
	for (i = 0; i < sizeof k0; i++) {
		k0[i] ^= 0x36 ^ 0x5c;
	}
	fota_sha256_init(&ctx->outer);
	fota_sha256_update(&ctx->outer, k0, sizeof k0);

	fota_wipe(k0, sizeof k0);
}

void fota_hmac_sha256_update(fota_hmac_sha256_ctx *ctx,
                             const uint8_t *msg, size_t len)
{
	fota_sha256_update(&ctx->inner, msg, len);
}

void fota_hmac_sha256_final(fota_hmac_sha256_ctx *ctx,
                            uint8_t out[FOTA_SHA256_SIZE])
{
	uint8_t ih[FOTA_SHA256_SIZE];

	fota_sha256_final(&ctx->inner, ih);
	fota_sha256_update(&ctx->outer, ih, sizeof ih);
	fota_sha256_final(&ctx->outer, out);
	fota_wipe(ih, sizeof ih);
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
