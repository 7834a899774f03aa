/*
 * ctgrind.c - checks under valgrind's memcheck that no branch and no
 * memory index depends on a secret (the "ctgrind" technique).
 *
 * Secrets (keys, plaintext, MACs being checked) are marked undefined;
 * memcheck then reports every conditional jump, and every address, that
 * depends on them. Each case counts the reports its call caused: all must
 * be 0, except fota_aead_open's one deliberate branch on its verdict,
 * which is public once returned. Outside valgrind the checks count
 * nothing, so the program refuses to run there (tools run it via make).
 *
 * Ends with "N passed, N failed"; exits non-zero on a failure.
 */
#include <stdio.h>
#include <string.h>

#include <valgrind/memcheck.h>

#include "fota_crypto.h"

static int passed, failed;

#define SECRET(p, n)  VALGRIND_MAKE_MEM_UNDEFINED((p), (n))
#define PUBLIC(p, n)  VALGRIND_MAKE_MEM_DEFINED((p), (n))

/* Runs one case and checks it caused exactly `allowed` memcheck reports. */
#define CASE(allowed, name, body) do {                                  \
		unsigned long before_ = VALGRIND_COUNT_ERRORS;                  \
		body;                                                           \
		unsigned long got_ = VALGRIND_COUNT_ERRORS - before_;           \
		if (got_ == (allowed)) {                                        \
			passed++;                                                   \
		} else {                                                        \
			failed++;                                                   \
			printf("FAIL %s: %lu secret-dependent branches or indexes, want %d\n", \
			       name, got_, (allowed));                              \
		}                                                               \
	} while (0)

int main(void)
{
	static uint8_t buf[1000], key[32], nonce[12], ad[40], tag[16], out[64];
	fota_poly1305_ctx p;
	fota_sha256_ctx s;
	size_t lens[] = { 0, 1, 15, 16, 17, 63, 64, 65, 200, 1000 };
	size_t i;
	int rc;

	if (!RUNNING_ON_VALGRIND) {
		fprintf(stderr, "ctgrind: run me under valgrind (make test does)\n");
		return 2;
	}
	for (i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)i;
	memset(key, 7, sizeof key);

	for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		size_t n = lens[i];

		SECRET(key, sizeof key);
		SECRET(buf, n);
		CASE(0, "chacha20", (void)fota_chacha20(buf, n, key, nonce, 1));
		CASE(0, "poly1305", {
			fota_poly1305_init(&p, key);
			fota_poly1305_update(&p, buf, n);
			fota_poly1305_final(&p, tag);
		});
		CASE(0, "aead_seal", fota_aead_seal(tag, buf, n, key, nonce, ad, n % 40));
		/* Open a valid frame: the verdict is the only branch on secrets. */
		PUBLIC(tag, sizeof tag);
		PUBLIC(buf, n);
		SECRET(key, sizeof key);
		CASE(1, "aead_open (valid)", rc = fota_aead_open(tag, buf, n, key, nonce, ad, n % 40));
		PUBLIC(&rc, sizeof rc);
		if (rc != 0) {
			failed++;
			printf("FAIL aead_open rejected a valid frame\n");
		}
		/* And a forged one: the same single branch, then nothing. */
		fota_aead_seal(tag, buf, n, key, nonce, ad, n % 40);
		PUBLIC(tag, sizeof tag);
		PUBLIC(buf, n);
		tag[0] ^= 1;
		CASE(1, "aead_open (forged)", rc = fota_aead_open(tag, buf, n, key, nonce, ad, n % 40));

		SECRET(buf, n);
		CASE(0, "sha256", {
			fota_sha256_init(&s);
			fota_sha256_update(&s, buf, n);
			fota_sha256_final(&s, out);
		});
		CASE(0, "hmac_sha256", fota_hmac_sha256(out, buf, n, ad, sizeof ad));
		CASE(0, "hkdf_sha256", {
			fota_hkdf_sha256_extract(out, ad, sizeof ad, buf, n);
			(void)fota_hkdf_sha256_expand(buf, n, out, ad, sizeof ad);
		});
		SECRET(out, sizeof out);
		CASE(0, "ct_equal", rc = fota_ct_equal(out, out + 32, 32));
		CASE(0, "wipe", fota_wipe(out, sizeof out));
	}

	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
