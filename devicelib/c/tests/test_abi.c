/*
 * test_abi.c - fota_init refuses an application compiled with other
 * settings than the library (FOTA_ERR_ABI) instead of writing past its
 * struct fota_ctx.
 *
 * `make test` compiles this file several times: once as the program
 * (ABI_CALLER undefined), with the library's own settings, and once per
 * mismatched caller with -DABI_CALLER=<name> and other settings
 * (FOTA_MAX_PAYLOAD smaller or larger, FOTA_WITH_ED25519,
 * FOTA_SECTOR_SIZE). Each caller allocates its context with exactly its
 * own sizeof on the heap, so under AddressSanitizer a library that
 * cleared or wrote its larger context there would abort the test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fota.h"

/* Callbacks that fail the test if the library ever calls them. */
static int never_called;

static int cb_random(void *arg, uint8_t *buf, size_t len)
{
	(void)arg; (void)buf; (void)len;
	never_called++;
	return -1;
}
static int cb_erase(void *arg, uint32_t sector)
{
	(void)arg; (void)sector;
	never_called++;
	return -1;
}
static int cb_write(void *arg, uint32_t off, const uint8_t *d, size_t n)
{
	(void)arg; (void)off; (void)d; (void)n;
	never_called++;
	return -1;
}
static int cb_read(void *arg, uint32_t off, uint8_t *b, size_t n)
{
	(void)arg; (void)off; (void)b; (void)n;
	never_called++;
	return -1;
}
static int cb_sync(void *arg)
{
	(void)arg;
	never_called++;
	return -1;
}
static int cb_load(void *arg, struct fota_state *st)
{
	(void)arg;
	memset(st, 0, sizeof *st);
	never_called++;
	return 0;
}
static int cb_save(void *arg, const struct fota_state *st)
{
	(void)arg; (void)st;
	never_called++;
	return 0;
}

static const uint8_t psk[FOTA_PSK_SIZE];

/*
 * One session as the caller compiled here sees it: fota_init's verdict,
 * and with want FOTA_ERR_ABI, that every later call reports the ended
 * session without touching the platform. 0 if all is as expected.
 */
static int session(const char *who, enum fota_err want)
{
	struct fota_config *cfg = calloc(1, sizeof *cfg);
	struct fota_ctx *ctx = malloc(sizeof *ctx);   /* exactly this build's size */
	uint8_t byte = 0;
	size_t used = 1, n;
	enum fota_err got;
	int bad = 0;

	if (cfg == NULL || ctx == NULL) {
		fprintf(stderr, "%s: out of memory\n", who);
		exit(2);
	}
	cfg->device_id = "dev-1";
	cfg->device_class = "esp8266-4m";
	cfg->psk = psk;
	cfg->slot_size = 16 * FOTA_SECTOR_SIZE;
	cfg->random = cb_random;
	cfg->flash_erase = cb_erase;
	cfg->flash_write = cb_write;
	cfg->flash_read = cb_read;
	cfg->flash_sync = cb_sync;
	cfg->state_load = cb_load;
	cfg->state_save = cb_save;
	got = fota_init(ctx, cfg);
	if (got != want) {
		fprintf(stderr, "%s: fota_init returned %s, want %s\n", who, fota_err_name(got),
		        fota_err_name(want));
		bad = 1;
	} else if (want == FOTA_ERR_ABI) {
		if (fota_start(ctx) != FOTA_EV_ERROR || fota_error(ctx) != FOTA_ERR_ABI ||
		    fota_feed(ctx, &byte, 1, &used) != FOTA_EV_ERROR || used != 0 ||
		    fota_erase_ahead(ctx) != FOTA_EV_NEED_MORE || fota_decline(ctx) != FOTA_ERR_MISUSE ||
		    fota_close(ctx) != FOTA_EV_ERROR || fota_error(ctx) != FOTA_ERR_ABI) {
			fprintf(stderr, "%s: the refused session did not stay ended with abi_mismatch\n", who);
			bad = 1;
		}
		(void)fota_tx(ctx, &n);
		if (never_called != 0) {
			fprintf(stderr, "%s: a platform callback ran after FOTA_ERR_ABI\n", who);
			bad = 1;
		}
	}
	free(ctx);
	free(cfg);
	return bad;
}

#ifdef ABI_CALLER
#define STR_(x) #x
#define STR(x) STR_(x)
int ABI_CALLER(void);

int ABI_CALLER(void)
{
	return session(STR(ABI_CALLER), FOTA_ERR_ABI);
}
#else
int abi_small_payload(void);
int abi_large_payload(void);
int abi_ed25519(void);
int abi_sector(void);

int main(void)
{
	int bad = 0;

	/* The same settings as the library: accepted. */
	bad |= session("same settings", FOTA_OK);
	never_called = 0;
	bad |= abi_small_payload();
	bad |= abi_large_payload();
	bad |= abi_ed25519();
	bad |= abi_sector();
	if (strcmp(fota_err_name(FOTA_ERR_ABI), "abi_mismatch") != 0) {
		fprintf(stderr, "fota_err_name(FOTA_ERR_ABI) = %s\n", fota_err_name(FOTA_ERR_ABI));
		bad = 1;
	}
	if (bad) {
		return 1;
	}
	printf("test_abi: ok (payload smaller and larger, ed25519, sector size refused)\n");
	return 0;
}
#endif
