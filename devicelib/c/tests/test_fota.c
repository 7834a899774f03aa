/*
 * test_fota.c - white-box tests of the protocol core, for what the Go
 * tests cannot reach through the wire: record counters at their limit,
 * the frame-length rules of every state, word alignment and lazy erases
 * with chunks of any size, secrets wiped at the end, calls out of order,
 * and the order of durable writes before the Hello. It includes
 * src/fota.c to reach its static functions. Whole sessions, byte for
 * byte, are replayed by ../protocol_test.go and ../device_test.go.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../src/fota.c"

#include "check.h"

/* ---- an in-memory platform ---- */

#define SLOT (64u * 1024u)

static uint8_t slot[SLOT];
static struct fota_state stored;
static unsigned erases, writes, saves;
static uint32_t boot_seen_by_rng;

static int p_random(void *arg, uint8_t *b, size_t n)
{
	(void)arg;
	boot_seen_by_rng = stored.boot_counter;   /* what is durable when Nd is made */
	memset(b, 0xa5, n);
	return 0;
}

static int p_erase(void *arg, uint32_t sector)
{
	(void)arg;
	if (sector >= SLOT / FOTA_SECTOR_SIZE) return -1;
	memset(slot + sector * FOTA_SECTOR_SIZE, 0xff, FOTA_SECTOR_SIZE);
	erases++;
	return 0;
}

static int p_write(void *arg, uint32_t off, const uint8_t *d, size_t n)
{
	size_t i;

	(void)arg;
	if (off % 4 || n % 4 || ((size_t)d & 3) || off + n > SLOT) return -1;
	for (i = 0; i < n; i++) {
		if (slot[off + i] != 0xff) return -1;
	}
	memcpy(slot + off, d, n);
	writes++;
	return 0;
}

static int p_read(void *arg, uint32_t off, uint8_t *b, size_t n)
{
	(void)arg;
	if (off % 4 || n % 4 || ((size_t)b & 3) || off + n > SLOT) return -1;
	memcpy(b, slot + off, n);
	return 0;
}

static int p_sync(void *arg)
{
	(void)arg;
	return 0;
}

static int p_load(void *arg, struct fota_state *st)
{
	(void)arg;
	*st = stored;
	return 0;
}

static int p_save(void *arg, const struct fota_state *st)
{
	(void)arg;
	stored = *st;
	saves++;
	return 0;
}

static const uint8_t psk[32] = { 1, 2, 3 };

static struct fota_config config(void)
{
	struct fota_config c;

	memset(&c, 0, sizeof c);
	c.device_id = "dev-1";
	c.device_class = "esp8266-4m";
	c.psk = psk;
	c.slot_size = SLOT;
	c.random = p_random;
	c.flash_erase = p_erase;
	c.flash_write = p_write;
	c.flash_read = p_read;
	c.flash_sync = p_sync;
	c.state_load = p_load;
	c.state_save = p_save;
	return c;
}

/* ---- tests ---- */

static void test_names(void)
{
	static const struct {
		const char *s;
		int ok;
	} cases[] = {
		{ "a", 1 }, { "Z9", 1 }, { "esp8266-4m", 1 }, { "a.b_c-d", 1 },
		{ "0123456789abcdef", 1 }, { "0123456789abcdefg", 0 }, { "", 0 },
		{ ".a", 0 }, { "-a", 0 }, { "_a", 0 }, { "a b", 0 }, { "a/b", 0 },
		{ "a@b", 0 }, { "a[", 0 }, { "a`", 0 }, { "\xc3\xa9t\xc3\xa9", 0 },
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *s = cases[i].s;

		CHECK(valid_name((const uint8_t *)s, name_len(s)) == cases[i].ok, s);
	}
}

static void test_counters(void)
{
	struct fota_dir d;
	uint8_t nonce[12];
	int i;

	memset(&d, 0, sizeof d);
	for (i = 0; i < 12; i++) d.key_iv[32 + i] = (uint8_t)(0x10 + i);
	d.counter = 0x01020304;
	CHECK(make_nonce(&d, nonce) == FOTA_OK, "nonce");
	/* iv XOR (0^32 || counter u64): only the last four bytes change. */
	CHECK(nonce[0] == 0x10 && nonce[7] == 0x17 && nonce[8] == (0x18 ^ 0x01) &&
	      nonce[11] == (0x1b ^ 0x04), "nonce = iv XOR counter");

	/* 2^32 - 1 is the last counter a direction may use (5.3). */
	d.counter = UINT32_MAX - 1;
	advance(&d);
	CHECK(d.counter == UINT32_MAX && !d.exhausted, "counter 2^32 - 1 is still usable");
	CHECK(make_nonce(&d, nonce) == FOTA_OK, "nonce for 2^32 - 1");
	advance(&d);
	CHECK(d.exhausted, "the direction is spent after 2^32 - 1");
	CHECK(make_nonce(&d, nonce) == FOTA_ERR_COUNTER_EXHAUSTED, "no nonce past 2^32 - 1");
}

static void test_counter_exhausted_ends_session(void)
{
	static struct fota_ctx ctx;
	struct fota_config c = config();
	size_t used;

	fota_init(&ctx, &c);
	ctx.state = S_RECEIVE;
	ctx.g2d.exhausted = 1;
	ctx.d2g.exhausted = 1;   /* not even an Alert can be sealed */
	ctx.m.size = 100;
	ctx.m.chunk = 64;
	CHECK(fota_feed(&ctx, (const uint8_t *)"\x04\x00\x50", 3, &used) == FOTA_EV_NEED_MORE,
	      "a header alone needs more");
	{
		uint8_t body[0x50];

		memset(body, 0, sizeof body);
		CHECK(fota_feed(&ctx, body, sizeof body, &used) == FOTA_EV_ERROR &&
		      fota_error(&ctx) == FOTA_ERR_COUNTER_EXHAUSTED, "a spent counter ends the session");
	}
}

static void test_check_header(void)
{
	static struct fota_ctx ctx;
	struct fota_config c = config();
	static const struct {
		uint8_t state, type;
		uint32_t pos, len;
		enum fota_err want;
	} cases[] = {
		/* Waiting for the Offer: Offer up to 174 bytes, Reject exactly 1. */
		{ S_WAIT_OFFER, T_OFFER, 0, 174, FOTA_OK },
		{ S_WAIT_OFFER, T_OFFER, 0, 175, FOTA_ERR_FRAME_TOO_LARGE },
		{ S_WAIT_OFFER, T_OFFER, 0, 0xffff, FOTA_ERR_FRAME_TOO_LARGE },
		{ S_WAIT_OFFER, T_REJECT, 0, 1, FOTA_OK },
		{ S_WAIT_OFFER, T_REJECT, 0, 2, FOTA_ERR_FRAME_TOO_LARGE },
		{ S_WAIT_OFFER, T_REJECT, 0, 0, FOTA_ERR_MALFORMED },
		{ S_WAIT_OFFER, T_DATA, 0, 80, FOTA_ERR_UNEXPECTED_MESSAGE },
		{ S_WAIT_OFFER, T_ALERT, 0, 17, FOTA_ERR_UNEXPECTED_MESSAGE },
		{ S_WAIT_OFFER, T_HELLO, 0, 41, FOTA_ERR_UNEXPECTED_MESSAGE },
		{ S_WAIT_OFFER, 0x00, 0, 1, FOTA_ERR_UNEXPECTED_MESSAGE },
		{ S_WAIT_OFFER, 0xff, 0, 1, FOTA_ERR_UNEXPECTED_MESSAGE },
		/* Streaming 150 bytes in chunks of 64: Data, Data, Final of 22. */
		{ S_RECEIVE, T_DATA, 0, 80, FOTA_OK },
		{ S_RECEIVE, T_DATA, 0, 81, FOTA_ERR_FRAME_TOO_LARGE },
		{ S_RECEIVE, T_DATA, 0, 79, FOTA_ERR_MALFORMED },
		{ S_RECEIVE, T_FINAL, 0, 80, FOTA_ERR_UNEXPECTED_MESSAGE },
		{ S_RECEIVE, T_DATA, 64, 80, FOTA_OK },
		{ S_RECEIVE, T_FINAL, 128, 38, FOTA_OK },
		{ S_RECEIVE, T_FINAL, 128, 39, FOTA_ERR_FRAME_TOO_LARGE },
		{ S_RECEIVE, T_FINAL, 128, 16, FOTA_ERR_MALFORMED },
		{ S_RECEIVE, T_DATA, 128, 80, FOTA_ERR_UNEXPECTED_MESSAGE },
		{ S_RECEIVE, T_FINAL, 150, 16, FOTA_OK },   /* resumed at the end: an empty Final */
		{ S_RECEIVE, T_ALERT, 64, 17, FOTA_OK },
		{ S_RECEIVE, T_ALERT, 64, 18, FOTA_ERR_FRAME_TOO_LARGE },
		{ S_RECEIVE, T_ALERT, 64, 16, FOTA_ERR_MALFORMED },
		{ S_RECEIVE, T_OFFER, 64, 100, FOTA_ERR_UNEXPECTED_MESSAGE },
		{ S_RECEIVE, T_REJECT, 64, 1, FOTA_ERR_UNEXPECTED_MESSAGE },
		{ S_RECEIVE, T_ACK, 64, 20, FOTA_ERR_UNEXPECTED_MESSAGE },
	};
	size_t i;

	fota_init(&ctx, &c);
	ctx.m.size = 150;
	ctx.m.chunk = 64;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char what[64];

		ctx.state = cases[i].state;
		ctx.pos = cases[i].pos;
		ctx.ad[0] = cases[i].type;
		put16(ctx.ad + 1, cases[i].len);
		snprintf(what, sizeof what, "header case %u", (unsigned)i);
		CHECK(check_header(&ctx) == cases[i].want, what);
	}
}

/* Streams an image through store() in frames of chunk bytes, each
 * placed at the start of the body buffer as fota_feed leaves it. */
static enum fota_err stream(struct fota_ctx *ctx, const uint8_t *img, uint32_t size, uint32_t chunk)
{
	enum fota_err err = FOTA_OK;
	uint32_t off;

	for (off = ctx->pos; off < size && err == FOTA_OK; off += chunk) {
		uint32_t n = size - off < chunk ? size - off : chunk;

		memcpy(ctx->body.b, img + off, n);
		err = store(ctx, n);
	}
	return err;
}

static void test_store_any_chunk(void)
{
	static struct fota_ctx ctx;
	static uint8_t img[3 * FOTA_SECTOR_SIZE + 123];
	struct fota_config c = config();
	uint32_t chunks[] = { 64, 65, 66, 67, 100, 64 + 3 * 4 + 1 };

	c.ack_every = FOTA_SECTOR_SIZE;   /* a durable point per sector */
	size_t i, k;

	for (i = 0; i < sizeof img; i++) img[i] = (uint8_t)(i * 31 + 7);
	for (k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
		char what[64];

		snprintf(what, sizeof what, "chunk %u", (unsigned)chunks[k]);
		memset(slot, 0x00, sizeof slot);   /* anything not erased first fails */
		memset(&stored, 0, sizeof stored);
		erases = writes = saves = 0;
		fota_init(&ctx, &c);
		ctx.state = S_RECEIVE;
		ctx.m.size = sizeof img;
		ctx.m.chunk = (uint16_t)chunks[k];
		ctx.st.resume.size = sizeof img;
		ctx.next_commit = FOTA_SECTOR_SIZE;
		CHECK(stream(&ctx, img, sizeof img, chunks[k]) == FOTA_OK, what);
		CHECK(on_final(&ctx) == FOTA_EV_SEND, what);
		CHECK(memcmp(slot, img, sizeof img) == 0, what);
		/* The last word is padded with erased bytes. */
		CHECK(slot[sizeof img] == 0xff, what);
		/* Each sector erased once, right before its first write. */
		CHECK(erases == 4, what);
		/* Durable at every sector boundary, then at the end. */
		CHECK(saves == 4 && stored.durable == sizeof img, what);
	}
}

static void test_wiped_at_end(void)
{
	static struct fota_ctx ctx;
	struct fota_config c = config();
	const uint8_t *p = (const uint8_t *)&ctx.g2d;
	size_t i, n = sizeof ctx - (size_t)(p - (const uint8_t *)&ctx);
	int clean = 1;

	fota_init(&ctx, &c);
	ctx.state = S_RECEIVE;
	memset(&ctx.g2d, 0x5a, sizeof ctx.g2d);
	memset(&ctx.d2g, 0x5a, sizeof ctx.d2g);
	memset(&ctx.w, 0x5a, sizeof ctx.w);
	memset(&ctx.body, 0x5a, sizeof ctx.body);
	CHECK(fota_close(&ctx) == FOTA_EV_ERROR && fota_error(&ctx) == FOTA_ERR_TRUNCATED,
	      "close mid-stream is truncated");
	/* Keys, key schedule, AEAD state and plaintext: everything from g2d on. */
	for (i = 0; i < n; i++) clean &= p[i] == 0;
	CHECK(clean, "keys and plaintext wiped when the session ends");
	CHECK(fota_close(&ctx) == FOTA_EV_ERROR, "close twice");
}

static void test_misuse(void)
{
	static struct fota_ctx ctx;
	struct fota_config c = config();
	size_t used = 99;

	fota_init(&ctx, &c);
	CHECK(fota_decline(&ctx) == FOTA_ERR_MISUSE, "decline without an offer");
	CHECK(fota_feed(&ctx, NULL, 0, &used) == FOTA_EV_ERROR && used == 0 &&
	      fota_error(&ctx) == FOTA_ERR_MISUSE, "feed before start");
	CHECK(fota_start(&ctx) == FOTA_EV_ERROR, "start after the session ended");

	memset(&stored, 0, sizeof stored);
	fota_init(&ctx, &c);
	CHECK(fota_start(&ctx) == FOTA_EV_SEND, "start");
	CHECK(fota_start(&ctx) == FOTA_EV_ERROR && fota_error(&ctx) == FOTA_ERR_MISUSE, "start twice");
	CHECK(fota_feed(&ctx, (const uint8_t *)"x", 1, &used) == FOTA_EV_ERROR && used == 0,
	      "input after the end is not consumed");

	c.slot_size = 0;
	CHECK(fota_init(&ctx, &c) == FOTA_ERR_CONFIG, "slot of 0");
	CHECK(fota_start(&ctx) == FOTA_EV_ERROR && fota_error(&ctx) == FOTA_ERR_CONFIG,
	      "start after a refused init");
}

static void test_hello(void)
{
	static struct fota_ctx ctx;
	struct fota_config c = config();
	const uint8_t *tx;
	size_t n;

	memset(&stored, 0, sizeof stored);
	stored.boot_counter = 41;
	stored.running.seq = 0x01020304;
	c.max_payload = 64;
	fota_init(&ctx, &c);
	CHECK(fota_start(&ctx) == FOTA_EV_SEND, "start");
	/* 9.2: the counter was durable before the random half of Nd was drawn. */
	CHECK(boot_seen_by_rng == 42 && stored.boot_counter == 42, "boot counter saved before the Hello");
	tx = fota_tx(&ctx, &n);
	CHECK(n == 3 + 41 + 5, "Hello length");
	CHECK(tx[0] == 0x01 && tx[1] == 0 && tx[2] == 46 && tx[3] == 1 && tx[4] == 1 && tx[5] == 5 &&
	      memcmp(tx + 6, "dev-1", 5) == 0, "Hello header, version, suite, ID");
	CHECK(tx[11] == 0xa5 && tx[22] == 0xa5 && fota_load32_be(tx + 23) == 42,
	      "Nd = random [12] || boot_counter");
	CHECK(fota_load32_be(tx + 27) == 0x01020304 && get16(tx + 31) == 64,
	      "running sequence and max payload");

	stored.boot_counter = UINT32_MAX;
	fota_init(&ctx, &c);
	CHECK(fota_start(&ctx) == FOTA_EV_ERROR && fota_error(&ctx) == FOTA_ERR_COUNTER_EXHAUSTED,
	      "no Hello once the boot counter is spent");
}

int main(void)
{
	test_names();
	test_counters();
	test_counter_exhausted_ends_session();
	test_check_header();
	test_store_any_chunk();
	test_wiped_at_end();
	test_misuse();
	test_hello();
	return check_summary();
}
