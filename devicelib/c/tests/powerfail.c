/*
 * powerfail.c - power-fail injection for the C device (fota.h), as
 * MCUboot's simulator does it for its bootloader; driven by
 * ../powerfail_test.go.
 *
 * The library runs on a simulated platform: an update slot in memory
 * with NOR flash rules (writes only to erased bytes, 4-byte aligned), a
 * state store that is atomic, as fota.h requires, and a counter of the
 * operations a power cut can interrupt: erase, write, sync and state
 * save. "cut K MODE" loses the power at the K-th of them from then on.
 * Losing power is a longjmp out of the callback back to the request
 * loop, so not one more line of the library runs, as on a device; the
 * context is dropped, and the next request boots a fresh one from what
 * survived: the stored state and the slot.
 *
 * Sessions are real: each connects over TCP to the gateway the test runs
 * (devicelib/internal/testgw, the protocol package's gateway role) and
 * feeds the push API from the socket, as ports/posix does.
 *
 * The flash also checks the library's promises and counts every broken
 * one as a violation (the operation is refused): a misaligned write, a
 * write to bytes not erased, an erase of a sector below the recorded
 * durable offset or of the recorded pending image, a state record whose
 * durable prefix is not what the synced flash holds.
 *
 * One request per line on stdin, one answer line on stdout:
 *
 *   config ADDR ID CLASS PSK MAXPAYLOAD SLOT ACKEVERY AHEAD -> ok | fail NAME
 *                       AHEAD 1: call fota_erase_ahead() after every
 *                       FOTA_EV_PROGRESS (deterministic, so the operations
 *                       of two runs line up)
 *   factory BOOT RUNNING SEED -> ok  a new device: boot counter, running
 *                       sequence; the slot full of an older image's bytes
 *   cut K MODE SEED  -> ok   lose power right at the K-th operation from now
 *                       (0: never). MODE before: the operation does not
 *                       happen; torn: part of it happens (a write's prefix,
 *                       an erase that sets only some bits; a sync or a
 *                       state save completes, the store being atomic); volatile: before, and
 *                       every sector changed since the last sync keeps its
 *                       new bytes or falls back to the synced ones
 *   boot             -> running SEQ | powerloss   power on: the boot loader
 *                       checks a pending image, the new firmware confirms it
 *   session          -> OUTCOME   one session with the gateway; OUTCOME is
 *                       done up_to_date retry:S error:NAME powerloss
 *   check            -> BOOT RUNNING PSEQ PSIZE PENDING_OK RSIZE DURABLE OPS FIRED ERASES
 *                       AHEAD FIRED_AHEAD VIOLATIONS [WHAT]: the stored state, whether the
 *                       slot holds its pending image; since the last cut or factory:
 *                       operations, erases, erases by fota_erase_ahead; since the
 *                       factory: cuts, cuts in fota_erase_ahead, broken promises (the
 *                       first one named)
 *   digest LEN       -> HEX     SHA-256 of the slot's first LEN bytes
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "fota.h"

#define MAX_SLOT (1u << 20)

static uint8_t slot[MAX_SLOT];
static uint8_t synced[MAX_SLOT];   /* the slot as of the last sync */
static uint8_t dirty[MAX_SLOT / FOTA_SECTOR_SIZE];  /* changed since the last sync */
static uint32_t slot_size;
static struct fota_state stored;

static struct fota_ctx ctx;
static struct fota_config cfg;
static char addr[64], id[32], cls[32];
static uint8_t psk[FOTA_PSK_SIZE];
static int ahead;

/* Power-cut injection. */
enum { CUT_BEFORE, CUT_TORN, CUT_VOLATILE };
static jmp_buf power_env;
static int powered;             /* a session or boot is running: a cut can jump */
static unsigned long ops;       /* mutating operations since the last cut or factory */
static unsigned long cut_at;    /* 0: never */
static int cut_mode;
static unsigned long fired;     /* cuts that happened */
static int in_ahead;            /* inside fota_erase_ahead */
static unsigned long fired_ahead, erases, ahead_erases;
static uint64_t rng_state = 1;

static unsigned long violations;
static char first_violation[160];

static int sock = -1;

static void die(const char *why)
{
	printf("error %s\n", why);
	exit(2);
}

static uint32_t rnd(void)
{
	/* xorshift64*: the test's seed decides what a torn operation leaves. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static int violation(const char *what, unsigned long a)
{
	if (violations++ == 0) {
		snprintf(first_violation, sizeof first_violation, "%s(%lu)", what, a);
	}
	return -1;
}

/*
 * Counts a mutating operation; at the armed one the power goes. With
 * torn, the caller gets 1 back, does part of its work, and calls
 * power_off() itself.
 */
static void power_off(void)
{
	uint32_t s;

	if (cut_mode == CUT_VOLATILE) {
		for (s = 0; s < slot_size / FOTA_SECTOR_SIZE; s++) {
			if (dirty[s] && (rnd() & 1)) {
				memcpy(slot + s * FOTA_SECTOR_SIZE, synced + s * FOTA_SECTOR_SIZE,
				       FOTA_SECTOR_SIZE);
			}
		}
	}
	memset(dirty, 0, sizeof dirty);
	memcpy(synced, slot, slot_size);
	fired++;
	fired_ahead += (unsigned long)in_ahead;
	in_ahead = 0;
	cut_at = 0;
	powered = 0;
	longjmp(power_env, 1);
}

static int cut_now(void)
{
	ops++;
	if (!powered || cut_at == 0 || ops != cut_at) {
		return 0;
	}
	if (cut_mode != CUT_TORN) {
		power_off();
	}
	return 1;
}

/* ---- the platform ---- */

static int cb_random(void *arg, uint8_t *out, size_t len)
{
	size_t i;

	(void)arg;
	for (i = 0; i < len; i++) {
		out[i] = (uint8_t)rnd();
	}
	return 0;
}

static int cb_erase(void *arg, uint32_t sector)
{
	uint8_t *p = slot + (size_t)sector * FOTA_SECTOR_SIZE;
	int torn = cut_now();
	size_t i;

	(void)arg;
	if ((uint64_t)sector * FOTA_SECTOR_SIZE >= slot_size) {
		return violation("erase_outside_slot", sector);
	}
	if (stored.resume.size != 0 && (uint64_t)sector * FOTA_SECTOR_SIZE < stored.durable) {
		return violation("erase_below_durable", sector);
	}
	if (stored.pending.size != 0 && (uint64_t)sector * FOTA_SECTOR_SIZE < stored.pending.size) {
		return violation("erase_of_pending_image", sector);
	}
	dirty[sector] = 1;
	erases++;
	ahead_erases += (unsigned long)in_ahead;
	if (torn) {
		/* Erasing sets bits; an interrupted one has set only some. */
		for (i = 0; i < FOTA_SECTOR_SIZE; i++) {
			p[i] = (uint8_t)(p[i] | rnd());
		}
		power_off();
	}
	memset(p, 0xff, FOTA_SECTOR_SIZE);
	return 0;
}

static int cb_write(void *arg, uint32_t off, const uint8_t *data, size_t len)
{
	int torn = cut_now();
	size_t i, n;

	(void)arg;
	if (off % 4 != 0 || len % 4 != 0 || ((size_t)data & 3) != 0) {
		return violation("write_misaligned", off);
	}
	if (len == 0 || (uint64_t)off + len > slot_size) {
		return violation("write_outside_slot", off);
	}
	for (i = 0; i < len; i++) {
		/* NOR flash programs 1 bits to 0 only. */
		if (slot[off + i] != 0xff) {
			return violation("write_not_erased", off + i);
		}
	}
	for (i = off / FOTA_SECTOR_SIZE; i <= (off + len - 1) / FOTA_SECTOR_SIZE; i++) {
		dirty[i] = 1;
	}
	if (torn) {
		/* A prefix programmed, then one byte with only some bits. */
		n = rnd() % len;
		memcpy(slot + off, data, n);
		slot[off + n] = (uint8_t)(data[n] | rnd());
		power_off();
	}
	memcpy(slot + off, data, len);
	return 0;
}

static int cb_read(void *arg, uint32_t off, uint8_t *out, size_t len)
{
	(void)arg;
	if (off % 4 != 0 || len % 4 != 0 || ((size_t)out & 3) != 0) {
		return violation("read_misaligned", off);
	}
	if ((uint64_t)off + len > slot_size) {
		return violation("read_outside_slot", off);
	}
	memcpy(out, slot + off, len);
	return 0;
}

static int cb_sync(void *arg)
{
	int torn = cut_now();

	(void)arg;
	/* A torn sync made it: what it wrote is on the flash. */
	memcpy(synced, slot, slot_size);
	memset(dirty, 0, sizeof dirty);
	if (torn) {
		power_off();
	}
	return 0;
}

static int cb_load(void *arg, struct fota_state *st)
{
	(void)arg;
	*st = stored;
	return 0;
}

static int cb_save(void *arg, const struct fota_state *st)
{
	int torn = cut_now();

	(void)arg;
	if (st->durable > st->resume.size || st->resume.size > slot_size ||
	    st->pending.size > slot_size) {
		return violation("save_past_the_image", st->durable);
	}
	/* 9.1: the record never claims a byte the flash has not synced. */
	if (st->resume.size != 0 && memcmp(slot, synced, st->durable) != 0) {
		return violation("save_durable_not_synced", st->durable);
	}
	stored = *st;
	if (torn) {
		power_off();   /* atomic: the new record, then no power */
	}
	return 0;
}

/* ---- the device ---- */

/* Whether the slot holds the pending image the state names. */
static int pending_ok(void)
{
	fota_sha256_ctx h;
	uint8_t d[FOTA_SHA256_SIZE];

	if (stored.pending.size == 0) {
		return 1;
	}
	fota_sha256_init(&h);
	fota_sha256_update(&h, slot, stored.pending.size);
	fota_sha256_final(&h, d);
	return memcmp(d, stored.pending.digest, sizeof d) == 0;
}

static int send_all(const uint8_t *b, size_t n)
{
	while (n > 0) {
		ssize_t r = send(sock, b, n, MSG_NOSIGNAL);

		if (r < 0) {
			if (errno == EINTR) continue;
			return -1;
		}
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static void dial(void)
{
	char host[64];
	char *colon = strrchr(addr, ':');
	struct sockaddr_in sa;
	struct timeval tv;

	if (colon == NULL || (size_t)(colon - addr) >= sizeof host) die("config: ADDR is IPv4:PORT");
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)strtoul(colon + 1, NULL, 10));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) die("config: ADDR is IPv4:PORT");
	sock = socket(AF_INET, SOCK_STREAM, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&sa, sizeof sa) != 0) die("connect");
	/* A silent gateway ends the session rather than the test. */
	tv.tv_sec = 20;
	tv.tv_usec = 0;
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/*
 * One session over the socket, the push API fed as data arrives. With
 * ahead, every FOTA_EV_PROGRESS is followed by one fota_erase_ahead(),
 * where an application would call it when idle.
 */
static enum fota_event session(void)
{
	static uint8_t in[4096];
	const uint8_t *p = in;
	size_t len = 0, used, n;
	enum fota_event ev = fota_start(&ctx);
	unsigned long steps;

	/* Bounded: every step consumes input or ends; 16 events per byte is plenty. */
	for (steps = 0; steps < 16ul * MAX_SLOT; steps++) {
		if (fota_is_final(ev)) {
			return ev;
		}
		if (ev == FOTA_EV_PROGRESS && ahead) {
			in_ahead = 1;
			ev = fota_erase_ahead(&ctx);
			in_ahead = 0;
			if (ev != FOTA_EV_PROGRESS && ev != FOTA_EV_NEED_MORE) {
				continue;   /* its failure's Alert: sent above, then the error */
			}
			ev = FOTA_EV_PROGRESS;
		}
		if (ev == FOTA_EV_SEND) {
			const uint8_t *tx = fota_tx(&ctx, &n);

			if (send_all(tx, n) != 0) {
				return fota_close(&ctx);
			}
		} else if (ev == FOTA_EV_NEED_MORE) {
			ssize_t r;

			do {
				r = recv(sock, in, sizeof in, 0);
			} while (r < 0 && errno == EINTR);
			if (r <= 0) {
				return fota_close(&ctx);
			}
			p = in;
			len = (size_t)r;
		}
		ev = fota_feed(&ctx, p, len, &used);
		p += used;
		len -= used;
	}
	die("session: no end");
	return FOTA_EV_ERROR;
}

static void do_session(void)
{
	enum fota_event ev;
	enum fota_err err;

	dial();
	if (setjmp(power_env) != 0) {
		/* The power is gone: the connection drops with the device. */
		close(sock);
		sock = -1;
		memset(&ctx, 0, sizeof ctx);
		puts("powerloss");
		return;
	}
	if ((err = fota_init(&ctx, &cfg)) != FOTA_OK) {
		printf("error:%s\n", fota_err_name(err));
		close(sock);
		return;
	}
	powered = 1;
	ev = session();
	powered = 0;
	close(sock);
	sock = -1;
	switch (ev) {
	case FOTA_EV_DONE: puts("done"); break;
	case FOTA_EV_UP_TO_DATE: puts("up_to_date"); break;
	case FOTA_EV_RETRY: printf("retry:%u\n", (unsigned)fota_retry_after(&ctx)); break;
	default: printf("error:%s\n", fota_err_name(fota_error(&ctx))); break;
	}
}

/*
 * Power on. A boot loader boots a pending image only if it verifies (the
 * library must never have recorded one that does not: a violation); the
 * new firmware then confirms itself, raising the anti-rollback floor.
 */
static void do_boot(void)
{
	if (setjmp(power_env) != 0) {
		puts("powerloss");
		return;
	}
	if (!pending_ok()) {
		violation("pending_image_does_not_verify", stored.pending.size);
		memset(&stored.pending, 0, sizeof stored.pending);
	}
	powered = 1;
	if (fota_confirm(&cfg) != FOTA_OK) {
		violation("confirm_failed", stored.pending.seq);
	}
	powered = 0;
	printf("running %lu\n", (unsigned long)stored.running.seq);
}

/* ---- requests ---- */

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

static int nibble(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	die("bad hex digit");
	return 0;
}

static void do_config(char *c)
{
	char hex[2 * FOTA_PSK_SIZE + 1];
	enum fota_err err;
	size_t i;

	next_word(&c, addr, sizeof addr);
	next_word(&c, id, sizeof id);
	next_word(&c, cls, sizeof cls);
	next_word(&c, hex, sizeof hex);
	if (strlen(hex) != 2 * FOTA_PSK_SIZE) die("config: PSK is 64 hex digits");
	for (i = 0; i < FOTA_PSK_SIZE; i++) {
		psk[i] = (uint8_t)(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
	}
	memset(&cfg, 0, sizeof cfg);
	cfg.device_id = id;
	cfg.device_class = cls;
	cfg.psk = psk;
	cfg.max_payload = (uint32_t)next_num(&c);
	cfg.slot_size = (uint32_t)next_num(&c);
	cfg.ack_every = (uint32_t)next_num(&c);
	ahead = next_num(&c) != 0;
	cfg.random = cb_random;
	cfg.flash_erase = cb_erase;
	cfg.flash_write = cb_write;
	cfg.flash_read = cb_read;
	cfg.flash_sync = cb_sync;
	cfg.state_load = cb_load;
	cfg.state_save = cb_save;
	if (cfg.slot_size > MAX_SLOT) die("config: slot too large");
	slot_size = cfg.slot_size;
	if ((err = fota_init(&ctx, &cfg)) != FOTA_OK) {
		printf("fail %s\n", fota_err_name(err));
		return;
	}
	puts("ok");
}

static void do_factory(char *c)
{
	uint32_t i;

	memset(&stored, 0, sizeof stored);
	stored.boot_counter = (uint32_t)next_num(&c);
	stored.running.seq = (uint32_t)next_num(&c);
	rng_state = next_num(&c) | 1;
	/* An older image's bytes, not erased flash: the library must erase. */
	for (i = 0; i < slot_size; i++) {
		slot[i] = (uint8_t)rnd();
	}
	memcpy(synced, slot, slot_size);
	memset(dirty, 0, sizeof dirty);
	ops = fired = fired_ahead = erases = ahead_erases = violations = cut_at = 0;
	first_violation[0] = '\0';
	puts("ok");
}

static void do_cut(char *c)
{
	char mode[16];

	cut_at = next_num(&c);
	next_word(&c, mode, sizeof mode);
	if (strcmp(mode, "before") == 0) cut_mode = CUT_BEFORE;
	else if (strcmp(mode, "torn") == 0) cut_mode = CUT_TORN;
	else if (strcmp(mode, "volatile") == 0) cut_mode = CUT_VOLATILE;
	else die("cut: MODE is before, torn or volatile");
	rng_state = next_num(&c) | 1;
	ops = erases = ahead_erases = 0;
	puts("ok");
}

int main(void)
{
	static char line[512];

	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof line, stdin) != NULL) {
		char *c = line, *cmd;

		if (strchr(line, '\n') == NULL) die("line too long");
		cmd = next_field(&c);
		if (strcmp(cmd, "config") == 0) {
			do_config(c);
		} else if (strcmp(cmd, "factory") == 0) {
			do_factory(c);
		} else if (strcmp(cmd, "cut") == 0) {
			do_cut(c);
		} else if (strcmp(cmd, "boot") == 0) {
			do_boot();
		} else if (strcmp(cmd, "session") == 0) {
			do_session();
		} else if (strcmp(cmd, "check") == 0) {
			printf("%lu %lu %lu %lu %d %lu %lu %lu %lu %lu %lu %lu %lu%s%s\n",
			       (unsigned long)stored.boot_counter, (unsigned long)stored.running.seq,
			       (unsigned long)stored.pending.seq, (unsigned long)stored.pending.size,
			       pending_ok(), (unsigned long)stored.resume.size,
			       (unsigned long)stored.durable, ops, fired, erases, ahead_erases,
			       fired_ahead, violations,
			       violations ? " " : "", first_violation);
		} else if (strcmp(cmd, "digest") == 0) {
			unsigned long n = next_num(&c);
			fota_sha256_ctx h;
			uint8_t d[FOTA_SHA256_SIZE];
			size_t i;

			if (n > slot_size) die("digest: past the slot");
			fota_sha256_init(&h);
			fota_sha256_update(&h, slot, n);
			fota_sha256_final(&h, d);
			for (i = 0; i < sizeof d; i++) printf("%02x", d[i]);
			putchar('\n');
		} else {
			die("unknown request");
		}
	}
	return 0;
}
