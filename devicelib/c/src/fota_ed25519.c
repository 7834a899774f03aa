/*
 * fota_ed25519.c - Ed25519 signature verification, RFC 8032 section
 * 5.1.7 (pure Ed25519), for vendor-signed images (PROTOCOL.md 7).
 * Only builds with FOTA_WITH_ED25519 call it (fota.c, on each offer).
 *
 * Everything here is public (the key, the message, the signature), so
 * nothing needs to be constant time; the code is written for size and for
 * a core without a 32x32->64 multiply. Field elements mod p = 2^255 - 19
 * are sixteen 16-bit limbs: a limb product fits in 32 bits, and it is
 * split into the halves that land in two columns, so each column adds up
 * at most 32 numbers below 2^16 in a 32-bit accumulator (see fe_mul). The
 * LX106 does that with MUL16U/MULL and adds; there is no 64-bit
 * arithmetic at all. A field element is kept below 2^256 (not always
 * below p); only fe_tobytes reduces it fully.
 *
 * Verification policy: the verdicts of Go's crypto/ed25519, which the
 * gateway and the Go device use, so a signature is valid on the device
 * exactly when it is valid to them (crypto_test.go checks every
 * Wycheproof case and random ones against Go):
 *  - S must be below the group order L (RFC 8032, no malleable S);
 *  - A is decoded as RFC 8032 5.1.3 says, except that a y of p or more
 *    is taken mod p and an x of 0 with the sign bit set is taken as 0
 *    (both non-canonical, accepted as Go does); small-order A is allowed;
 *  - R is not decoded: the check is that the canonical encoding of
 *    [S]B - [k]A equals R byte for byte (the cofactorless equation), so a
 *    non-canonical R is always rejected;
 *  - k = SHA-512(R || A || M) mod L over the bytes of A as given.
 * Honest vendor signatures pass every variant of these rules; they only
 * matter for signatures crafted to be ambiguous.
 */
#include <string.h>

#include "fota_crypto.h"
#include "fota_internal.h"

/* Value = sum of l[i] * 2^(16 i); each limb below 2^16. */
typedef uint16_t fe[16];

/*
 * A point in extended twisted Edwards coordinates, p[X], p[Y], p[Z], p[T]:
 * x = X/Z, y = Y/Z, T = XY/Z. An array of four field elements, so that
 * fota_ed25519_ctx can hold one without knowing these types.
 */
typedef fe ge[4];
enum { X, Y, Z, T };

/*
 * Constants as eight little-endian 32-bit words, read with 32-bit loads
 * only (so FOTA_RODATA may place them in flash): d = -121665/121666,
 * sqrt(-1) = 2^((p-1)/4), the base point B, the group order
 * L = 2^252 + 27742317777372353535851937790883648493, and p itself.
 */
static const uint32_t C_D[8] FOTA_RODATA = {
	0x135978a3, 0x75eb4dca, 0x4141d8ab, 0x00700a4d,
	0x7779e898, 0x8cc74079, 0x2b6ffe73, 0x52036cee
};
static const uint32_t C_SQRTM1[8] FOTA_RODATA = {
	0x4a0ea0b0, 0xc4ee1b27, 0xad2fe478, 0x2f431806,
	0x3dfbd7a7, 0x2b4d0099, 0x4fc1df0b, 0x2b832480
};
static const uint32_t C_BX[8] FOTA_RODATA = {
	0x8f25d51a, 0xc9562d60, 0x9525a7b2, 0x692cc760,
	0xfdd6dc5c, 0xc0a4e231, 0xcd6e53fe, 0x216936d3
};
static const uint32_t C_BY[8] FOTA_RODATA = {
	0x66666658, 0x66666666, 0x66666666, 0x66666666,
	0x66666666, 0x66666666, 0x66666666, 0x66666666
};
static const uint32_t C_L[8] FOTA_RODATA = {
	0x5cf5d3ed, 0x5812631a, 0xa2f79cd6, 0x14def9de,
	0x00000000, 0x00000000, 0x00000000, 0x10000000
};
static const uint32_t C_P[8] FOTA_RODATA = {
	0xffffffed, 0xffffffff, 0xffffffff, 0xffffffff,
	0xffffffff, 0xffffffff, 0xffffffff, 0x7fffffff
};

static void fe_load(fe r, const uint32_t w[8])
{
	int i;

	for (i = 0; i < 8; i++) {
		uint32_t v = w[i];

		r[2 * i] = (uint16_t)v;
		r[2 * i + 1] = (uint16_t)(v >> 16);
	}
}

static void fe_one(fe r)
{
	memset(r, 0, sizeof(fe));
	r[0] = 1;
}

/* 32 little-endian bytes into limbs, all 256 bits. */
static void limbs_from_bytes(uint16_t r[16], const uint8_t b[32])
{
	int i;

	for (i = 0; i < 16; i++) {
		r[i] = (uint16_t)(b[2 * i] | b[2 * i + 1] << 8);
	}
}

/*
 * m = a - b over 16 limbs; returns the borrow out (1 if a < b). Each
 * difference wraps modulo 2^32, so bit 31 is its borrow.
 */
static uint32_t limbs_sub(uint16_t m[16], const uint16_t a[16], const uint16_t b[16])
{
	uint32_t c = 0;
	int i;

	for (i = 0; i < 16; i++) {
		c = (uint32_t)a[i] - b[i] - c;
		m[i] = (uint16_t)c;
		c >>= 31;
	}
	return c;
}

/*
 * r = t mod p, limbs below 2^16, for t[i] below 2^27. The bits of t from
 * 2^255 up are worth 19 each (2^255 = 19 mod p) and go into limb 0
 * first; then one carry pass. Limb 15 then gets below 2^15 plus a carry
 * below 2^12, so nothing carries out of it: r < 2^256.
 */
static void fe_carry(fe r, uint32_t t[16])
{
	uint32_t c = (t[15] >> 15) * 19;
	int i;

	t[15] &= 0x7fff;
	for (i = 0; i < 16; i++) {
		c += t[i];
		r[i] = (uint16_t)c;
		c >>= 16;
	}
}

static void fe_add(fe r, const fe a, const fe b)
{
	uint32_t t[16];
	int i;

	for (i = 0; i < 16; i++) {
		t[i] = (uint32_t)a[i] + b[i];
	}
	fe_carry(r, t);
}

/*
 * r = a - b + 4p: 4p in limbs of 0x3fffc (0x3ffb4 for limb 0, 0x1fffc
 * for limb 15) is at least 0x1fffc in every limb, more than any limb of
 * b, so no limb goes negative.
 */
static void fe_sub(fe r, const fe a, const fe b)
{
	uint32_t t[16];
	int i;

	for (i = 0; i < 16; i++) {
		t[i] = (uint32_t)a[i] + 0x3fffc - b[i];
	}
	t[0] -= 0x48;
	t[15] -= 0x20000;
	fe_carry(r, t);
}

/*
 * r = a * b mod p (r may be a or b). Each limb product is below 2^32; its
 * low half goes to column i + j and its high half to column i + j + 1,
 * so a column receives at most 16 + 16 numbers below 2^16: below 2^21.
 * Column 16 + k is worth 2^256 = 38 times column k, so the folded
 * columns stay below 39 * 2^21 < 2^27, as fe_carry needs.
 */
static void fe_mul(fe r, const fe a, const fe b)
{
	uint32_t t[32];
	int i, j;

	memset(t, 0, sizeof t);
	for (i = 0; i < 16; i++) {
		uint32_t ai = a[i], hi = 0;

		/* The high half waits in a register for the next column. */
		for (j = 0; j < 16; j++) {
			uint32_t m = ai * b[j];

			t[i + j] += (m & 0xffff) + hi;
			hi = m >> 16;
		}
		t[i + 16] += hi;
	}
	for (i = 0; i < 16; i++) {
		t[i] += 38 * t[i + 16];
	}
	fe_carry(r, t);
}

/*
 * r = a^(p - 2) = 1/a when inv, else a^((p - 5) / 8) (for the square root
 * in decoding). Both exponents are all ones in binary but for two bits
 * (p - 2 = 2^255 - 21: bits 4 and 2 clear; (p - 5) / 8 = 2^252 - 3: bit 1
 * clear): square and multiply from the top bit down.
 */
static void fe_pow(fe r, const fe a, int inv)
{
	fe c;
	int i;

	memcpy(c, a, sizeof c);
	for (i = inv ? 253 : 250; i >= 0; i--) {
		fe_mul(c, c, c);
		if (inv ? i != 2 && i != 4 : i != 1) {
			fe_mul(c, c, a);
		}
	}
	memcpy(r, c, sizeof c);
}

/* The canonical 32-byte encoding of a mod p. */
static void fe_tobytes(uint8_t out[32], const fe a)
{
	uint32_t t[16];
	fe r, m, p;
	int i;

	/* a < 2^256, so this leaves r = (a mod 2^255) + 19 * (bit 255) < 2p... */
	for (i = 0; i < 16; i++) {
		t[i] = a[i];
	}
	fe_carry(r, t);
	/* ...and one subtraction of p, if it does not borrow, makes it < p. */
	fe_load(p, C_P);
	if (limbs_sub(m, r, p) == 0) {
		memcpy(r, m, sizeof r);
	}
	for (i = 0; i < 16; i++) {
		out[2 * i] = (uint8_t)r[i];
		out[2 * i + 1] = (uint8_t)(r[i] >> 8);
	}
}

/* 1 if a mod p is not 0. */
static int fe_nonzero(const fe a)
{
	uint8_t b[32];
	uint8_t acc = 0;
	int i;

	fe_tobytes(b, a);
	for (i = 0; i < 32; i++) {
		acc |= b[i];
	}
	return acc != 0;
}

/* The "sign" of RFC 8032: the low bit of the canonical encoding. */
static int fe_isneg(const fe a)
{
	uint8_t b[32];

	fe_tobytes(b, a);
	return b[0] & 1;
}

/*
 * p = p + q (p may be q): the unified addition for a = -1 ("add-2008-hwcd-3"
 * of the Explicit-Formulas Database), complete on Ed25519, so it doubles
 * too and never meets an exception. Every read of p comes before the
 * first write to it.
 */
static void ge_add(fe *p, fe *q)
{
	fe a, b, c, d, t;

	fe_sub(a, p[Y], p[X]);
	fe_sub(t, q[Y], q[X]);
	fe_mul(a, a, t);        /* A = (Y1 - X1)(Y2 - X2) */
	fe_add(b, p[Y], p[X]);
	fe_add(t, q[Y], q[X]);
	fe_mul(b, b, t);        /* B = (Y1 + X1)(Y2 + X2) */
	fe_load(t, C_D);
	fe_add(t, t, t);
	fe_mul(c, p[T], q[T]);
	fe_mul(c, c, t);        /* C = 2d T1 T2 */
	fe_mul(d, p[Z], q[Z]);
	fe_add(d, d, d);        /* D = 2 Z1 Z2 */
	fe_sub(t, b, a);        /* E = B - A */
	fe_add(b, b, a);        /* H = B + A */
	fe_sub(a, d, c);        /* F = D - C */
	fe_add(c, d, c);        /* G = D + C */
	fe_mul(p[X], t, a);     /* X3 = E F */
	fe_mul(p[Y], b, c);     /* Y3 = G H */
	fe_mul(p[Z], c, a);     /* Z3 = F G */
	fe_mul(p[T], t, b);     /* T3 = E H */
}

/*
 * -A from the encoding s of A (RFC 8032 5.1.3, with the policy above).
 * Returns 0, or -1 if no x satisfies the curve equation for this y.
 */
static int ge_frombytes_neg(fe *a, const uint8_t s[32])
{
	fe u, v, w, x;

	limbs_from_bytes(a[Y], s);
	a[Y][15] &= 0x7fff;       /* bit 255 is the sign of x */
	fe_one(a[Z]);
	fe_mul(u, a[Y], a[Y]);
	fe_load(v, C_D);
	fe_mul(v, v, u);
	fe_sub(u, u, a[Z]);       /* u = y^2 - 1 */
	fe_add(v, v, a[Z]);       /* v = d y^2 + 1 */

	/* x = u v^3 (u v^7)^((p - 5) / 8) */
	fe_mul(w, v, v);
	fe_mul(w, w, v);          /* v^3 */
	fe_mul(x, w, w);
	fe_mul(x, x, v);
	fe_mul(x, x, u);          /* u v^7 */
	fe_pow(x, x, 0);
	fe_mul(x, x, w);
	fe_mul(x, x, u);

	/* v x^2 = u: x is a root; = -u: x sqrt(-1) is; else there is none. */
	fe_mul(w, x, x);
	fe_mul(w, w, v);
	fe_sub(v, w, u);
	if (fe_nonzero(v)) {
		fe_add(v, w, u);
		if (fe_nonzero(v)) {
			return -1;
		}
		fe_load(w, C_SQRTM1);
		fe_mul(x, x, w);
	}
	/* -A takes the root whose sign is not the encoded one (x = 0 stays 0). */
	if (fe_isneg(x) == s[31] >> 7) {
		memset(w, 0, sizeof w);
		fe_sub(x, w, x);
	}
	memcpy(a[X], x, sizeof x);
	fe_mul(a[T], a[X], a[Y]);
	return 0;
}

/* r -= L if r >= L; returns 1 if it subtracted. */
static int sc_reduce_once(uint16_t r[16])
{
	uint16_t m[16], l[16];

	fe_load(l, C_L);
	if (limbs_sub(m, r, l) != 0) {
		return 0;
	}
	memcpy(r, m, sizeof m);
	return 1;
}

/*
 * k = the 512-bit little-endian h mod L, a bit at a time from the top:
 * k = 2k + bit, then k - L if that is not negative. 512 small steps cost
 * less than one point addition, and need no multiplication.
 */
static void sc_reduce(uint16_t k[16], const uint8_t h[64])
{
	int i, j;

	memset(k, 0, 16 * sizeof k[0]);
	for (i = 511; i >= 0; i--) {
		uint32_t c = (uint32_t)(h[i >> 3] >> (i & 7)) & 1;

		for (j = 0; j < 16; j++) {
			c += (uint32_t)k[j] << 1;   /* k < L < 2^253: 2k + 1 fits */
			k[j] = (uint16_t)c;
			c >>= 16;
		}
		(void)sc_reduce_once(k);
	}
}

static int bit(const uint16_t n[16], int i)
{
	return (n[i >> 4] >> (i & 15)) & 1;
}

void fota_ed25519_init(fota_ed25519_ctx *ctx, const uint8_t sig[FOTA_ED25519_SIG_SIZE],
                       const uint8_t pub[FOTA_ED25519_KEY_SIZE])
{
	ctx->sig = sig;
	ctx->pub = pub;
	fota_sha512_init(&ctx->u.sha);
	fota_sha512_update(&ctx->u.sha, sig, 32);   /* R */
	fota_sha512_update(&ctx->u.sha, pub, FOTA_ED25519_KEY_SIZE);
}

void fota_ed25519_update(fota_ed25519_ctx *ctx, const uint8_t *msg, size_t len)
{
	fota_sha512_update(&ctx->u.sha, msg, len);
}

int fota_ed25519_final(fota_ed25519_ctx *ctx)
{
	fe *a = ctx->u.check.minus_a;
	uint16_t *s = ctx->u.check.s, *k = ctx->u.check.k;
	ge p, b;
	int i;

	{
		uint8_t h[FOTA_SHA512_SIZE];

		/* The hash is done: from here its memory holds -A, S and k. */
		fota_sha512_final(&ctx->u.sha, h);
		sc_reduce(k, h);
	}
	/* S < L (RFC 8032 5.1.7 step 1), then A, before any point arithmetic. */
	limbs_from_bytes(s, ctx->sig + 32);
	if (sc_reduce_once(s) || ge_frombytes_neg(a, ctx->pub) != 0) {
		return -1;
	}

	fe_load(b[X], C_BX);
	fe_load(b[Y], C_BY);
	fe_one(b[Z]);
	fe_mul(b[T], b[X], b[Y]);

	/*
	 * [S]B + [k](-A), both scalars below L < 2^253, one doubling and up to
	 * two additions per bit from the top (Straus/Shamir without a table:
	 * 128 bytes less stack for some 5% more time).
	 */
	memset(p, 0, sizeof p);
	fe_one(p[Y]);
	fe_one(p[Z]);
	for (i = 252; i >= 0; i--) {
		ge_add(p, p);
		if (bit(s, i)) {
			ge_add(p, b);
		}
		if (bit(k, i)) {
			ge_add(p, a);
		}
	}

	/* Encode (x/z, y/z) and compare with R byte for byte. */
	{
		uint8_t r[32];

		fe_pow(b[Z], p[Z], 1);
		fe_mul(p[X], p[X], b[Z]);
		fe_mul(p[Y], p[Y], b[Z]);
		fe_tobytes(r, p[Y]);
		r[31] = (uint8_t)(r[31] | fe_isneg(p[X]) << 7);
		return fota_ct_equal(r, ctx->sig, 32) ? 0 : -1;
	}
}

int fota_ed25519_verify(const uint8_t sig[FOTA_ED25519_SIG_SIZE],
                        const uint8_t pub[FOTA_ED25519_KEY_SIZE],
                        const uint8_t *msg, size_t len)
{
	fota_ed25519_ctx ctx;

	fota_ed25519_init(&ctx, sig, pub);
	fota_ed25519_update(&ctx, msg, len);
	return fota_ed25519_final(&ctx);
}
