/*
 * fota_aead.c - ChaCha20-Poly1305 AEAD, RFC 8439 section 2.8, in place.
 *
 * Opening authenticates the ciphertext first and decrypts only if the
 * tag is right, so a forged frame never turns into plaintext in the
 * caller's buffer, and the frame needs no second buffer.
 */
#include <string.h>

#include "fota_crypto.h"
#include "fota_internal.h"

/* Section 2.8: the data, then zero bytes up to a multiple of 16. */
static void mac_padded(fota_poly1305_ctx *p, const uint8_t *data, size_t len)
{
	static const uint8_t zeros[15] = { 0 };

	fota_poly1305_update(p, data, len);
	fota_poly1305_update(p, zeros, (16 - len % 16) % 16);
}

/*
 * The tag over (ad, ciphertext) under the one-time Poly1305 key, which
 * is the first 32 bytes of ChaCha20 block 0 (section 2.6).
 */
static void aead_tag(uint8_t tag[FOTA_AEAD_TAG_SIZE],
                     const uint8_t key[FOTA_AEAD_KEY_SIZE],
                     const uint8_t nonce[FOTA_AEAD_NONCE_SIZE],
                     const uint8_t *ad, size_t ad_len,
                     const uint8_t *ct, size_t ct_len)
{
	fota_poly1305_ctx p;
	uint8_t block0[64];   /* a whole block: no short-block copy */
	uint8_t lens[16];

	memset(block0, 0, sizeof block0);
	(void)fota_chacha20(block0, sizeof block0, key, nonce, 0);
	fota_poly1305_init(&p, block0);   /* reads the first 32 bytes */
	fota_wipe(block0, sizeof block0);

	mac_padded(&p, ad, ad_len);
	mac_padded(&p, ct, ct_len);

	/* Both lengths as 64-bit little-endian; size_t may be 32-bit. */
	fota_store32_le(lens, (uint32_t)ad_len);
	fota_store32_le(lens + 4, (uint32_t)((uint64_t)ad_len >> 32));
	fota_store32_le(lens + 8, (uint32_t)ct_len);
	fota_store32_le(lens + 12, (uint32_t)((uint64_t)ct_len >> 32));
	fota_poly1305_update(&p, lens, sizeof lens);
	fota_poly1305_final(&p, tag);   /* wipes p */
}

void fota_aead_seal(uint8_t tag[FOTA_AEAD_TAG_SIZE],
                    uint8_t *buf, size_t len,
                    const uint8_t key[FOTA_AEAD_KEY_SIZE],
                    const uint8_t nonce[FOTA_AEAD_NONCE_SIZE],
                    const uint8_t *ad, size_t ad_len)
{
	/* Block 0 keys Poly1305; the message is encrypted from block 1. */
	(void)fota_chacha20(buf, len, key, nonce, 1);
	aead_tag(tag, key, nonce, ad, ad_len, buf, len);
}

int fota_aead_open(const uint8_t tag[FOTA_AEAD_TAG_SIZE],
                   uint8_t *buf, size_t len,
                   const uint8_t key[FOTA_AEAD_KEY_SIZE],
                   const uint8_t nonce[FOTA_AEAD_NONCE_SIZE],
                   const uint8_t *ad, size_t ad_len)
{
	uint8_t expected[FOTA_AEAD_TAG_SIZE];
	int ok;

	aead_tag(expected, key, nonce, ad, ad_len, buf, len);
	/*
	 * Compare all 16 bytes in constant time: an early exit would tell a
	 * forger how many leading bytes of a guessed tag were right. The
	 * branch below is on the verdict only, which is public anyway.
	 */
	ok = fota_ct_equal(expected, tag, sizeof expected);
	fota_wipe(expected, sizeof expected);
	if (!ok) {
		return -1;
	}
	(void)fota_chacha20(buf, len, key, nonce, 1);
	return 0;
}
