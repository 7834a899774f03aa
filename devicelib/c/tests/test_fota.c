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

static int read_fails;   /* the next flash_read fails */

static int p_read(void *arg, uint32_t off, uint8_t *b, size_t n)
{
	(void)arg;
	if (read_fails) return -1;
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

		CHECK((config_name(s) != 0) == cases[i].ok, s);
	}
}

/* Seals "hello" as a d2g record through record() at ctx->d2g's counter. */
static enum fota_err seal_hello(struct fota_ctx *ctx)
{
	memcpy(ctx->body.b, "hello", 5);
	return record(ctx, &ctx->d2g, ctx->body.b, 5, FOTA_HEADER_SIZE);
}

static void test_counters(void)
{
	static struct fota_ctx ctx;
	struct fota_config c = config();
	uint8_t want[5 + FOTA_TAG_SIZE], nonce[12];
	int i;

	fota_init(&ctx, &c);
	for (i = 0; i < 44; i++) ctx.d2g.key_iv[i] = (uint8_t)(0x10 + i);
	memcpy(ctx.ad, "\x06\x00\x15", FOTA_HEADER_SIZE);
	ctx.d2g.counter = 0x01020304;
	/* iv XOR (0^32 || counter u64): only the last four bytes change. */
	memcpy(nonce, ctx.d2g.key_iv + 32, sizeof nonce);
	nonce[8] ^= 0x01;
	nonce[9] ^= 0x02;
	nonce[10] ^= 0x03;
	nonce[11] ^= 0x04;
	memcpy(want, "hello", 5);
	fota_aead_seal(want + 5, want, 5, ctx.d2g.key_iv, nonce, ctx.ad, FOTA_HEADER_SIZE);
	CHECK(seal_hello(&ctx) == FOTA_OK && memcmp(ctx.body.b, want, sizeof want) == 0,
	      "nonce = iv XOR counter");
	CHECK(ctx.d2g.counter == 0x01020305, "the counter moves once sealed");

	/* 2^32 - 1 is the last counter a direction may use (5.3). */
	ctx.d2g.counter = UINT32_MAX - 1;
	CHECK(seal_hello(&ctx) == FOTA_OK, "record at 2^32 - 2");
	CHECK(ctx.d2g.counter == UINT32_MAX && !ctx.d2g.exhausted, "counter 2^32 - 1 is still usable");
	CHECK(seal_hello(&ctx) == FOTA_OK, "record at 2^32 - 1");
	CHECK(ctx.d2g.exhausted, "the direction is spent after 2^32 - 1");
	CHECK(seal_hello(&ctx) == FOTA_ERR_COUNTER_EXHAUSTED, "no record past 2^32 - 1");
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
 * placed at the start of the body buffer as fota_feed leaves it, with
 * its 16-byte tag after it (store pads the image's last word over it). */
static enum fota_err stream(struct fota_ctx *ctx, const uint8_t *img, uint32_t size, uint32_t chunk)
{
	enum fota_err err = FOTA_OK;
	uint32_t off;

	for (off = ctx->pos; off < size && err == FOTA_OK; off += chunk) {
		uint32_t n = size - off < chunk ? size - off : chunk;

		memcpy(ctx->body.b, img + off, n);
		memset(ctx->body.b + n, 0x5a, FOTA_TAG_SIZE);
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
		/* The last frame made the whole image durable: its Ack is owed. */
		CHECK(ctx.durable == sizeof img && ctx.ack_due && ctx.tail_n == 0, what);
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
	CHECK(n == 3 + 53 + 5 && n <= FOTA_TX_SIZE, "Hello length");
	CHECK(tx[0] == 0x01 && tx[1] == 0 && tx[2] == 58 && tx[3] == 1 && tx[4] == 1 && tx[5] == 5 &&
	      memcmp(tx + 6, "dev-1", 5) == 0, "Hello header, version, suite, ID");
	CHECK(tx[11] == 0xa5 && tx[22] == 0xa5 && fota_load32_be(tx + 23) == 42,
	      "Nd = random [12] || boot_counter");
	CHECK(fota_load32_be(tx + 27) == 0x01020304 && get16(tx + 31) == 64,
	      "running sequence and max payload");
	CHECK(fota_load32_be(tx + 33) == 0 && fota_load32_be(tx + 37) == 0 &&
	      fota_load32_be(tx + 41) == 0, "no resume point: offset 0 and a zero ID");

	stored.boot_counter = UINT32_MAX;
	fota_init(&ctx, &c);
	CHECK(fota_start(&ctx) == FOTA_EV_ERROR && fota_error(&ctx) == FOTA_ERR_COUNTER_EXHAUSTED,
	      "no Hello once the boot counter is spent");
}

/* The digest of the images the resume tests name: byte i is 0x40 + i. */
static void set_digest(uint8_t *d)
{
	size_t i;

	for (i = 0; i < FOTA_DIGEST_SIZE; i++) d[i] = (uint8_t)(0x40 + i);
}

/*
 * 4.1, 9.1: the resume point in the Hello (offset at tx[33], ID after
 * it) and in ctx->start, from the stored state and what the slot holds
 * past the durable offset.
 */
static void test_resume_point_in_hello(void)
{
	static struct fota_ctx ctx;
	struct fota_config c = config();
	static const struct {
		const char *what;
		uint32_t pending, resume, durable;
		uint32_t dirty;    /* a programmed byte at this offset; 0: none */
		uint32_t want;     /* the offset named; its ID is set_digest's */
	} cases[] = {
		{ "nothing to resume", 0, 0, 0, 0, 0 },
		{ "a download with nothing durable names nothing", 0, 9000, 0, 0, 0 },
		{ "a pending image, whole", 5000, 0, 0, 0, 5000 },
		{ "a pending image before a download's record", 5000, 9000, 4096, 0, 5000 },
		{ "durable at a sector boundary", 0, 9000, 8192, 8192, 8192 },
		{ "durable inside a sector, the rest erased", 0, 9000, 4196, 0, 4196 },
		{ "durable inside a sector, a byte past it programmed", 0, 9000, 4196, 8191, 4096 },
		{ "durable inside a sector, right past it programmed", 0, 9000, 4196, 4196, 4096 },
		{ "durable inside the first sector, the rest dirty", 0, 9000, 700, 4000, 0 },
		{ "durable not on a word: backed off", 0, 9000, 4197, 0, 4096 },
		{ "durable at the end: nothing to check", 0, 5001, 5001, 5001, 5001 },
	};
	size_t i, n;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const uint8_t *tx;
		uint8_t id[8];

		memset(slot, 0xff, sizeof slot);
		if (cases[i].dirty != 0) slot[cases[i].dirty] = 0x00;
		memset(&stored, 0, sizeof stored);
		stored.pending.size = cases[i].pending;
		set_digest(stored.pending.digest);
		stored.pending.digest[0] = 0x99;   /* tells the two records apart */
		stored.resume.size = cases[i].resume;
		set_digest(stored.resume.digest);
		stored.durable = cases[i].durable;
		fota_init(&ctx, &c);
		CHECK(fota_start(&ctx) == FOTA_EV_SEND, cases[i].what);
		tx = fota_tx(&ctx, &n);
		memset(id, 0, sizeof id);
		if (cases[i].want != 0) {
			memcpy(id, cases[i].pending ? stored.pending.digest : stored.resume.digest, 8);
		}
		CHECK(n == 61 && fota_load32_be(tx + 33) == cases[i].want &&
		      memcmp(tx + 37, id, 8) == 0 && ctx.start == cases[i].want, cases[i].what);
	}

	/* The slot cannot be read: no Hello, as with any flash failure. */
	memset(&stored, 0, sizeof stored);
	stored.resume.size = 9000;
	stored.durable = 4196;
	read_fails = 1;
	fota_init(&ctx, &c);
	CHECK(fota_start(&ctx) == FOTA_EV_ERROR && fota_error(&ctx) == FOTA_ERR_FLASH &&
	      stored.boot_counter == 1, "no Hello when the slot past the durable offset is unreadable");
	read_fails = 0;
}

/* A manifest (4.3) of an unsigned image of this device's class. */
static size_t manifest(uint8_t *p, uint32_t seq, uint32_t size, const uint8_t *digest)
{
	fota_store32_be(p, seq);
	fota_store32_be(p + 4, size);
	put16(p + 8, 64);
	p[10] = 10;
	memcpy(p + 11, "esp8266-4m", 10);
	memcpy(p + 21, digest, FOTA_DIGEST_SIZE);
	p[53] = 0;
	return 54;
}

/*
 * What on_offer does with the opened manifest of an image offer: a
 * syntax error ends the session, a refusal goes out in the Accept, else
 * the application is asked.
 */
static enum fota_event on_manifest(struct fota_ctx *ctx, const uint8_t *p, size_t n)
{
	enum fota_err refuse = FOTA_OK, err = parse_manifest(ctx, p, n, &refuse);

	if (err != FOTA_OK) {
		return fail(ctx, err);
	}
	if (refuse != FOTA_OK) {
		return send_accept(ctx, refuse, 0, FOTA_EV_ERROR);
	}
	ctx->state = S_OFFERED;
	return FOTA_EV_OFFER;
}

/*
 * 4.1: the offered image decides where the stream starts. By the ID
 * alone when it is another image; the whole digest must then match, or
 * the offer is declined and the resume point forgotten, so the next
 * session starts from 0.
 */
static void test_resume_start_and_stale_refusal(void)
{
	static struct fota_ctx ctx;
	struct fota_config c = config();
	static const struct {
		const char *what;
		uint32_t size;     /* offered */
		uint8_t flip;      /* offered digest byte flipped (its index + 1); 0: none */
		uint32_t start;
		enum fota_event ev;
	} cases[] = {
		{ "the named image resumes at its offset", 9000, 0, 4196, FOTA_EV_OFFER },
		{ "another image (another ID) starts at 0", 9000, 1, 0, FOTA_EV_OFFER },
		{ "the ID's last byte differs: another image", 9000, 8, 0, FOTA_EV_OFFER },
		{ "an image shorter than the offset starts at 0", 4000, 0, 0, FOTA_EV_OFFER },
		{ "the same ID, another digest: declined", 9000, 9, 4196, FOTA_EV_SEND },
		{ "the same ID and digest, another size: declined", 9001, 0, 4196, FOTA_EV_SEND },
	};
	uint8_t m[64], digest[FOTA_DIGEST_SIZE];
	size_t i, used, n;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int refused = cases[i].ev == FOTA_EV_SEND;

		memset(slot, 0xff, sizeof slot);
		memset(&stored, 0, sizeof stored);
		stored.resume.seq = 4;
		stored.resume.size = 9000;
		set_digest(stored.resume.digest);
		stored.durable = 4196;
		fota_init(&ctx, &c);
		CHECK(fota_start(&ctx) == FOTA_EV_SEND && ctx.start == 4196, cases[i].what);
		set_digest(digest);
		if (cases[i].flip) digest[cases[i].flip - 1] ^= 0x01;
		n = manifest(m, 4, cases[i].size, digest);
		CHECK(on_manifest(&ctx, m, n) == cases[i].ev && ctx.start == cases[i].start, cases[i].what);
		if (!refused) {
			/* The Accept (sealed: see the Go tests for its offset) and
			 * the slot are for exactly that start. */
			CHECK(fota_feed(&ctx, NULL, 0, &used) == FOTA_EV_SEND && ctx.state == S_RECEIVE &&
			      ctx.start == cases[i].start && ctx.pos == cases[i].start &&
			      stored.durable == cases[i].start, cases[i].what);
			continue;
		}
		CHECK(fota_error(&ctx) == FOTA_ERR_DECLINED && stored.resume.size == 0 &&
		      stored.durable == 0 && stored.pending.size == 0 && stored.boot_counter == 1,
		      "a stale resume point is declined and forgotten");
		/* The next session names nothing, so the offer starts at 0. */
		fota_init(&ctx, &c);
		CHECK(fota_start(&ctx) == FOTA_EV_SEND && ctx.start == 0 &&
		      fota_load32_be(ctx.tx + 33) == 0, "after a stale refusal the Hello names nothing");
		CHECK(on_manifest(&ctx, m, n) == FOTA_EV_OFFER && ctx.start == 0,
		      "after a stale refusal the offer starts at 0");
	}

	/* A stale pending image goes too; a failing save is flash_error. */
	memset(&stored, 0, sizeof stored);
	stored.pending.seq = 4;
	stored.pending.size = 9000;
	set_digest(stored.pending.digest);
	fota_init(&ctx, &c);
	CHECK(fota_start(&ctx) == FOTA_EV_SEND && ctx.start == 9000, "a pending image named whole");
	set_digest(digest);
	digest[31] ^= 1;
	n = manifest(m, 5, 9000, digest);
	CHECK(on_manifest(&ctx, m, n) == FOTA_EV_SEND && fota_error(&ctx) == FOTA_ERR_DECLINED &&
	      stored.pending.size == 0, "a stale pending image is declined and forgotten");
	(void)fota_tx(&ctx, &n);
	CHECK(n == 3 + 5 + 16, "the refusal is an Accept");
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
	test_resume_point_in_hello();
	test_resume_start_and_stale_refusal();
	return check_summary();
}
