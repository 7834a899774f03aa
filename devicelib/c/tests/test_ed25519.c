/*
 * test_ed25519.c - known-answer and negative tests of the SHA-512 and
 * Ed25519 verification of fota_crypto.h (the FOTA_WITH_ED25519 option).
 *
 * SHA-512: the FIPS 180-4 examples and one million 'a', every split.
 * Ed25519: the RFC 8032 section 7.1 vectors, each message split at every
 * boundary, then what must fail: every single-bit change of the
 * signature and the key, a changed message, S + L (the same point, a
 * malleable S), and an R that is the non-canonical encoding of the right
 * point. Wycheproof cases and differential tests against Go's
 * crypto/ed25519 are in ../crypto_test.go (ed25519_harness.c).
 *
 * Ends with the line "N passed, N failed"; exits non-zero on a failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fota_crypto.h"

static int passed, failed;

static void check(int ok, const char *what, const char *name)
{
	if (ok) {
		passed++;
	} else {
		failed++;
		printf("FAIL %s: %s\n", what, name);
	}
}

static int nibble(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	abort();
}

static size_t unhex(uint8_t *out, const char *hex)
{
	size_t n = strlen(hex) / 2, i;

	for (i = 0; i < n; i++) {
		out[i] = (uint8_t)(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* SHA-512                                                            */
/* ------------------------------------------------------------------ */

static const struct {
	const char *msg, *digest;
} sha512_kat[] = {
	{ "", "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
	      "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e" },
	{ "abc", "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
	         "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f" },
	{ "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
	  "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
	  "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909" },
	/* 111 and 112 bytes: the length field just fits, then needs a second block. */
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	  "fa9121c7b32b9e01733d034cfc78cbf67f926c7ed83e82200ef86818196921760b4beff48404df811b953828274461673c68d04e297b0eb7b2b4d60fc6b566a2" },
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	  "c01d080efd492776a1c43bd23dd99d0a2e626d481e16782e75d54c2503b5dc32bd05f0f1ba33e568b88fd2d970929b719ecbb152f58f130a407c8830604b70ca" },
};

static void sha512_split(uint8_t out[64], const uint8_t *msg, size_t len, size_t split)
{
	fota_sha512_ctx ctx;

	fota_sha512_init(&ctx);
	fota_sha512_update(&ctx, msg, split);
	fota_sha512_update(&ctx, msg + split, len - split);
	fota_sha512_final(&ctx, out);
}

static void test_sha512(void)
{
	uint8_t out[64], want[64], block[1000];
	fota_sha512_ctx ctx;
	size_t i, split;
	int bad;

	for (i = 0; i < sizeof sha512_kat / sizeof sha512_kat[0]; i++) {
		const uint8_t *m = (const uint8_t *)sha512_kat[i].msg;
		size_t len = strlen(sha512_kat[i].msg);

		unhex(want, sha512_kat[i].digest);
		bad = 0;
		for (split = 0; split <= len; split++) {
			sha512_split(out, m, len, split);
			bad |= memcmp(out, want, 64) != 0;
		}
		check(!bad, "sha512 known answer, every split", sha512_kat[i].msg);
		fota_sha512_init(&ctx);
		for (split = 0; split < len; split++) {
			fota_sha512_update(&ctx, m + split, 1);
		}
		fota_sha512_final(&ctx, out);
		check(memcmp(out, want, 64) == 0, "sha512 byte by byte", sha512_kat[i].msg);
	}

	memset(block, 'a', sizeof block);
	fota_sha512_init(&ctx);
	for (i = 0; i < 1000; i++) {
		fota_sha512_update(&ctx, block, sizeof block);
	}
	fota_sha512_final(&ctx, out);
	unhex(want, "e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973eb"
	            "de0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b");
	check(memcmp(out, want, 64) == 0, "sha512", "one million 'a'");
}

/* ------------------------------------------------------------------ */
/* Ed25519                                                            */
/* ------------------------------------------------------------------ */

/* RFC 8032 7.1: TEST 1, 2, 3 and SHA(abc). */
static const struct {
	const char *name, *pub, *msg, *sig;
} rfc8032[] = {
	{ "TEST 1", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
	  "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b" },
	{ "TEST 2", "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
	  "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00" },
	{ "TEST 3", "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
	  "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a" },
	{ "TEST SHA(abc)", "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
	  "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
	  "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704" },
};

/* The group order L, little-endian. */
static const char order_l[] = "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010";

static int verify_split(const uint8_t sig[64], const uint8_t pub[32],
                        const uint8_t *msg, size_t len, size_t split)
{
	fota_ed25519_ctx ctx;

	fota_ed25519_init(&ctx, sig, pub);
	fota_ed25519_update(&ctx, msg, split);
	fota_ed25519_update(&ctx, msg + split, len - split);
	return fota_ed25519_final(&ctx);
}

/* sig's S + L, which stays below 2^256 for any S < 2^255 - L. */
static void add_order(uint8_t sig[64])
{
	uint8_t l[32];
	unsigned c = 0;
	int i;

	unhex(l, order_l);
	for (i = 0; i < 32; i++) {
		c += (unsigned)sig[32 + i] + l[i];
		sig[32 + i] = (uint8_t)c;
		c >>= 8;
	}
}

static void test_ed25519_rfc8032(void)
{
	uint8_t pub[32], msg[65], sig[64], bad_sig[64], bad_pub[32];
	size_t i, len, split, b;
	int bad;

	for (i = 0; i < sizeof rfc8032 / sizeof rfc8032[0]; i++) {
		const char *name = rfc8032[i].name;

		unhex(pub, rfc8032[i].pub);
		len = unhex(msg, rfc8032[i].msg);
		unhex(sig, rfc8032[i].sig);
		check(fota_ed25519_verify(sig, pub, len ? msg : NULL, len) == 0, "ed25519 valid", name);
		bad = 0;
		for (split = 0; split <= len; split++) {
			bad |= verify_split(sig, pub, msg, len, split) != 0;
		}
		check(!bad, "ed25519 valid, message split anywhere", name);

		/* Every byte of R, S and A matters: one bit flipped in each, a
		 * different bit from byte to byte (all 768 bits take a minute
		 * under the sanitizers; crypto_test.go flips random bits). S's
		 * top bits are zero for S < L: setting them makes S >= L. */
		bad = 0;
		for (b = 0; b < 64; b++) {
			memcpy(bad_sig, sig, 64);
			bad_sig[b] ^= (uint8_t)(1u << (b + i) % 8);
			bad |= fota_ed25519_verify(bad_sig, pub, msg, len) == 0;
		}
		check(!bad, "ed25519 rejects a one-bit change in any byte of the signature", name);
		bad = 0;
		for (b = 0; b < 32; b++) {
			memcpy(bad_pub, pub, 32);
			bad_pub[b] ^= (uint8_t)(1u << (b + i) % 8);
			bad |= fota_ed25519_verify(sig, bad_pub, msg, len) == 0;
		}
		check(!bad, "ed25519 rejects a one-bit change in any byte of the key", name);
		msg[len] = 0;
		check(fota_ed25519_verify(sig, pub, msg, len + 1) != 0, "ed25519 rejects a longer message", name);
		if (len > 0) {
			msg[0] ^= 1;
			check(fota_ed25519_verify(sig, pub, msg, len) != 0, "ed25519 rejects a changed message", name);
			msg[0] ^= 1;
			check(fota_ed25519_verify(sig, pub, msg, len - 1) != 0, "ed25519 rejects a shorter message", name);
		}

		/* S + L satisfies the group equation as well: it must be refused
		 * for being >= L (RFC 8032 5.1.7), not accepted as malleable. */
		memcpy(bad_sig, sig, 64);
		add_order(bad_sig);
		check(fota_ed25519_verify(bad_sig, pub, msg, len) != 0, "ed25519 rejects S + L", name);
	}

	/* A key whose y has no x on the curve (y = 2): no point, refused. */
	memset(bad_pub, 0, sizeof bad_pub);
	bad_pub[0] = 2;
	unhex(sig, rfc8032[0].sig);
	check(fota_ed25519_verify(sig, bad_pub, NULL, 0) != 0, "ed25519 rejects a key off the curve", "y = 2");
}

int main(void)
{
	test_sha512();
	test_ed25519_rfc8032();
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
