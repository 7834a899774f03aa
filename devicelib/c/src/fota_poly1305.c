/*
 * fota_poly1305.c - Poly1305, RFC 8439 section 2.5.
 *
 * The LX106 multiplies 32x32->32 in one instruction (MULL) but has no
 * 64-bit product, so numbers mod p = 2^130 - 5 are held in ten 13-bit
 * limbs (10 * 13 = 130, so what would be limb 10 wraps onto limb 0 with
 * a factor of 5, since 2^130 = 5 mod p). A limb times a limb of r then
 * fits in 32 bits with room to add up five such products; the bounds are
 * argued where the code relies on them. This is the limb design of
 * BearSSL's poly1305_ctmul32: 100 multiplications per 16-byte block.
 *
 * Constant time: only additions, shifts, masks and multiplications
 * (assumed constant time on the target, as on the LX106), no branch or
 * index that depends on the key, the message or the accumulator.
 */
#include <string.h>

#include "fota_crypto.h"
#include "fota_internal.h"

#define MASK13 0x1fffu

/*
 * Adds the 128-bit little-endian number at b to the limbs l, limb k
 * taking bits 13k .. 13k+12 (limb 9 gets the top 11 bits). Adding rather
 * than storing lets a message block go straight into the accumulator.
 */
static void limbs_add_le128(uint32_t l[10], const uint8_t b[16])
{
#ifdef __OPTIMIZE_SIZE__
	/*
	 * -Os: limb k from the three bytes holding bits 13k .. 13k + 12, as
	 * a loop: 175 bytes smaller on the LX106 than the word shuffle below,
	 * for some 60 more instructions a block (an -Os open about 10%
	 * slower: make speed SPEED_OPT=-Os). Optimized builds, which make
	 * speed measures by default, keep the shuffle.
	 */
	int k;

	for (k = 0; k < 10; k++) {
		int bit = 13 * k, j = bit >> 3;
		uint32_t v = b[j] | (uint32_t)b[j + 1] << 8;

		if (j < 14) {
			v |= (uint32_t)b[j + 2] << 16;   /* limb 9 ends in byte 15 */
		}
		l[k] += (v >> (bit & 7)) & MASK13;
	}
#else
	uint32_t t0 = fota_load32_le(b);
	uint32_t t1 = fota_load32_le(b + 4);
	uint32_t t2 = fota_load32_le(b + 8);
	uint32_t t3 = fota_load32_le(b + 12);

	l[0] += t0 & MASK13;
	l[1] += (t0 >> 13) & MASK13;
	l[2] += ((t0 >> 26) | (t1 << 6)) & MASK13;
	l[3] += (t1 >> 7) & MASK13;
	l[4] += ((t1 >> 20) | (t2 << 12)) & MASK13;
	l[5] += (t2 >> 1) & MASK13;
	l[6] += (t2 >> 14) & MASK13;
	l[7] += ((t2 >> 27) | (t3 << 5)) & MASK13;
	l[8] += (t3 >> 8) & MASK13;
	l[9] += t3 >> 21;
#endif
}

/*
 * h = (h + block) * r mod p for each 16-byte block; hibit is 1 for a
 * full block, which gets 2^128 added, and 0 for the padded final one
 * (section 2.5.1).
 *
 * Limb bounds, which the comments below rely on: between blocks every
 * limb of h is below 2^13 except limb 1, below 2^13 + 2^10.
 */
static void poly1305_blocks(fota_poly1305_ctx *ctx, const uint8_t *m,
                            size_t nblocks, uint32_t hibit)
{
	const uint32_t *rr = ctx->r;
	uint32_t *h = ctx->h;
	uint32_t d[10];
	int k;

	while (nblocks-- > 0) {
		uint32_t c1 = 0, c2 = 0, z;

		/*
		 * Message limbs are below 2^13 (limb 9 below 2^12, with the
		 * 2^128 bit as its bit 11), so now limb 1 of h is below
		 * 2^14 + 2^10 and every other limb below 2^14.
		 */
		limbs_add_le128(h, m);
		h[9] += hibit << 11;

		/*
		 * Row k of the product is the sum over i of h[i] * r[k - i],
		 * where a negative index wraps to r[k - i + 10] times 5 (as
		 * 2^130 = 5 mod p). rr[] lays out 5*r[1..9] then r[0..9], so
		 * that factor is rr[9 + k - i] either way.
		 *
		 * Ten such products could overflow 32 bits, so each row is
		 * summed in two halves, i = 0..4 then i = 5..9, each with a
		 * carry chain. Five entries of rr[] add up to at most
		 * 5 * 5 * (2^13 - 1) = 204775, so a half row, with the carry in
		 * and (second half) the first half's limb, is below
		 * (2^14 + 2^10) * 204775 + 2^20 < 3.6e9 < 2^32, and its carry
		 * below 2^19. The halves also keep the live limbs few enough
		 * to stay in registers.
		 */
#ifdef __OPTIMIZE_SIZE__
		/*
		 * -Os: the same two half rows as the loops below, one loop body
		 * for both halves and a loop over the five terms of each: 76
		 * bytes fewer on the LX106 for some 30% more instructions per
		 * block at -Os (make speed measures the -O2 code, which keeps the
		 * unrolled rows). d starts at zero, so the first half adds
		 * nothing for it; every sum and carry is the one argued above.
		 */
		{
			int half;

			memset(d, 0, sizeof d);
			for (half = 0; half < 2; half++) {
				uint32_t c = 0;

				for (k = 0; k < 10; k++) {
					/* q[-i] = rr[9 + k - (5 * half + i)] */
					const uint32_t *q = rr + 9 + k - 5 * half, *hh = h + 5 * half;

					int i;

					c += d[k];
					for (i = 0; i < 5; i++) {
						c += hh[i] * q[-i];
					}
					d[k] = c & MASK13;
					c >>= 13;
				}
				c1 += c;
			}
		}
#else
		for (k = 0; k < 10; k++) {
			const uint32_t *q = rr + 9 + k;   /* q[-i] = rr[9 + k - i] */

			c1 += h[0] * q[0] + h[1] * q[-1] + h[2] * q[-2] +
			      h[3] * q[-3] + h[4] * q[-4];
			d[k] = c1 & MASK13;
			c1 >>= 13;
		}
		for (k = 0; k < 10; k++) {
			const uint32_t *q = rr + 4 + k;   /* q[5 - i] = rr[9 + k - i] */

			c2 += d[k] + h[5] * q[0] + h[6] * q[-1] + h[7] * q[-2] +
			      h[8] * q[-3] + h[9] * q[-4];
			d[k] = c2 & MASK13;
			c2 >>= 13;
		}
#endif

		/*
		 * The carries out of limb 9 are worth 2^130 = 5 each. z is
		 * below 5 * 2^20 + 2^13 < 2^23, so limb 1 ends below
		 * 2^13 + 2^10, as promised above.
		 */
		z = d[0] + 5 * (c1 + c2);
		d[0] = z & MASK13;
		d[1] += z >> 13;
		memcpy(h, d, sizeof d);
		m += 16;
	}
	fota_wipe(d, sizeof d);
}

void fota_poly1305_init(fota_poly1305_ctx *ctx,
                        const uint8_t key[FOTA_POLY1305_KEY_SIZE])
{
	fota_poly1305_key_r(ctx, key);
	memcpy(ctx->s, key + 16, 16);
}

void fota_poly1305_key_r(fota_poly1305_ctx *ctx, const uint8_t r[16])
{
	uint8_t *rb = ctx->c;   /* r's bytes, clamped in the empty block buffer */
	int i;

	/* One memset for r, h and c_len; the final wipe clears rb with the rest. */
	memset(ctx, 0, sizeof *ctx);
	memcpy(rb, r, 16);
	/* Clamp r (section 2.5.1): this also keeps r[9] below 2^7. */
	for (i = 3; i < 16; i += 4) {
		rb[i] &= 15;              /* r[3], r[7], r[11], r[15] */
		if (i < 15) {
			rb[i + 1] &= 252; /* r[4], r[8], r[12] */
		}
	}
	limbs_add_le128(ctx->r + 9, rb);
	for (i = 0; i < 9; i++) {
		ctx->r[i] = 5 * ctx->r[10 + i];
	}
}

void fota_poly1305_update(fota_poly1305_ctx *ctx, const uint8_t *msg, size_t len)
{
	while (len > 0) {
		size_t n;

		if (ctx->c_len == 0 && len >= 16) {
			/* Whole blocks straight from the caller's buffer. */
			n = len - len % 16;
			poly1305_blocks(ctx, msg, n / 16, 1);
		} else {
			n = 16 - ctx->c_len;
			if (n > len) {
				n = len;
			}
			memcpy(ctx->c + ctx->c_len, msg, n);
			ctx->c_len += n;
			if (ctx->c_len == 16) {
				poly1305_blocks(ctx, ctx->c, 1, 1);
				ctx->c_len = 0;
			}
		}
		msg += n;
		len -= n;
	}
}

/*
 * The AEAD's input (RFC 8439 2.8): the data, then zeros up to a multiple
 * of 16, so every block is a full one. Whole blocks go straight from
 * msg, the last partial one through ctx->c; nothing is kept between
 * calls, so the AEAD links neither fota_poly1305_update's buffering nor
 * fota_poly1305_final's partial block (over 100 bytes on the LX106).
 */
void fota_poly1305_padded(fota_poly1305_ctx *ctx, const uint8_t *msg, size_t len)
{
	size_t whole = len / 16, rest = len % 16;

	poly1305_blocks(ctx, msg, whole, 1);
	if (rest > 0) {
		memset(ctx->c, 0, sizeof ctx->c);
		memcpy(ctx->c, msg + 16 * whole, rest);
		poly1305_blocks(ctx, ctx->c, 1, 1);
	}
}

void fota_poly1305_final(fota_poly1305_ctx *ctx,
                         uint8_t tag[FOTA_POLY1305_TAG_SIZE])
{
	if (ctx->c_len > 0) {
		/* Partial block: append a 1 byte, pad with zeros, no 2^128. */
		ctx->c[ctx->c_len] = 1;
		memset(ctx->c + ctx->c_len + 1, 0, 15 - ctx->c_len);
		poly1305_blocks(ctx, ctx->c, 1, 0);
	}
	fota_poly1305_tag(ctx, ctx->s, tag);
}

void fota_poly1305_tag(fota_poly1305_ctx *ctx, const uint8_t s[16],
                       uint8_t tag[FOTA_POLY1305_TAG_SIZE])
{
	uint32_t *h = ctx->h;
	uint32_t c, acc;
	int i, j, bits;

	/*
	 * Now h < 2^130 + 2^23 < 2p (limb 1 may still exceed 13 bits), so
	 * h mod p is h or h - p. h + 5 reaches 2^130 exactly when h >= p:
	 * the first pass computes only that carry, c = 1 or 0. The second
	 * adds 5c and carries into 13-bit limbs, dropping what passes 2^130:
	 * h + 5 - 2^130 = h - p when c = 1, h itself when c = 0. Both passes
	 * do the same work whatever c is: no branch on a secret.
	 */
	c = 5;
	for (i = 0; i < 10; i++) {
		c = (h[i] + c) >> 13;
	}
	c *= 5;
	for (i = 0; i < 10; i++) {
		c += h[i];
		h[i] = c & MASK13;
		c >>= 13;
	}

	/*
	 * tag = (h + s) mod 2^128. s is added limb by limb, then one pass
	 * carries and emits the little-endian bytes; what lies past byte 15
	 * is dropped. The loops depend on the counters only.
	 */
	limbs_add_le128(h, s);
	c = 0;
	acc = 0;
	bits = 0;
	j = 0;
	for (i = 0; i < 10; i++) {
		c += h[i];
		acc |= (c & MASK13) << bits;   /* bits <= 7: fits */
		c >>= 13;
		for (bits += 13; bits >= 8 && j < 16; bits -= 8) {
			tag[j++] = (uint8_t)acc;
			acc >>= 8;
		}
	}

	fota_wipe(ctx, sizeof *ctx);
}
