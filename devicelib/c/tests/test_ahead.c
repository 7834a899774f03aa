/*
 * test_ahead.c - white-box tests of fota_erase_ahead(): when it erases,
 * what (the next sector the image needs, never one at or below durable
 * data, never past the image), that the writes then need no erase of
 * their own, and how a failed erase ends the session. It includes
 * src/fota.c to set up a streaming context directly. Power cuts during
 * erase-ahead, with real sessions, are ../powerfail_test.go's.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../src/fota.c"

#include "check.h"

#define SECTORS 8u

static uint8_t slot[SECTORS * FOTA_SECTOR_SIZE];
static uint32_t erased_log[64];
static unsigned erases, fail_erase;
static struct fota_state stored;
static const uint8_t psk[FOTA_PSK_SIZE];

static int p_random(void *arg, uint8_t *b, size_t n)
{
	(void)arg;
	memset(b, 1, n);
	return 0;
}

static int p_erase(void *arg, uint32_t sector)
{
	(void)arg;
	if (fail_erase || sector >= SECTORS) return -1;
	memset(slot + sector * FOTA_SECTOR_SIZE, 0xff, FOTA_SECTOR_SIZE);
	if (erases < sizeof erased_log / sizeof erased_log[0]) erased_log[erases] = sector;
	erases++;
	return 0;
}

static int p_write(void *arg, uint32_t off, const uint8_t *d, size_t n)
{
	size_t i;

	(void)arg;
	if (off % 4 || n % 4 || off + n > sizeof slot) return -1;
	for (i = 0; i < n; i++) {
		if (slot[off + i] != 0xff) return -1;
	}
	memcpy(slot + off, d, n);
	return 0;
}

static int p_read(void *arg, uint32_t off, uint8_t *b, size_t n)
{
	(void)arg;
	memcpy(b, slot + off, n);
	return 0;
}

static int p_sync(void *arg) { (void)arg; return 0; }
static int p_load(void *arg, struct fota_state *st) { (void)arg; *st = stored; return 0; }
static int p_save(void *arg, const struct fota_state *st) { (void)arg; stored = *st; return 0; }

static struct fota_config cfg;
static struct fota_ctx ctx;

/* A context streaming an image of size bytes, resumed at the sector boundary start. */
static void streaming(uint32_t size, uint32_t start)
{
	memset(&cfg, 0, sizeof cfg);
	cfg.device_id = "dev-1";
	cfg.device_class = "esp8266-4m";
	cfg.psk = psk;
	cfg.slot_size = sizeof slot;
	cfg.random = p_random;
	cfg.flash_erase = p_erase;
	cfg.flash_write = p_write;
	cfg.flash_read = p_read;
	cfg.flash_sync = p_sync;
	cfg.state_load = p_load;
	cfg.state_save = p_save;
	CHECK(fota_init(&ctx, &cfg) == FOTA_OK, "init");
	memset(slot, 0, sizeof slot);   /* not erased: every write needs its erase first */
	ctx.state = S_RECEIVE;
	ctx.m.size = size;
	ctx.m.chunk = 64;
	ctx.start = ctx.pos = ctx.written = ctx.durable = ctx.erased_to = start;
	ctx.next_commit = start + FOTA_SECTOR_SIZE;
	erases = 0;
	fail_erase = 0;
}

static void test_erases_next_sectors_up_to_the_image_end(void)
{
	unsigned i;

	streaming(3 * FOTA_SECTOR_SIZE + 5, FOTA_SECTOR_SIZE);
	for (i = 0; i < 10 && fota_erase_ahead(&ctx) == FOTA_EV_PROGRESS; i++) {
	}
	CHECK(erases == 3 && erased_log[0] == 1 && erased_log[1] == 2 && erased_log[2] == 3,
	      "sectors 1, 2, 3 erased in order: from the resume point to the image's last sector");
	CHECK(ctx.erased_to == 4 * FOTA_SECTOR_SIZE, "erased_to at the image's end, rounded up");
	CHECK(fota_erase_ahead(&ctx) == FOTA_EV_NEED_MORE && erases == 3, "nothing past the image");
	CHECK(fota_error(&ctx) == FOTA_OK && ctx.state == S_RECEIVE, "the session goes on");
}

static void test_writes_use_the_erased_sectors(void)
{
	static uint8_t data[FOTA_SECTOR_SIZE];

	streaming(2 * FOTA_SECTOR_SIZE, 0);
	CHECK(fota_erase_ahead(&ctx) == FOTA_EV_PROGRESS &&
	      fota_erase_ahead(&ctx) == FOTA_EV_PROGRESS && erases == 2, "both sectors erased ahead");
	memset(data, 0x3c, sizeof data);
	CHECK(program(&ctx, data, sizeof data) == FOTA_OK &&
	      program(&ctx, data, sizeof data) == FOTA_OK, "the image's words program");
	CHECK(erases == 2, "no sector erased twice");
	CHECK(slot[0] == 0x3c && slot[2 * FOTA_SECTOR_SIZE - 1] == 0x3c, "the bytes landed");
}

static void test_only_while_streaming(void)
{
	streaming(2 * FOTA_SECTOR_SIZE, 0);
	ctx.state = S_OFFERED;
	CHECK(fota_erase_ahead(&ctx) == FOTA_EV_NEED_MORE, "not before the Accept");
	ctx.state = S_VERIFY;
	CHECK(fota_erase_ahead(&ctx) == FOTA_EV_NEED_MORE, "not after the Final");
	ctx.state = S_RECEIVE;
	ctx.next_ev = FOTA_EV_PROGRESS;
	CHECK(fota_erase_ahead(&ctx) == FOTA_EV_NEED_MORE, "not while an event is owed");
	ctx.next_ev = 0;
	ctx.state = S_END;
	CHECK(fota_erase_ahead(&ctx) == FOTA_EV_NEED_MORE, "not after the end");
	ctx.state = S_IDLE;
	CHECK(fota_erase_ahead(&ctx) == FOTA_EV_NEED_MORE, "not before the start");
	CHECK(erases == 0, "no erase in any of them");
}

static void test_never_below_durable(void)
{
	/* A state that would erase recorded bytes is a bug: refused, not erased. */
	streaming(4 * FOTA_SECTOR_SIZE, 2 * FOTA_SECTOR_SIZE);
	ctx.erased_to = FOTA_SECTOR_SIZE;
	CHECK(fota_erase_ahead(&ctx) == FOTA_EV_SEND && ctx.tx[0] == T_ALERT, "an Alert instead");
	CHECK(erases == 0, "the durable sector is intact");
}

static void test_failed_erase_ends_with_flash_error(void)
{
	size_t used;

	streaming(4 * FOTA_SECTOR_SIZE, 0);
	fail_erase = 1;
	CHECK(fota_erase_ahead(&ctx) == FOTA_EV_SEND && ctx.tx[0] == T_ALERT &&
	      ctx.tx_len == FOTA_HEADER_SIZE + 1 + FOTA_TAG_SIZE, "an Alert (code and tag) to send");
	CHECK(ctx.erased_to == 0, "erased_to does not move past a failed erase");
	CHECK(fota_feed(&ctx, NULL, 0, &used) == FOTA_EV_ERROR && fota_error(&ctx) == FOTA_ERR_FLASH,
	      "then the session ends with flash_error");
	CHECK(fota_erase_ahead(&ctx) == FOTA_EV_NEED_MORE, "nothing after the end");
}

int main(void)
{
	test_erases_next_sectors_up_to_the_image_end();
	test_writes_use_the_erased_sectors();
	test_only_while_streaming();
	test_never_below_durable();
	test_failed_erase_ends_with_flash_error();
	return check_summary();
}
