/*
 * test_crypto.c - known-answer and negative tests of fota_crypto.h.
 *
 * Vectors from RFC 8439 (ChaCha20, Poly1305, AEAD), FIPS 180-4 examples
 * (SHA-256), RFC 4231 (HMAC-SHA256) and RFC 5869 (HKDF-SHA256), plus
 * splits of every message at every boundary, and the failures the AEAD
 * must report. Wycheproof and differential tests live in
 * ../crypto_test.go, which drives harness.c.
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
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	abort();
}

/* Decodes hex into out (which must be big enough); returns the length. */
static size_t unhex(uint8_t *out, const char *hex)
{
	size_t n = strlen(hex) / 2, i;

	for (i = 0; i < n; i++) {
		out[i] = (uint8_t)(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
	}
	return n;
}

static int eq_hex(const uint8_t *got, size_t len, const char *want_hex)
{
	uint8_t want[1024];
	size_t n = unhex(want, want_hex);

	return n == len && memcmp(got, want, n) == 0;
}

static void fill_seq(uint8_t *p, size_t n, int first)
{
	size_t i;

	for (i = 0; i < n; i++) {
		p[i] = (uint8_t)(first + (int)i);
	}
}

/* ------------------------------------------------------------------ */
/* ChaCha20                                                           */
/* ------------------------------------------------------------------ */

static const char sunscreen[] =
	"Ladies and Gentlemen of the class of '99: If I could offer you only "
	"one tip for the future, sunscreen would be it.";

static void test_chacha20(void)
{
	uint8_t key[32], nonce[12], buf[256], ref[256];
	size_t len = strlen(sunscreen), split;
	uint32_t next;

	/* RFC 8439 2.3.2: one block, as key stream XORed into zeros. */
	fill_seq(key, 32, 0);
	unhex(nonce, "000000090000004a00000000");
	memset(buf, 0, 64);
	next = fota_chacha20(buf, 64, key, nonce, 1);
	check(eq_hex(buf, 64,
		"10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
		"d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e"),
		"chacha20", "RFC 8439 2.3.2 block");
	check(next == 2, "chacha20", "returns the next counter");

	/* RFC 8439 2.4.2: 114 bytes from counter 1 (a partial last block). */
	unhex(nonce, "000000000000004a00000000");
	memcpy(buf, sunscreen, len);
	next = fota_chacha20(buf, len, key, nonce, 1);
	check(eq_hex(buf, len,
		"6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b"
		"f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8"
		"07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736"
		"5af90bbf74a35be6b40b8eedf2785e42874d"),
		"chacha20", "RFC 8439 2.4.2 encryption");
	check(next == 3, "chacha20", "counter after a partial block");
	(void)fota_chacha20(buf, len, key, nonce, 1);
	check(memcmp(buf, sunscreen, len) == 0, "chacha20", "decrypts to the plaintext");

	/* RFC 8439 2.6.2: the Poly1305 one-time key is block 0. */
	fill_seq(key, 32, 0x80);
	unhex(nonce, "000000000001020304050607");
	memset(buf, 0, 32);
	(void)fota_chacha20(buf, 32, key, nonce, 0);
	check(eq_hex(buf, 32,
		"8ad5a08b905f81cc815040274ab29471a833b637e3fd0da508dbb8e2fdd1a646"),
		"chacha20", "RFC 8439 2.6.2 Poly1305 key generation");

	/* A stream continued at any multiple of 64 equals the one-shot one. */
	fill_seq(ref, sizeof ref, 7);
	(void)fota_chacha20(ref, sizeof ref, key, nonce, 5);
	for (split = 0; split <= sizeof buf; split += 64) {
		uint8_t part[256];
		fill_seq(part, sizeof part, 7);
		next = fota_chacha20(part, split, key, nonce, 5);
		(void)fota_chacha20(part + split, sizeof part - split, key, nonce, next);
		check(memcmp(part, ref, sizeof part) == 0, "chacha20",
		      "continued stream equals one-shot");
	}
	check(fota_chacha20(NULL, 0, key, nonce, 9) == 9, "chacha20",
	      "empty input leaves the counter");
}

/* ------------------------------------------------------------------ */
/* Poly1305                                                           */
/* ------------------------------------------------------------------ */

static const struct {
	const char *name, *key, *msg, *tag;
} poly1305_vectors[] = {
	{ "RFC 8439 2.5.2",
		"85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b",
		"43727970746f6772617068696320466f72756d2052657365617263682047726f"
		"7570",
		"a8061dc1305136c6c22b8baf0c0127a9" },
	{ "RFC 8439 A.3 #1",
		"0000000000000000000000000000000000000000000000000000000000000000",
		"0000000000000000000000000000000000000000000000000000000000000000"
		"0000000000000000000000000000000000000000000000000000000000000000",
		"00000000000000000000000000000000" },
	{ "RFC 8439 A.3 #2",
		"0000000000000000000000000000000036e5f6b5c5e06070f0efca96227a863e",
		"416e79207375626d697373696f6e20746f20746865204945544620696e74656e"
		"6465642062792074686520436f6e7472696275746f7220666f72207075626c69"
		"636174696f6e20617320616c6c206f722070617274206f6620616e2049455446"
		"20496e7465726e65742d4472616674206f722052464320616e6420616e792073"
		"746174656d656e74206d6164652077697468696e2074686520636f6e74657874"
		"206f6620616e204945544620616374697669747920697320636f6e7369646572"
		"656420616e20224945544620436f6e747269627574696f6e222e205375636820"
		"73746174656d656e747320696e636c756465206f72616c2073746174656d656e"
		"747320696e20494554462073657373696f6e732c2061732077656c6c20617320"
		"7772697474656e20616e6420656c656374726f6e696320636f6d6d756e696361"
		"74696f6e73206d61646520617420616e792074696d65206f7220706c6163652c"
		"207768696368206172652061646472657373656420746f",
		"36e5f6b5c5e06070f0efca96227a863e" },
	{ "RFC 8439 A.3 #3",
		"36e5f6b5c5e06070f0efca96227a863e00000000000000000000000000000000",
		"416e79207375626d697373696f6e20746f20746865204945544620696e74656e"
		"6465642062792074686520436f6e7472696275746f7220666f72207075626c69"
		"636174696f6e20617320616c6c206f722070617274206f6620616e2049455446"
		"20496e7465726e65742d4472616674206f722052464320616e6420616e792073"
		"746174656d656e74206d6164652077697468696e2074686520636f6e74657874"
		"206f6620616e204945544620616374697669747920697320636f6e7369646572"
		"656420616e20224945544620436f6e747269627574696f6e222e205375636820"
		"73746174656d656e747320696e636c756465206f72616c2073746174656d656e"
		"747320696e20494554462073657373696f6e732c2061732077656c6c20617320"
		"7772697474656e20616e6420656c656374726f6e696320636f6d6d756e696361"
		"74696f6e73206d61646520617420616e792074696d65206f7220706c6163652c"
		"207768696368206172652061646472657373656420746f",
		"f3477e7cd95417af89a6b8794c310cf0" },
	{ "RFC 8439 A.3 #4",
		"1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0",
		"2754776173206272696c6c69672c20616e642074686520736c6974687920746f"
		"7665730a446964206779726520616e642067696d626c6520696e207468652077"
		"6162653a0a416c6c206d696d737920776572652074686520626f726f676f7665"
		"732c0a416e6420746865206d6f6d65207261746873206f757467726162652e",
		"4541669a7eaaee61e708dc7cbcc5eb62" },
	{ "RFC 8439 A.3 #5",
		"0200000000000000000000000000000000000000000000000000000000000000",
		"ffffffffffffffffffffffffffffffff",
		"03000000000000000000000000000000" },
	{ "RFC 8439 A.3 #6",
		"02000000000000000000000000000000ffffffffffffffffffffffffffffffff",
		"02000000000000000000000000000000",
		"03000000000000000000000000000000" },
	{ "RFC 8439 A.3 #7",
		"0100000000000000000000000000000000000000000000000000000000000000",
		"fffffffffffffffffffffffffffffffff0ffffffffffffffffffffffffffffff"
		"11000000000000000000000000000000",
		"05000000000000000000000000000000" },
	{ "RFC 8439 A.3 #8",
		"0100000000000000000000000000000000000000000000000000000000000000",
		"fffffffffffffffffffffffffffffffffbfefefefefefefefefefefefefefefe"
		"01010101010101010101010101010101",
		"00000000000000000000000000000000" },
	{ "RFC 8439 A.3 #9",
		"0200000000000000000000000000000000000000000000000000000000000000",
		"fdffffffffffffffffffffffffffffff",
		"faffffffffffffffffffffffffffffff" },
	{ "RFC 8439 A.3 #10",
		"0100000000000000040000000000000000000000000000000000000000000000",
		"e33594d7505e43b900000000000000003394d7505e4379cd0100000000000000"
		"0000000000000000000000000000000001000000000000000000000000000000",
		"14000000000000005500000000000000" },
	{ "RFC 8439 A.3 #11",
		"0100000000000000040000000000000000000000000000000000000000000000",
		"e33594d7505e43b900000000000000003394d7505e4379cd0100000000000000"
		"00000000000000000000000000000000",
		"13000000000000000000000000000000" },
};

static void poly1305(uint8_t tag[16], const uint8_t *msg, size_t len,
                     const uint8_t key[32])
{
	fota_poly1305_ctx ctx;

	fota_poly1305_init(&ctx, key);
	fota_poly1305_update(&ctx, msg, len);
	fota_poly1305_final(&ctx, tag);
}

static void test_poly1305(void)
{
	static uint8_t msg[512];
	static const uint8_t zeros[16];
	uint8_t key[32], tag[16], want[16];
	size_t i, len, split;

	for (i = 0; i < sizeof poly1305_vectors / sizeof poly1305_vectors[0]; i++) {
		fota_poly1305_ctx ctx;

		unhex(key, poly1305_vectors[i].key);
		len = unhex(msg, poly1305_vectors[i].msg);
		unhex(want, poly1305_vectors[i].tag);
		poly1305(tag, msg, len, key);
		check(memcmp(tag, want, 16) == 0, "poly1305", poly1305_vectors[i].name);

		/* The same tag from two updates split at every boundary. */
		for (split = 0; split <= len; split++) {
			fota_poly1305_init(&ctx, key);
			fota_poly1305_update(&ctx, msg, split);
			fota_poly1305_update(&ctx, msg + split, len - split);
			fota_poly1305_final(&ctx, tag);
			if (memcmp(tag, want, 16) != 0) {
				break;
			}
		}
		check(split == len + 1, "poly1305 split at every boundary",
		      poly1305_vectors[i].name);

		/* One byte at a time. */
		fota_poly1305_init(&ctx, key);
		for (split = 0; split < len; split++) {
			fota_poly1305_update(&ctx, msg + split, 1);
		}
		fota_poly1305_final(&ctx, tag);
		check(memcmp(tag, want, 16) == 0, "poly1305 byte by byte",
		      poly1305_vectors[i].name);

		/*
		 * A changed message byte changes the tag, unless r = 0 (A.3 #1
		 * and #2), the weak key for which the tag is s whatever the text.
		 */
		if (len > 0 && !fota_ct_equal(key, zeros, 16)) {
			msg[len / 2] ^= 0x01;
			poly1305(tag, msg, len, key);
			check(memcmp(tag, want, 16) != 0, "poly1305 changed message",
			      poly1305_vectors[i].name);
		}
	}
}

/* ------------------------------------------------------------------ */
/* ChaCha20-Poly1305 AEAD                                             */
/* ------------------------------------------------------------------ */

/* RFC 8439 2.8.2. */
static const char aead_ad[] = "50515253c0c1c2c3c4c5c6c7";
static const char aead_nonce[] = "070000004041424344454647";
static const char aead_ct[] =
	"d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
	"3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
	"92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
	"3ff4def08e4b7a9de576d26586cec64b6116";
static const char aead_tag[] = "1ae10b594f09e26a7e902ecbd0600691";

/*
 * Opens a copy of ct with one thing changed and checks that it fails and
 * leaves the buffer exactly as it was: no plaintext byte is released.
 */
static void expect_reject(const uint8_t tag[16], const uint8_t *ct, size_t len,
                          const uint8_t key[32], const uint8_t nonce[12],
                          const uint8_t *ad, size_t ad_len, const char *name)
{
	uint8_t buf[256];
	int rc;

	memcpy(buf, ct, len);
	rc = fota_aead_open(tag, buf, len, key, nonce, ad, ad_len);
	check(rc == -1, "aead rejects", name);
	check(memcmp(buf, ct, len) == 0, "aead releases no plaintext", name);
}

static void test_aead(void)
{
	uint8_t key[32], nonce[12], ad[12], ct[128], tag[16], buf[256];
	size_t len = strlen(sunscreen), i;
	int bad;

	fill_seq(key, 32, 0x80);
	unhex(nonce, aead_nonce);
	unhex(ad, aead_ad);
	unhex(ct, aead_ct);
	unhex(tag, aead_tag);

	memcpy(buf, sunscreen, len);
	fota_aead_seal(buf + len, buf, len, key, nonce, ad, sizeof ad);
	check(eq_hex(buf, len, aead_ct), "aead seal", "RFC 8439 2.8.2 ciphertext");
	check(eq_hex(buf + len, 16, aead_tag), "aead seal",
	      "RFC 8439 2.8.2 tag, written right after the ciphertext");

	check(fota_aead_open(buf + len, buf, len, key, nonce, ad, sizeof ad) == 0,
	      "aead open", "RFC 8439 2.8.2 accepted, tag after the ciphertext");
	check(memcmp(buf, sunscreen, len) == 0, "aead open", "RFC 8439 2.8.2 plaintext");

	/* Every one-bit change of the tag, then of the ciphertext. */
	bad = 0;
	for (i = 0; i < 16 * 8; i++) {
		uint8_t t[16];
		memcpy(t, tag, 16);
		t[i / 8] ^= (uint8_t)(1u << (i % 8));
		memcpy(buf, ct, len);
		bad |= fota_aead_open(t, buf, len, key, nonce, ad, sizeof ad) != -1;
		bad |= memcmp(buf, ct, len) != 0;
	}
	check(!bad, "aead rejects", "each flipped tag bit, buffer untouched");
	bad = 0;
	for (i = 0; i < len * 8; i++) {
		uint8_t c[128];
		memcpy(c, ct, len);
		c[i / 8] ^= (uint8_t)(1u << (i % 8));
		memcpy(buf, c, len);
		bad |= fota_aead_open(tag, buf, len, key, nonce, ad, sizeof ad) != -1;
		bad |= memcmp(buf, c, len) != 0;
	}
	check(!bad, "aead rejects", "each flipped ciphertext bit, buffer untouched");

	/* Any change of AD, lengths, nonce or key; a forged all-zero tag. */
	for (i = 0; i < sizeof ad; i++) {
		ad[i] ^= 0x80;
		expect_reject(tag, ct, len, key, nonce, ad, sizeof ad, "changed AD byte");
		ad[i] ^= 0x80;
	}
	expect_reject(tag, ct, len, key, nonce, ad, sizeof ad - 1, "truncated AD");
	expect_reject(tag, ct, len, key, nonce, NULL, 0, "AD dropped");
	expect_reject(tag, ct, len - 1, key, nonce, ad, sizeof ad, "truncated ciphertext");
	expect_reject(tag, ct, 0, key, nonce, ad, sizeof ad, "ciphertext dropped");
	for (i = 0; i < 12; i++) {
		nonce[i] ^= 1;
		expect_reject(tag, ct, len, key, nonce, ad, sizeof ad, "changed nonce byte");
		nonce[i] ^= 1;
	}
	key[31] ^= 1;
	expect_reject(tag, ct, len, key, nonce, ad, sizeof ad, "changed key");
	key[31] ^= 1;
	memset(buf, 0, 16);
	expect_reject(buf, ct, len, key, nonce, ad, sizeof ad, "all-zero tag");

	/* The unchanged inputs still open: the rejections were for the change. */
	memcpy(buf, ct, len);
	check(fota_aead_open(tag, buf, len, key, nonce, ad, sizeof ad) == 0 &&
	      memcmp(buf, sunscreen, len) == 0, "aead open", "inputs restored");

	/* Empty message and empty AD round-trip, and the tag still binds. */
	fota_aead_seal(tag, NULL, 0, key, nonce, NULL, 0);
	check(fota_aead_open(tag, NULL, 0, key, nonce, NULL, 0) == 0, "aead open",
	      "empty message, empty AD");
	tag[0] ^= 1;
	check(fota_aead_open(tag, NULL, 0, key, nonce, NULL, 0) == -1, "aead rejects",
	      "empty message with a flipped tag");

	/*
	 * The boundary between AD and ciphertext is authenticated: the same
	 * 32 bytes, AD || ciphertext, opened as ciphertext with no AD fail.
	 */
	memcpy(ad, sunscreen, 12);
	memcpy(buf, ad, 12);
	memcpy(buf + 12, sunscreen + 12, 20);
	fota_aead_seal(tag, buf + 12, 20, key, nonce, ad, 12);
	expect_reject(tag, buf, 32, key, nonce, NULL, 0, "AD moved into the ciphertext");
}

/* Frames up to 4 KiB sealed and opened in place, the tag right after them. */
static void test_aead_in_place_lengths(void)
{
	static uint8_t frame[4096 + 16], copy[4096];
	uint8_t key[32], nonce[12];
	size_t len;
	int bad = 0;

	fill_seq(key, 32, 3);
	fill_seq(nonce, 12, 9);
	/* Every length to 160, then a step of 41 that ends on 4096. */
	for (len = 0; len <= 4096; len += (len < 160 ? 1 : 41)) {
		fill_seq(frame, len, (int)len);
		memcpy(copy, frame, len);
		fota_aead_seal(frame + len, frame, len, key, nonce, copy, len % 37);
		bad |= len > 0 && memcmp(frame, copy, len) == 0;
		bad |= fota_aead_open(frame + len, frame, len, key, nonce, copy, len % 37) != 0;
		bad |= memcmp(frame, copy, len) != 0;
	}
	check(!bad, "aead", "seal/open in place for lengths 0..4096");
}

/* ------------------------------------------------------------------ */
/* SHA-256                                                            */
/* ------------------------------------------------------------------ */

static void test_sha256(void)
{
	static const struct { const char *msg, *digest; } v[] = {
		{ "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
		{ "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
		{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
		{ "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
		  "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
		  "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1" },
	};
	static uint8_t msg[300], want[32];
	uint8_t out[32];
	fota_sha256_ctx ctx;
	size_t i, j, len;
	int bad;

	for (i = 0; i < sizeof v / sizeof v[0]; i++) {
		len = strlen(v[i].msg);
		fota_sha256(out, (const uint8_t *)v[i].msg, len);
		check(eq_hex(out, 32, v[i].digest), "sha256", v[i].digest);
		/* Two updates split at every boundary. */
		bad = 0;
		for (j = 0; j <= len; j++) {
			fota_sha256_init(&ctx);
			fota_sha256_update(&ctx, (const uint8_t *)v[i].msg, j);
			fota_sha256_update(&ctx, (const uint8_t *)v[i].msg + j, len - j);
			fota_sha256_final(&ctx, out);
			bad |= !eq_hex(out, 32, v[i].digest);
		}
		check(!bad, "sha256 split at every boundary", v[i].digest);
	}

	/* One million 'a', fed in chunks of 1000 bytes (FIPS 180-2 B.3). */
	memset(msg, 'a', sizeof msg);
	fota_sha256_init(&ctx);
	for (i = 0; i < 1000000; i += 250) {
		fota_sha256_update(&ctx, msg, 250);
	}
	fota_sha256_final(&ctx, out);
	check(eq_hex(out, 32,
		"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
		"sha256", "one million 'a'");

	/*
	 * A multi-block message around the padding edges (55, 56, 63, 64,
	 * 119, 120 ... bytes): every 3-way split, and byte by byte, agree
	 * with one-shot for every length up to 300.
	 */
	fill_seq(msg, sizeof msg, 1);
	bad = 0;
	for (len = 0; len <= sizeof msg; len++) {
		fota_sha256(want, msg, len);
		for (i = 0; i <= len; i += 7) {
			for (j = i; j <= len; j += 13) {
				fota_sha256_init(&ctx);
				fota_sha256_update(&ctx, msg, i);
				fota_sha256_update(&ctx, msg + i, j - i);
				fota_sha256_update(&ctx, msg + j, len - j);
				fota_sha256_final(&ctx, out);
				bad |= memcmp(out, want, 32) != 0;
			}
		}
		fota_sha256_init(&ctx);
		for (i = 0; i < len; i++) {
			fota_sha256_update(&ctx, msg + i, 1);
		}
		fota_sha256_final(&ctx, out);
		bad |= memcmp(out, want, 32) != 0;
	}
	check(!bad, "sha256", "splits of every length 0..300 agree");

	/* Distinct lengths give distinct digests (the length is hashed). */
	fota_sha256(out, msg, 55);
	fota_sha256(want, msg, 56);
	check(memcmp(out, want, 32) != 0, "sha256", "55 and 56 bytes differ");
}

/* ------------------------------------------------------------------ */
/* HMAC-SHA256 and HKDF-SHA256                                        */
/* ------------------------------------------------------------------ */

static void test_hmac(void)
{
	/* RFC 4231 section 4: test cases 1-7 (case 5 truncated to 128 bits). */
	static const struct { const char *name, *key, *data, *mac; } v[] = {
		{ "RFC 4231 case 1", "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
		  "4869205468657265",
		  "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
		{ "RFC 4231 case 2", "4a656665",
		  "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
		  "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
		{ "RFC 4231 case 3", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		  "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
		  "dddddddddddddddddddddddddddddddddddd",
		  "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
		{ "RFC 4231 case 4", "0102030405060708090a0b0c0d0e0f10111213141516171819",
		  "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
		  "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd",
		  "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b" },
		{ "RFC 4231 case 5", "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c",
		  "546573742057697468205472756e636174696f6e",
		  "a3b6167473100ee06e0c796c2955552b" },
		{ "RFC 4231 case 6",
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaaaa",
		  "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a"
		  "65204b6579202d2048617368204b6579204669727374",
		  "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
		{ "RFC 4231 case 7",
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaaaa",
		  "5468697320697320612074657374207573696e672061206c6172676572207468"
		  "616e20626c6f636b2d73697a65206b657920616e642061206c61726765722074"
		  "68616e20626c6f636b2d73697a6520646174612e20546865206b6579206e6565"
		  "647320746f20626520686173686564206265666f7265206265696e6720757365"
		  "642062792074686520484d414320616c676f726974686d2e",
		  "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2" },
	};
	uint8_t key[256], data[256], want[32], out[32];
	size_t i, j, key_len, data_len, mac_len;

	for (i = 0; i < sizeof v / sizeof v[0]; i++) {
		fota_hmac_sha256_ctx ctx;
		int bad = 0;

		key_len = unhex(key, v[i].key);
		data_len = unhex(data, v[i].data);
		mac_len = unhex(want, v[i].mac);
		fota_hmac_sha256(out, key, key_len, data, data_len);
		check(fota_ct_equal(out, want, mac_len), "hmac-sha256", v[i].name);
		for (j = 0; j <= data_len; j++) {
			fota_hmac_sha256_init(&ctx, key, key_len);
			fota_hmac_sha256_update(&ctx, data, j);
			fota_hmac_sha256_update(&ctx, data + j, data_len - j);
			fota_hmac_sha256_final(&ctx, out);
			bad |= !fota_ct_equal(out, want, mac_len);
		}
		check(!bad, "hmac-sha256 split at every boundary", v[i].name);
		key[0] ^= 1;
		fota_hmac_sha256(out, key, key_len, data, data_len);
		check(!fota_ct_equal(out, want, mac_len), "hmac-sha256 changed key", v[i].name);
	}
}

static void test_hkdf(void)
{
	/* RFC 5869 appendix A, the three SHA-256 cases. */
	static const struct {
		const char *name, *ikm, *salt, *info, *prk, *okm;
	} v[] = {
		{ "RFC 5869 A.1", "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
		  "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9",
		  "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
		  "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
		  "34007208d5b887185865" },
		{ "RFC 5869 A.2",
		  "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
		  "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
		  "404142434445464748494a4b4c4d4e4f",
		  "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
		  "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
		  "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
		  "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
		  "d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
		  "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
		  "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
		  "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
		  "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
		  "cc30c58179ec3e87c14c01d5c1f3434f1d87" },
		{ "RFC 5869 A.3 (empty salt and info)",
		  "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "",
		  "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
		  "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
		  "9d201395faa4b61a96c8" },
	};
	static uint8_t okm[FOTA_HKDF_SHA256_MAX_OKM + 1];
	uint8_t ikm[128], salt[128], info[128], prk[32], want[128];
	size_t i, n, ikm_len, salt_len, info_len, okm_len;

	for (i = 0; i < sizeof v / sizeof v[0]; i++) {
		ikm_len = unhex(ikm, v[i].ikm);
		salt_len = unhex(salt, v[i].salt);
		info_len = unhex(info, v[i].info);
		okm_len = unhex(want, v[i].okm);
		fota_hkdf_sha256_extract(prk, salt, salt_len, ikm, ikm_len);
		check(eq_hex(prk, 32, v[i].prk), "hkdf-sha256 extract", v[i].name);
		check(fota_hkdf_sha256_expand(okm, okm_len, prk, info, info_len) == 0 &&
		      memcmp(okm, want, okm_len) == 0, "hkdf-sha256 expand", v[i].name);
		/* Every shorter output is a prefix of the longer one. */
		for (n = 0; n < okm_len; n++) {
			memset(okm, 0xee, okm_len);
			(void)fota_hkdf_sha256_expand(okm, n, prk, info, info_len);
			if (memcmp(okm, want, n) != 0 || okm[n] != 0xee) {
				break;
			}
		}
		check(n == okm_len, "hkdf-sha256 expand every prefix length", v[i].name);
	}

	/* RFC 5869 2.3: L <= 255*HashLen; one more is refused, nothing written. */
	memset(okm, 0xee, sizeof okm);
	check(fota_hkdf_sha256_expand(okm, FOTA_HKDF_SHA256_MAX_OKM + 1, prk, NULL, 0) == -1,
	      "hkdf-sha256 expand", "refuses 255*32+1 bytes");
	check(okm[0] == 0xee && okm[FOTA_HKDF_SHA256_MAX_OKM] == 0xee,
	      "hkdf-sha256 expand", "writes nothing when refusing");
	check(fota_hkdf_sha256_expand(okm, FOTA_HKDF_SHA256_MAX_OKM, prk, NULL, 0) == 0 &&
	      okm[FOTA_HKDF_SHA256_MAX_OKM] == 0xee,
	      "hkdf-sha256 expand", "gives exactly 255*32 bytes");
}

/* ------------------------------------------------------------------ */
/* Constant-time helpers                                              */
/* ------------------------------------------------------------------ */

static void test_ct(void)
{
	uint8_t a[40], b[40];
	size_t i;
	int bad = 0;

	fill_seq(a, sizeof a, 1);
	memcpy(b, a, sizeof b);
	check(fota_ct_equal(a, b, sizeof a) == 1, "ct_equal", "equal buffers");
	check(fota_ct_equal(a, b, 0) == 1, "ct_equal", "empty buffers");
	for (i = 0; i < sizeof a * 8; i++) {
		b[i / 8] ^= (uint8_t)(1u << (i % 8));
		bad |= fota_ct_equal(a, b, sizeof a) != 0;
		b[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	check(!bad, "ct_equal", "each single-bit difference");
	b[39] = (uint8_t)~a[39];
	check(fota_ct_equal(a, b, 39) == 1 && fota_ct_equal(a, b, 40) == 0, "ct_equal",
	      "compares n bytes, no more");

	fota_wipe(a + 1, 38);
	bad = a[0] != 1 || a[39] != 40;
	for (i = 1; i < 39; i++) {
		bad |= a[i] != 0;
	}
	check(!bad, "wipe", "zeroes exactly n bytes");
}

int main(void)
{
	test_ct();
	test_chacha20();
	test_poly1305();
	test_aead();
	test_aead_in_place_lengths();
	test_sha256();
	test_hmac();
	test_hkdf();
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
