/*
 * fota_crypto.h - the device's own small cryptography.
 *
 * ChaCha20-Poly1305 (RFC 8439), SHA-256 (FIPS 180-4), HMAC-SHA256
 * (RFC 2104) and HKDF-SHA256 (RFC 5869), and for vendor-signed images
 * SHA-512 and Ed25519 verification (RFC 8032; fota_sha512.c and
 * fota_ed25519.c, built with FOTA_WITH_ED25519), written for an ESP8266-class
 * core: C99, no malloc, no stdio, no table indexed by a secret, no
 * branch on a secret, and 32x32->32 multiplies only (the Xtensa LX106
 * has no 32x32->64 multiply).
 *
 * Conventions, as in Monocypher and BearSSL:
 *  - Every buffer is caller-owned. A parameter declared `uint8_t x[N]`
 *    must point to at least N readable (or writable) bytes; a pointer
 *    with a separate length may be NULL only when that length is 0.
 *  - Contexts are plain structs the caller allocates (stack or static);
 *    their fields are private. A `_final` function wipes its context.
 *  - Functions that can fail return 0 on success and -1 on failure.
 *  - Byte order is explicit: the code runs on big- and little-endian
 *    cores and has no alignment requirement.
 */
#ifndef FOTA_CRYPTO_H
#define FOTA_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FOTA_CHACHA20_KEY_SIZE   32
#define FOTA_CHACHA20_NONCE_SIZE 12
#define FOTA_POLY1305_KEY_SIZE   32
#define FOTA_POLY1305_TAG_SIZE   16
#define FOTA_AEAD_KEY_SIZE       32
#define FOTA_AEAD_NONCE_SIZE     12
#define FOTA_AEAD_TAG_SIZE       16
#define FOTA_SHA256_SIZE         32
#define FOTA_SHA256_BLOCK_SIZE   64
#define FOTA_SHA512_SIZE         64
#define FOTA_SHA512_BLOCK_SIZE   128
#define FOTA_ED25519_KEY_SIZE    32
#define FOTA_ED25519_SIG_SIZE    64
/* RFC 5869 section 2.3: L <= 255 * HashLen. */
#define FOTA_HKDF_SHA256_MAX_OKM (255 * FOTA_SHA256_SIZE)

/* ------------------------------------------------------------------ */
/* Constant-time helpers                                              */
/* ------------------------------------------------------------------ */

/*
 * Returns 1 if the n bytes at a and b are equal, 0 otherwise. The time
 * taken depends on n only, never on the contents. a and b must each
 * hold n bytes.
 */
int fota_ct_equal(const void *a, const void *b, size_t n);

/*
 * Sets n bytes at p to zero through a volatile pointer, so the compiler
 * cannot drop the stores as dead ("secure zeroing"). p must hold n bytes.
 */
void fota_wipe(void *p, size_t n);

/* ------------------------------------------------------------------ */
/* ChaCha20 (RFC 8439 section 2.4)                                    */
/* ------------------------------------------------------------------ */

/*
 * XORs len bytes of the ChaCha20 key stream for (key, nonce), starting
 * at block `counter`, into buf in place: encryption and decryption are
 * the same call. buf must hold len bytes (it may be NULL if len is 0).
 * Returns the counter of the next unused block, so a stream can be
 * continued across calls whose lengths are multiples of 64. The caller
 * keeps (key, nonce, counter) unique: the 32-bit counter wraps after
 * 256 GiB.
 */
uint32_t fota_chacha20(uint8_t *buf, size_t len,
                       const uint8_t key[FOTA_CHACHA20_KEY_SIZE],
                       const uint8_t nonce[FOTA_CHACHA20_NONCE_SIZE],
                       uint32_t counter);

/* ------------------------------------------------------------------ */
/* Poly1305 (RFC 8439 section 2.5)                                    */
/* ------------------------------------------------------------------ */

/* Private fields; 13-bit limbs, see fota_poly1305.c. */
typedef struct {
	uint32_t r[19];   /* 5*r[1..9], then r[0..9] */
	uint32_t h[10];   /* accumulator */
	uint8_t  s[16];   /* the "s" half of the one-time key */
	uint8_t  c[16];   /* partial block */
	size_t   c_len;   /* bytes in c, 0..15 */
} fota_poly1305_ctx;

/*
 * Starts a MAC with a 32-byte one-time key (r || s). A Poly1305 key
 * must never authenticate two messages.
 */
void fota_poly1305_init(fota_poly1305_ctx *ctx,
                        const uint8_t key[FOTA_POLY1305_KEY_SIZE]);

/* Absorbs len bytes of msg (NULL if len is 0); any split gives the same tag. */
void fota_poly1305_update(fota_poly1305_ctx *ctx, const uint8_t *msg, size_t len);

/* Writes the 16-byte tag and wipes ctx. */
void fota_poly1305_final(fota_poly1305_ctx *ctx,
                         uint8_t tag[FOTA_POLY1305_TAG_SIZE]);

/* ------------------------------------------------------------------ */
/* ChaCha20-Poly1305 AEAD (RFC 8439 section 2.8), in place            */
/* ------------------------------------------------------------------ */

/*
 * Encrypts the len bytes of buf in place and writes the 16-byte tag
 * over (ad, ciphertext). ad holds ad_len bytes and must not overlap
 * buf; tag must not overlap buf, but may directly follow it in the same
 * frame buffer (buf[len..len+15]). A (key, nonce) pair must never seal
 * two messages.
 */
void fota_aead_seal(uint8_t tag[FOTA_AEAD_TAG_SIZE],
                    uint8_t *buf, size_t len,
                    const uint8_t key[FOTA_AEAD_KEY_SIZE],
                    const uint8_t nonce[FOTA_AEAD_NONCE_SIZE],
                    const uint8_t *ad, size_t ad_len);

/*
 * Verifies tag over (ad, the len bytes of ciphertext in buf), in
 * constant time, and only then decrypts buf in place. Returns 0 if the
 * tag is valid (buf now holds the plaintext), or -1 if not: buf is then
 * left exactly as it was, so no unauthenticated plaintext is ever
 * released. Same buffer rules as fota_aead_seal: a 4 KiB frame is
 * opened in its own receive buffer, with its tag following it.
 */
int fota_aead_open(const uint8_t tag[FOTA_AEAD_TAG_SIZE],
                   uint8_t *buf, size_t len,
                   const uint8_t key[FOTA_AEAD_KEY_SIZE],
                   const uint8_t nonce[FOTA_AEAD_NONCE_SIZE],
                   const uint8_t *ad, size_t ad_len);

/*
 * Working state of one seal or open: private fields. The calls above keep
 * it on their stack; the _ctx variants below take it from the caller,
 * who can keep it in a long-lived struct (fota.h does) and so needs
 * about 250 bytes less stack. It is wiped at the end of every call.
 */
typedef struct {
	fota_poly1305_ctx poly;
	uint32_t chacha[16];  /* the ChaCha20 state */
	uint8_t block[32];    /* one-time key, then lengths, then the tag */
} fota_aead_ctx;

/* fota_aead_seal with its working state in *ctx. */
void fota_aead_seal_ctx(fota_aead_ctx *ctx,
                        uint8_t tag[FOTA_AEAD_TAG_SIZE],
                        uint8_t *buf, size_t len,
                        const uint8_t key[FOTA_AEAD_KEY_SIZE],
                        const uint8_t nonce[FOTA_AEAD_NONCE_SIZE],
                        const uint8_t *ad, size_t ad_len);

/* fota_aead_open with its working state in *ctx. */
int fota_aead_open_ctx(fota_aead_ctx *ctx,
                       const uint8_t tag[FOTA_AEAD_TAG_SIZE],
                       uint8_t *buf, size_t len,
                       const uint8_t key[FOTA_AEAD_KEY_SIZE],
                       const uint8_t nonce[FOTA_AEAD_NONCE_SIZE],
                       const uint8_t *ad, size_t ad_len);

/* ------------------------------------------------------------------ */
/* SHA-256 (FIPS 180-4)                                               */
/* ------------------------------------------------------------------ */

/* Private fields. */
typedef struct {
	uint32_t state[8];
	uint8_t  block[FOTA_SHA256_BLOCK_SIZE];
	uint64_t count;   /* bytes absorbed so far */
} fota_sha256_ctx;

void fota_sha256_init(fota_sha256_ctx *ctx);

/*
 * Absorbs len bytes of msg (NULL if len is 0). Any split of a message
 * into updates gives the same digest, so an image can be hashed as it
 * streams in, chunk by chunk.
 */
void fota_sha256_update(fota_sha256_ctx *ctx, const uint8_t *msg, size_t len);

/* Writes the 32-byte digest and wipes ctx. */
void fota_sha256_final(fota_sha256_ctx *ctx, uint8_t out[FOTA_SHA256_SIZE]);

/* One-shot SHA-256 of len bytes of msg. */
void fota_sha256(uint8_t out[FOTA_SHA256_SIZE], const uint8_t *msg, size_t len);

/* ------------------------------------------------------------------ */
/* HMAC-SHA256 (RFC 2104) and HKDF-SHA256 (RFC 5869)                  */
/* ------------------------------------------------------------------ */

/* Private fields: the hash of (K ^ ipad) so far, and of (K ^ opad). */
typedef struct {
	fota_sha256_ctx inner;
	fota_sha256_ctx outer;
} fota_hmac_sha256_ctx;

/* Starts an HMAC with a key of any length (key_len bytes at key). */
void fota_hmac_sha256_init(fota_hmac_sha256_ctx *ctx,
                           const uint8_t *key, size_t key_len);

/* Absorbs len bytes of msg. */
void fota_hmac_sha256_update(fota_hmac_sha256_ctx *ctx,
                             const uint8_t *msg, size_t len);

/*
 * Writes the 32-byte MAC and wipes ctx. To check a received MAC, compare
 * with fota_ct_equal, never memcmp.
 */
void fota_hmac_sha256_final(fota_hmac_sha256_ctx *ctx,
                            uint8_t out[FOTA_SHA256_SIZE]);

/* One-shot HMAC-SHA256. */
void fota_hmac_sha256(uint8_t out[FOTA_SHA256_SIZE],
                      const uint8_t *key, size_t key_len,
                      const uint8_t *msg, size_t len);

/*
 * HKDF-Extract: prk = HMAC-SHA256(salt, ikm). An empty salt (salt_len 0)
 * means HashLen zero bytes, as RFC 5869 section 2.2 says.
 */
void fota_hkdf_sha256_extract(uint8_t prk[FOTA_SHA256_SIZE],
                              const uint8_t *salt, size_t salt_len,
                              const uint8_t *ikm, size_t ikm_len);

/*
 * HKDF-Expand: writes okm_len bytes of output keying material to okm,
 * from a 32-byte prk and info_len bytes of info. Returns 0, or -1 (and
 * writes nothing) if okm_len > FOTA_HKDF_SHA256_MAX_OKM. okm may not
 * overlap prk or info.
 */
int fota_hkdf_sha256_expand(uint8_t *okm, size_t okm_len,
                            const uint8_t prk[FOTA_SHA256_SIZE],
                            const uint8_t *info, size_t info_len);

/* ------------------------------------------------------------------ */
/* SHA-512 (FIPS 180-4) and Ed25519 verification (RFC 8032)          */
/* Only in builds that verify vendor signatures (FOTA_WITH_ED25519):  */
/* link src/fota_sha512.c and src/fota_ed25519.c.                     */
/* ------------------------------------------------------------------ */

/* Private fields. */
typedef struct {
	uint64_t state[8];
	uint8_t  block[FOTA_SHA512_BLOCK_SIZE];
	uint64_t count;   /* bytes absorbed so far */
} fota_sha512_ctx;

void fota_sha512_init(fota_sha512_ctx *ctx);

/* Absorbs len bytes of msg (NULL if len is 0); any split gives the same digest. */
void fota_sha512_update(fota_sha512_ctx *ctx, const uint8_t *msg, size_t len);

/* Writes the 64-byte digest and wipes ctx. */
void fota_sha512_final(fota_sha512_ctx *ctx, uint8_t out[FOTA_SHA512_SIZE]);

/*
 * Verification of one Ed25519 signature (pure Ed25519, RFC 8032 5.1.7)
 * over a message given in pieces: init, update for each piece, final.
 * Private fields: the hash of R || A || M so far, whose memory final then
 * reuses for part of the check (about 200 bytes less stack), and the
 * caller's sig and pub, which must stay unchanged until final returns.
 */
typedef struct {
	union {
		fota_sha512_ctx sha;
		struct {
			uint16_t minus_a[4][16];   /* -A, extended coordinates */
			uint16_t s[16], k[16];     /* the scalars S and k */
		} check;
	} u;
	const uint8_t *sig;
	const uint8_t *pub;
} fota_ed25519_ctx;

/* Starts checking the 64-byte signature sig under the 32-byte public key pub. */
void fota_ed25519_init(fota_ed25519_ctx *ctx, const uint8_t sig[FOTA_ED25519_SIG_SIZE],
                       const uint8_t pub[FOTA_ED25519_KEY_SIZE]);

/* Absorbs the next len bytes of the message (NULL if len is 0). */
void fota_ed25519_update(fota_ed25519_ctx *ctx, const uint8_t *msg, size_t len);

/*
 * Returns 0 if sig is a valid signature of the message under pub, -1 if
 * not. The verdicts are those of Go's crypto/ed25519 (fota_ed25519.c
 * states the rules: S below the group order; R compared as bytes;
 * non-canonical and small-order A accepted). Not constant time: every
 * input is public. Uses about 800 bytes of stack on the LX106 (make size).
 */
int fota_ed25519_final(fota_ed25519_ctx *ctx);

/* The three calls above for a message in one piece. */
int fota_ed25519_verify(const uint8_t sig[FOTA_ED25519_SIG_SIZE],
                        const uint8_t pub[FOTA_ED25519_KEY_SIZE],
                        const uint8_t *msg, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* FOTA_CRYPTO_H */
