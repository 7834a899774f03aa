/*
 * fota_ct.c - constant-time comparison and secure zeroing.
 */
#include <string.h>

#include "fota_crypto.h"

int fota_ct_equal(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a;
	const uint8_t *y = b;
	uint32_t diff = 0;
	size_t i;

	/* Visit every byte whatever we find: no early exit. */
	for (i = 0; i < n; i++) {
		diff |= (uint32_t)(x[i] ^ y[i]);
	}
	/*
	 * diff is in 0..255. diff - 1 wraps to all ones only for diff == 0,
	 * so bit 8 of it is the answer, without a data-dependent branch.
	 */
	return (int)(((diff - 1) >> 8) & 1);
}

/*
 * memset called through a volatile function pointer: the compiler must
 * read the pointer at run time, so it cannot know the call is memset and
 * drop it as a dead store (as it may for a memset before a return). The
 * C library's memset clears a word at a time, where a volatile byte loop
 * would cost three instructions a byte.
 */
static void *(*const volatile memset_v)(void *, int, size_t) = memset;

void fota_wipe(void *p, size_t n)
{
	(void)memset_v(p, 0, n);
}
