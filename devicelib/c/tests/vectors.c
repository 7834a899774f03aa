/*
 * vectors.c - one C device (fota.h) on requests from stdin, for the Go
 * tests in ../protocol_test.go: the test vectors of protocol/testdata and
 * sessions against the Go gateway, byte for byte.
 *
 * The platform is simulated here: a slot in memory with NOR flash rules,
 * a state store, an RNG that returns what it is told, and failures on
 * request. Every callback checks the library's promises (alignment,
 * bounds, erase before write, durable offset never ahead of a sync) and
 * the harness exits with "error ..." if one is broken.
 *
 * One request per line, one answer line per request; fields separated by
 * one space, byte strings in lowercase hex ("-" for empty or none).
 *
 *   config ID CLASS GW|- PSK MAXPAYLOAD SLOT ACKEVERY -> ok | fail NAME
 *   init                          -> ok      (fota_init again: a new session)
 *   state BOOT RUN RSEQ RSIZE RDIGEST DURABLE PSEQ PSIZE PDIGEST
 *                                 -> ok      (the stored state; digests hex or -)
 *   getstate                      -> the same nine fields
 *   flash OFFSET HEX              -> ok      (factory contents, no NOR rules)
 *   slot OFFSET LEN               -> HEX     (what the slot holds)
 *   random HEX                    -> ok      (what the RNG returns next)
 *   fail OP N                     -> ok      (the N-th next call of OP fails;
 *                                    OP: erase write read sync load save random)
 *   corrupt N                     -> ok      (the N-th next write succeeds, but
 *                                    its first byte lands with a bit flipped)
 *   decline                       -> ok      (refuse the next FOTA_EV_OFFER)
 *   vendor KEYS                   -> ok      (FOTA_WITH_ED25519 builds: the vendor
 *                                    keys, 32 bytes each, concatenated, "-" for
 *                                    none; then "init")
 *   start                         -> EVENTS
 *   feed HEX [STEP]               -> EVENTS  (fota_feed until it needs more; with
 *                                    STEP, HEX is given STEP bytes at a time)
 *   close                         -> EVENTS
 *   stats                         -> ERASES WRITES READS SYNCS SAVES
 *
 * EVENTS are tokens: send:HEX offer progress done up_to_date retry:SECONDS
 * error:NAME, and need_more when the input is used up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fota.h"

#define MAX_LINE  (1 << 22)
#define MAX_SLOT  (4u << 20)

static char line[MAX_LINE];
static uint8_t buf[MAX_LINE / 2];

static struct fota_ctx ctx;
static struct fota_config cfg;
static char id[64], cls[64], gw[64];
static uint8_t psk[FOTA_PSK_SIZE];

static uint8_t *slot;
static uint32_t slot_size;
static uint8_t erased[MAX_SLOT / FOTA_SECTOR_SIZE];  /* sector erased in this session */
static long resumed_sector = -1;  /* the sector a session resumes inside, unerased */
static uint32_t synced_to;   /* every byte below was written before the last sync */
static uint32_t written_to;  /* highest end of a write */

static struct fota_state stored;
static uint8_t rnd[64];
static size_t rnd_len;
static int decline_next;

enum { OP_ERASE, OP_WRITE, OP_READ, OP_SYNC, OP_LOAD, OP_SAVE, OP_RANDOM, OPS };
static const char *const op_names[OPS] = { "erase", "write", "read", "sync", "load", "save", "random" };
static unsigned long fail_at[OPS];   /* 0: never */
static unsigned long corrupt_at;     /* 0: never */
static unsigned long calls[OPS];

static void die(const char *why)
{
	printf("error %s\n", why);
	exit(2);
}

/* Counts a call of op and says whether it should fail. */
static int failing(int op)
{
	calls[op]++;
	if (fail_at[op] != 0 && --fail_at[op] == 0) {
		return 1;
	}
	return 0;
}

static int aligned(const void *p)
{
	return ((size_t)p & 3) == 0;
}

/* ---- platform ---- */

static int cb_random(void *arg, uint8_t *out, size_t len)
{
	(void)arg;
	if (failing(OP_RANDOM)) return -1;
	if (len != rnd_len) die("random: asked for a length other than the one set");
	memcpy(out, rnd, len);
	return 0;
}

static int cb_erase(void *arg, uint32_t sector)
{
	(void)arg;
	if (failing(OP_ERASE)) return -1;
	if ((uint64_t)sector * FOTA_SECTOR_SIZE >= slot_size) die("erase: sector outside the slot");
	memset(slot + (size_t)sector * FOTA_SECTOR_SIZE, 0xff, FOTA_SECTOR_SIZE);
	erased[sector] = 1;
	return 0;
}

static int cb_write(void *arg, uint32_t off, const uint8_t *data, size_t len)
{
	size_t i;

	(void)arg;
	if (failing(OP_WRITE)) return -1;
	if (off % 4 != 0 || len % 4 != 0 || !aligned(data)) die("write: misaligned");
	if (len == 0 || (uint64_t)off + len > slot_size) die("write: outside the slot");
	for (i = 0; i < len; i++) {
		/* NOR: only erased bytes can be programmed. */
		if (slot[off + i] != 0xff) die("write: programming a byte that is not erased");
	}
	for (i = off / FOTA_SECTOR_SIZE; i <= (off + len - 1) / FOTA_SECTOR_SIZE; i++) {
		/* The library erases a sector before it writes into it, except
		 * the one a resumed download continues inside. */
		if (!erased[i] && (long)i != resumed_sector) die("write: into a sector not erased first");
	}
	memcpy(slot + off, data, len);
	if (corrupt_at != 0 && --corrupt_at == 0) {
		slot[off] ^= 0x01;   /* a silent program failure */
	}
	if (off + len > written_to) written_to = (uint32_t)(off + len);
	return 0;
}

static int cb_read(void *arg, uint32_t off, uint8_t *out, size_t len)
{
	(void)arg;
	if (failing(OP_READ)) return -1;
	if (off % 4 != 0 || len % 4 != 0 || !aligned(out)) die("read: misaligned");
	if ((uint64_t)off + len > slot_size) die("read: outside the slot");
	memcpy(out, slot + off, len);
	return 0;
}

static int cb_sync(void *arg)
{
	(void)arg;
	if (failing(OP_SYNC)) return -1;
	synced_to = written_to;
	return 0;
}

static int cb_load(void *arg, struct fota_state *st)
{
	(void)arg;
	if (failing(OP_LOAD)) return -1;
	*st = stored;
	return 0;
}

static int cb_save(void *arg, const struct fota_state *st)
{
	(void)arg;
	if (failing(OP_SAVE)) return -1;
	/* 9.1: the record never claims bytes that were not synced first. */
	if (st->resume.size != 0 && st->durable > synced_to) {
		die("save: durable offset ahead of the last sync");
	}
	if (st->durable > st->resume.size) die("save: durable offset past the image");
	stored = *st;
	return 0;
}

/* ---- line parsing ---- */

static char *next_field(char **cursor)
{
	char *f = *cursor, *end;

	while (*f == ' ') f++;
	if (*f == '\0' || *f == '\n') die("missing field");
	end = f + strcspn(f, " \n");
	*cursor = *end == '\0' ? end : end + 1;
	*end = '\0';
	return f;
}

static int nibble(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	die("bad hex digit");
	return 0;
}

static size_t next_hex(char **cursor, uint8_t *out, size_t max)
{
	char *f = next_field(cursor);
	size_t n, i;

	if (strcmp(f, "-") == 0) return 0;
	n = strlen(f);
	if (n % 2 != 0 || n / 2 > max) die("bad hex length");
	for (i = 0; i < n / 2; i++) {
		out[i] = (uint8_t)(nibble(f[2 * i]) << 4 | nibble(f[2 * i + 1]));
	}
	return n / 2;
}

static unsigned long next_num(char **cursor)
{
	return strtoul(next_field(cursor), NULL, 10);
}

static void next_word(char **cursor, char *out, size_t max)
{
	char *f = next_field(cursor);

	if (strlen(f) >= max) die("word too long");
	strcpy(out, f);
}

static void print_hex(const uint8_t *p, size_t n)
{
	size_t i;

	if (n == 0) {
		fputs("-", stdout);
	}
	for (i = 0; i < n; i++) {
		printf("%02x", p[i]);
	}
}

static void next_image(char **cursor, struct fota_image *img)
{
	img->seq = (uint32_t)next_num(cursor);
	img->size = (uint32_t)next_num(cursor);
	memset(img->digest, 0, sizeof img->digest);
	next_hex(cursor, img->digest, sizeof img->digest);
}

static void print_image(const struct fota_image *img)
{
	printf(" %lu %lu ", (unsigned long)img->seq, (unsigned long)img->size);
	print_hex(img->digest, sizeof img->digest);
}

/* ---- events ---- */

/* Prints one event; returns nonzero when the caller should stop asking. */
static int print_event(enum fota_event ev)
{
	const uint8_t *tx;
	size_t n;

	switch (ev) {
	case FOTA_EV_NEED_MORE:
		fputs(" need_more", stdout);
		return 1;
	case FOTA_EV_SEND:
		tx = fota_tx(&ctx, &n);
		if (n == 0 || n > FOTA_TX_SIZE) die("send: bad length");
		fputs(" send:", stdout);
		print_hex(tx, n);
		return 0;
	case FOTA_EV_OFFER:
		fputs(" offer", stdout);
		if (decline_next) {
			decline_next = 0;
			if (fota_decline(&ctx) != FOTA_OK) die("decline refused after an offer");
		}
		return 0;
	case FOTA_EV_PROGRESS:
		fputs(" progress", stdout);
		return 0;
	case FOTA_EV_DONE:
		fputs(" done", stdout);
		return 1;
	case FOTA_EV_UP_TO_DATE:
		fputs(" up_to_date", stdout);
		return 1;
	case FOTA_EV_RETRY:
		printf(" retry:%u", (unsigned)fota_retry_after(&ctx));
		return 1;
	case FOTA_EV_ERROR:
		printf(" error:%s", fota_err_name(fota_error(&ctx)));
		return 1;
	}
	die("unknown event");
	return 1;
}

/* Feeds len bytes, step at a time (all at once if step is 0), printing
 * events until the input is used up or the session is over. */
static void feed(const uint8_t *p, size_t len, size_t step)
{
	for (;;) {
		size_t n = step == 0 || step > len ? len : step;

		len -= n;
		for (;;) {
			size_t used = 0;
			enum fota_event ev = fota_feed(&ctx, n ? p : NULL, n, &used);

			if (used > n) die("feed: consumed more than it was given");
			if (ev == FOTA_EV_NEED_MORE && used != n) die("feed: needs more but left input");
			p += used;
			n -= used;
			if (ev == FOTA_EV_NEED_MORE && len > 0) {
				break;   /* the next piece; need_more is printed once, at the end */
			}
			if (print_event(ev)) {
				return;
			}
		}
	}
}

/* ---- requests ---- */

static void do_config(char *c)
{
	enum fota_err err;

	next_word(&c, id, sizeof id);
	next_word(&c, cls, sizeof cls);
	next_word(&c, gw, sizeof gw);
	if (next_hex(&c, psk, sizeof psk) != sizeof psk) die("psk: 32 bytes");
	memset(&cfg, 0, sizeof cfg);
	cfg.device_id = id;
	cfg.device_class = cls;
	cfg.gateway_id = strcmp(gw, "-") == 0 ? NULL : gw;
	cfg.psk = psk;
	cfg.max_payload = (uint32_t)next_num(&c);
	cfg.slot_size = (uint32_t)next_num(&c);
	cfg.ack_every = (uint32_t)next_num(&c);
	cfg.random = cb_random;
	cfg.flash_erase = cb_erase;
	cfg.flash_write = cb_write;
	cfg.flash_read = cb_read;
	cfg.flash_sync = cb_sync;
	cfg.state_load = cb_load;
	cfg.state_save = cb_save;
	if (cfg.slot_size > MAX_SLOT) die("slot too large");
	if (slot_size != cfg.slot_size) {
		free(slot);
		slot = malloc(cfg.slot_size ? cfg.slot_size : 1);
		if (slot == NULL) die("out of memory");
		memset(slot, 0xff, cfg.slot_size);
		slot_size = cfg.slot_size;
	}
	err = fota_init(&ctx, &cfg);
	if (err != FOTA_OK) {
		printf("fail %s\n", fota_err_name(err));
		return;
	}
	puts("ok");
}

int main(void)
{
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	while (fgets(line, sizeof line, stdin) != NULL) {
		char *c = line;
		char *cmd;

		if (strchr(line, '\n') == NULL) die("line too long");
		cmd = next_field(&c);
		if (strcmp(cmd, "config") == 0) {
			do_config(c);
		} else if (strcmp(cmd, "init") == 0) {
			if (fota_init(&ctx, &cfg) != FOTA_OK) die("init: the config no longer passes");
			puts("ok");
		} else if (strcmp(cmd, "state") == 0) {
			stored.boot_counter = (uint32_t)next_num(&c);
			stored.running.seq = (uint32_t)next_num(&c);
			next_image(&c, &stored.resume);
			stored.durable = (uint32_t)next_num(&c);
			next_image(&c, &stored.pending);
			puts("ok");
		} else if (strcmp(cmd, "getstate") == 0) {
			printf("%lu %lu", (unsigned long)stored.boot_counter,
			       (unsigned long)stored.running.seq);
			print_image(&stored.resume);
			printf(" %lu", (unsigned long)stored.durable);
			print_image(&stored.pending);
			putchar('\n');
		} else if (strcmp(cmd, "flash") == 0) {
			unsigned long off = next_num(&c);
			size_t n = next_hex(&c, buf, sizeof buf);

			if (off + n > slot_size) die("flash: outside the slot");
			memcpy(slot + off, buf, n);
			puts("ok");
		} else if (strcmp(cmd, "slot") == 0) {
			unsigned long off = next_num(&c), n = next_num(&c);

			if (off + n > slot_size) die("slot: outside the slot");
			print_hex(slot + off, n);
			putchar('\n');
		} else if (strcmp(cmd, "random") == 0) {
			rnd_len = next_hex(&c, rnd, sizeof rnd);
			puts("ok");
		} else if (strcmp(cmd, "fail") == 0) {
			char op[16];
			int i;

			next_word(&c, op, sizeof op);
			for (i = 0; i < OPS && strcmp(op, op_names[i]) != 0; i++) {
			}
			if (i == OPS) die("fail: unknown operation");
			fail_at[i] = next_num(&c);
			puts("ok");
		} else if (strcmp(cmd, "corrupt") == 0) {
			corrupt_at = next_num(&c);
			puts("ok");
		} else if (strcmp(cmd, "decline") == 0) {
			decline_next = 1;
			puts("ok");
#ifdef FOTA_WITH_ED25519
		} else if (strcmp(cmd, "vendor") == 0) {
			static uint8_t keys[4][FOTA_ED25519_KEY_SIZE];

			cfg.vendor_key_count = (uint32_t)(next_hex(&c, keys[0], sizeof keys) / sizeof keys[0]);
			cfg.vendor_keys = (const uint8_t (*)[FOTA_ED25519_KEY_SIZE])keys;
			puts("ok");
#endif
		} else if (strcmp(cmd, "start") == 0) {
			/* A new session, as after a reboot: nothing erased by it
			 * yet, and the slot as durable as the state says. */
			memset(erased, 0, sizeof erased);
			synced_to = written_to = stored.resume.size ? stored.durable : 0;
			resumed_sector = stored.resume.size && stored.durable % FOTA_SECTOR_SIZE ?
			                 (long)(stored.durable / FOTA_SECTOR_SIZE) : -1;
			print_event(fota_start(&ctx));
			putchar('\n');
		} else if (strcmp(cmd, "feed") == 0) {
			size_t n = next_hex(&c, buf, sizeof buf);
			size_t step = 0;

			while (*c == ' ') c++;
			if (*c != '\0' && *c != '\n') step = next_num(&c);
			feed(n ? buf : NULL, n, step);
			putchar('\n');
		} else if (strcmp(cmd, "close") == 0) {
			print_event(fota_close(&ctx));
			putchar('\n');
		} else if (strcmp(cmd, "stats") == 0) {
			printf("%lu %lu %lu %lu %lu\n", calls[OP_ERASE], calls[OP_WRITE],
			       calls[OP_READ], calls[OP_SYNC], calls[OP_SAVE]);
		} else {
			die("unknown request");
		}
		fflush(stdout);
	}
	free(slot);
	return 0;
}
