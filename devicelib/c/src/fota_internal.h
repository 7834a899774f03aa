/*
 * fota_internal.h - private helpers of the device library's sources.
 *
 * Byte-order helpers go through single bytes, so the code neither
 * depends on the core's endianness nor makes an unaligned access (the
 * LX106 faults on one). Compilers for little-endian hosts turn the
 * little-endian ones into plain loads and stores.
 */
#ifndef FOTA_INTERNAL_H
#define FOTA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "fota_crypto.h"

/*
 * Constant tables (the SHA-256 round constants and initial values,
 * ChaCha20's constants at -Os) are read with 32-bit loads only, so a
 * port may place them in flash instead of RAM with -DFOTA_RODATA=...
 * The ESP8266 maps .rodata into its RAM (~80 KB for everything), so
 * builds for it (the NONOS SDK's and the Arduino core's define __ets__)
 * put them in flash by default: 304 bytes of RAM back.
 */
#ifndef FOTA_RODATA
#if defined(__ets__)
#define FOTA_RODATA __attribute__((section(".irom.text")))
#else
#define FOTA_RODATA
#endif
#endif

/*
 * FOTA_NOINLINE keeps a function out of its caller where inlining costs
 * speed. FOTA_ALWAYS_INLINE is for fota_load32_le: at -Os GCC would call
 * it, and Poly1305's limb extraction, then no longer a leaf, would add a
 * 48-byte frame to the deepest stack chain of the device.
 */
#if defined(__GNUC__)
#define FOTA_NOINLINE __attribute__((noinline))
#define FOTA_ALWAYS_INLINE __attribute__((always_inline))
#else
#define FOTA_NOINLINE
#define FOTA_ALWAYS_INLINE
#endif

FOTA_ALWAYS_INLINE static inline uint32_t fota_load32_le(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) |
	       ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline void fota_store32_le(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t fota_load32_be(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline void fota_store32_be(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/*
 * fota_chacha20 in two steps, its 64-byte state in the caller's memory
 * (the AEAD keeps it in fota_aead_ctx, off the stack, and sets it up once
 * for the one-time key and the message). setup loads key and nonce; xor
 * XORs the key stream from block counter on into buf and leaves the next
 * counter in state[12]. The state holds the key: the caller wipes it.
 */
void fota_chacha20_setup(uint32_t state[16], const uint8_t key[32], const uint8_t nonce[12]);
void fota_chacha20_xor(uint32_t state[16], uint8_t *buf, size_t len, uint32_t counter);

/*
 * Poly1305 as the AEAD uses it: fota_poly1305_key_r is fota_poly1305_init
 * with r only, s staying where the caller has it (the AEAD's one-time key
 * block) until fota_poly1305_tag reads it; fota_poly1305_padded absorbs
 * len bytes and zeros up to a multiple of 16 (ctx->c must be empty, as it
 * is if nothing else is absorbed); fota_poly1305_tag is
 * fota_poly1305_final with no partial block pending, the tag written
 * after s is read (tag may overlap the bytes before s). Wipes ctx.
 */
void fota_poly1305_key_r(fota_poly1305_ctx *ctx, const uint8_t r[16]);
void fota_poly1305_padded(fota_poly1305_ctx *ctx, const uint8_t *msg, size_t len);
void fota_poly1305_tag(fota_poly1305_ctx *ctx, const uint8_t s[16], uint8_t tag[16]);

/*
 * fota_aead_seal_ctx (seal nonzero: tag written) and fota_aead_open_ctx
 * (seal 0: tag read; -1 and buf untouched if it does not verify) in one
 * body, so a device that does both links the AEAD once. The caller has
 * set up ctx->chacha for the key and nonce (fota_chacha20_setup), which
 * lets the device put its record nonce straight into the state.
 */
int fota_aead_run(fota_aead_ctx *ctx, int seal,
                  uint8_t tag[FOTA_AEAD_TAG_SIZE],
                  uint8_t *buf, size_t len,
                  const uint8_t *ad, size_t ad_len);

/*
 * fota_hmac_sha256_init for a key of at most a block (64 bytes), as
 * every key of the protocol is: without the long-key hashing, which a
 * device build then does not link.
 */
void fota_hmac_sha256_key(fota_hmac_sha256_ctx *ctx, const uint8_t *key, size_t key_len);

#endif /* FOTA_INTERNAL_H */
