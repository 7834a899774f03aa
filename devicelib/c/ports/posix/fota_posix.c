/*
 * fota_posix.c - fota.h's platform on a POSIX host (see fota_posix.h).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fota_posix.h"

static int failf(struct fota_posix *p, const char *what, const char *path)
{
	snprintf(p->err, sizeof p->err, "%.80s %.120s: %.40s", what, path ? path : "",
	         errno ? strerror(errno) : "refused");
	return -1;
}

static void sleep_us(struct fota_posix *p, long us)
{
	struct timespec ts;

	if (p->sleep_us != NULL) {
		p->sleep_us(p->sleep_arg, us);
		return;
	}
	ts.tv_sec = us / 1000000;
	ts.tv_nsec = (us % 1000000) * 1000;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

static int pread_all(int fd, uint8_t *b, size_t n, off_t off)
{
	while (n > 0) {
		ssize_t r = pread(fd, b, n, off);

		if (r <= 0) {
			if (r < 0 && errno == EINTR) continue;
			if (r == 0) errno = EIO;   /* the file is shorter than the slot */
			return -1;
		}
		b += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

static int pwrite_all(int fd, const uint8_t *b, size_t n, off_t off)
{
	while (n > 0) {
		ssize_t r = pwrite(fd, b, n, off);

		if (r < 0) {
			if (errno == EINTR) continue;
			return -1;
		}
		b += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The slot: a file with NOR flash rules                              */
/* ------------------------------------------------------------------ */

static int flash_erase(void *arg, uint32_t sector)
{
	struct fota_posix *p = arg;
	uint8_t ff[4096];
	uint32_t off = sector * FOTA_SECTOR_SIZE, done;

	errno = 0;
	if (sector >= p->slot_size / FOTA_SECTOR_SIZE) {
		return failf(p, "erase: sector outside the slot", NULL);
	}
	memset(ff, 0xff, sizeof ff);
	for (done = 0; done < FOTA_SECTOR_SIZE; done += (uint32_t)sizeof ff) {
		size_t n = FOTA_SECTOR_SIZE - done < sizeof ff ? FOTA_SECTOR_SIZE - done : sizeof ff;

		if (pwrite_all(p->flash_fd, ff, n, (off_t)off + done) != 0) {
			return failf(p, "erase: writing", NULL);
		}
	}
	if (p->timing) {
		sleep_us(p, FOTA_POSIX_ERASE_US);
	}
	return 0;
}

static int flash_write(void *arg, uint32_t off, const uint8_t *data, size_t len)
{
	struct fota_posix *p = arg;
	uint8_t cur[256];
	size_t done, i;

	errno = 0;
	if (off % 4 != 0 || len % 4 != 0 || ((size_t)data & 3) != 0) {
		return failf(p, "write: not word aligned", NULL);
	}
	if (len > p->slot_size || off > p->slot_size - len) {
		return failf(p, "write: outside the slot", NULL);
	}
	/* NOR flash programs 1 bits to 0 only: a byte that is not erased
	 * cannot be written, and a library that tries has lost track. */
	for (done = 0; done < len; done += sizeof cur) {
		size_t n = len - done < sizeof cur ? len - done : sizeof cur;

		if (pread_all(p->flash_fd, cur, n, (off_t)(off + done)) != 0) {
			return failf(p, "write: reading back", NULL);
		}
		for (i = 0; i < n; i++) {
			if (cur[i] != 0xff) {
				snprintf(p->err, sizeof p->err,
				         "write: byte %lu of the slot is not erased",
				         (unsigned long)(off + done + i));
				return -1;
			}
		}
	}
	if (pwrite_all(p->flash_fd, data, len, (off_t)off) != 0) {
		return failf(p, "write", NULL);
	}
	if (p->timing && len > 0) {
		long pages = (long)((off + len - 1) / FOTA_POSIX_PAGE - off / FOTA_POSIX_PAGE + 1);

		sleep_us(p, pages * FOTA_POSIX_PAGE_US);
	}
	return 0;
}

static int flash_read(void *arg, uint32_t off, uint8_t *buf, size_t len)
{
	struct fota_posix *p = arg;

	errno = 0;
	if (len > p->slot_size || off > p->slot_size - len) {
		return failf(p, "read: outside the slot", NULL);
	}
	if (pread_all(p->flash_fd, buf, len, (off_t)off) != 0) {
		return failf(p, "read", NULL);
	}
	return 0;
}

static int flash_sync(void *arg)
{
	struct fota_posix *p = arg;

	errno = 0;
	if (fsync(p->flash_fd) != 0) {
		return failf(p, "sync", NULL);
	}
	return 0;
}

static int random_bytes(void *arg, uint8_t *buf, size_t len)
{
	struct fota_posix *p = arg;

	errno = 0;
	while (len > 0) {
		ssize_t r = read(p->rng_fd, buf, len);

		if (r <= 0) {
			if (r < 0 && errno == EINTR) continue;
			return failf(p, "reading", "/dev/urandom");
		}
		buf += r;
		len -= (size_t)r;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The state file (devicelib/state.go's encoding)                     */
/* ------------------------------------------------------------------ */

/*
 *   magic "FOTAST1\n" | boot_counter u32 | class_len u8 | class [16] |
 *   running, pending, resume: seq u32 | size u32 | sha256 [32] |
 *   durable u32 | crc32c u32 of everything before it
 */
static const char state_magic[8] = { 'F', 'O', 'T', 'A', 'S', 'T', '1', '\n' };

static uint32_t crc32c(const uint8_t *b, size_t n)
{
	uint32_t c = 0xffffffffu;
	int k;

	while (n-- > 0) {
		c ^= *b++;
		for (k = 0; k < 8; k++) {
			c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
		}
	}
	return ~c;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint8_t *put_image(uint8_t *p, const struct fota_image *img)
{
	put32(p, img->seq);
	put32(p + 4, img->size);
	memcpy(p + 8, img->digest, FOTA_DIGEST_SIZE);
	return p + 8 + FOTA_DIGEST_SIZE;
}

static const uint8_t *get_image(const uint8_t *p, struct fota_image *img)
{
	img->seq = get32(p);
	img->size = get32(p + 4);
	memcpy(img->digest, p + 8, FOTA_DIGEST_SIZE);
	return p + 8 + FOTA_DIGEST_SIZE;
}

int fota_posix_state_load(void *arg, struct fota_state *st)
{
	struct fota_posix *p = arg;
	uint8_t b[FOTA_POSIX_STATE_SIZE + 1];
	const uint8_t *q;
	size_t cl = strlen(p->device_class), n = 0;
	int fd;

	memset(st, 0, sizeof *st);
	errno = 0;
	fd = open(p->state_path, O_RDONLY);
	if (fd < 0 && errno == ENOENT) {
		return 0;   /* a new device: boot counter 0, running sequence 0 */
	}
	if (fd < 0) {
		return failf(p, "opening the state", p->state_path);
	}
	for (;;) {
		ssize_t r = read(fd, b + n, sizeof b - n);

		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) break;
		n += (size_t)r;
	}
	close(fd);
	errno = 0;
	/* Never start over on a damaged state: that would forget the
	 * anti-rollback floor and the boot counter. */
	if (n != FOTA_POSIX_STATE_SIZE || memcmp(b, state_magic, sizeof state_magic) != 0 ||
	    crc32c(b, FOTA_POSIX_STATE_SIZE - 4) != get32(b + FOTA_POSIX_STATE_SIZE - 4)) {
		return failf(p, "corrupt state file (restore it or remove it deliberately)", p->state_path);
	}
	if (b[12] != cl || memcmp(b + 13, p->device_class, cl) != 0) {
		return failf(p, "state file written for another device class", p->state_path);
	}
	st->boot_counter = get32(b + 8);
	q = b + 13 + FOTA_ID_MAX;
	q = get_image(q, &st->running);
	q = get_image(q, &st->pending);
	q = get_image(q, &st->resume);
	st->durable = get32(q);
	if (st->durable > st->resume.size || st->resume.size > p->slot_size ||
	    st->pending.size > p->slot_size) {
		return failf(p, "state file names more than the slot holds", p->state_path);
	}
	return 0;
}

int fota_posix_state_save(void *arg, const struct fota_state *st)
{
	struct fota_posix *p = arg;
	uint8_t b[FOTA_POSIX_STATE_SIZE], *q = b;
	char tmp[4096], dir[4096];
	size_t cl = strlen(p->device_class);
	const char *slash;
	int fd, ok;

	errno = 0;
	if (cl > FOTA_ID_MAX || strlen(p->state_path) + 5 > sizeof tmp) {
		return failf(p, "state: class or path too long", p->state_path);
	}
	memset(b, 0, sizeof b);
	memcpy(q, state_magic, sizeof state_magic);
	put32(q + 8, st->boot_counter);
	q[12] = (uint8_t)cl;
	memcpy(q + 13, p->device_class, cl);
	q += 13 + FOTA_ID_MAX;
	q = put_image(q, &st->running);
	q = put_image(q, &st->pending);
	q = put_image(q, &st->resume);
	put32(q, st->durable);
	put32(q + 4, crc32c(b, FOTA_POSIX_STATE_SIZE - 4));

	/* Atomic: a new file, synced, renamed over the old, directory synced.
	 * A power cut leaves the old state or the new one, never a mix. */
	snprintf(tmp, sizeof tmp, "%s.tmp", p->state_path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		return failf(p, "creating", tmp);
	}
	ok = pwrite_all(fd, b, sizeof b, 0) == 0 && fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, p->state_path) != 0) {
		failf(p, "writing", tmp);
		unlink(tmp);
		return -1;
	}
	slash = strrchr(p->state_path, '/');
	if (slash == NULL) {
		strcpy(dir, ".");
	} else {
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - p->state_path + 1), p->state_path);
	}
	fd = open(dir, O_RDONLY);
	if (fd >= 0) {
		/* Some file systems cannot sync a directory; only its open counts. */
		(void)fsync(fd);
		close(fd);
	}
	/* On the ESP8266 the state lives in a flash sector of its own
	 * (ports/esp8266-nonos): each save erases one and programs a page. */
	if (p->timing) {
		sleep_us(p, FOTA_POSIX_ERASE_US + FOTA_POSIX_PAGE_US);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Setup                                                              */
/* ------------------------------------------------------------------ */

int fota_posix_open(struct fota_posix *p, const char *flash_path, uint32_t slot_size,
                    const char *state_path, const char *device_class, int timing)
{
	struct stat sb;

	memset(p, 0, sizeof *p);
	p->flash_fd = p->rng_fd = -1;
	p->slot_size = slot_size;
	p->state_path = state_path;
	p->device_class = device_class;
	p->timing = timing;
	errno = 0;
	if (slot_size == 0 || slot_size % FOTA_SECTOR_SIZE != 0) {
		return failf(p, "the slot size must be a multiple of the sector", NULL);
	}
	p->flash_fd = open(flash_path, O_RDWR | O_CREAT, 0600);
	if (p->flash_fd < 0 || fstat(p->flash_fd, &sb) != 0) {
		return failf(p, "opening the slot", flash_path);
	}
	if (sb.st_size == 0) {
		/* A new slot is erased, as flash comes from the factory. */
		uint32_t s;
		int saved = p->timing;

		p->timing = 0;
		for (s = 0; s < slot_size / FOTA_SECTOR_SIZE; s++) {
			if (flash_erase(p, s) != 0) {
				return -1;
			}
		}
		p->timing = saved;
	} else if ((uint64_t)sb.st_size != slot_size) {
		errno = 0;
		snprintf(p->err, sizeof p->err, "slot %s holds %lld bytes, not %lu (--slot-size)",
		         flash_path, (long long)sb.st_size, (unsigned long)slot_size);
		return -1;
	}
	p->rng_fd = open("/dev/urandom", O_RDONLY);
	if (p->rng_fd < 0) {
		return failf(p, "opening", "/dev/urandom");
	}
	return 0;
}

void fota_posix_close(struct fota_posix *p)
{
	if (p->flash_fd >= 0) close(p->flash_fd);
	if (p->rng_fd >= 0) close(p->rng_fd);
	p->flash_fd = p->rng_fd = -1;
}

void fota_posix_callbacks(struct fota_posix *p, struct fota_config *cfg)
{
	cfg->arg = p;
	cfg->random = random_bytes;
	cfg->flash_erase = flash_erase;
	cfg->flash_write = flash_write;
	cfg->flash_read = flash_read;
	cfg->flash_sync = flash_sync;
	cfg->state_load = fota_posix_state_load;
	cfg->state_save = fota_posix_state_save;
}

/* ------------------------------------------------------------------ */
/* A blocking session on top of the push API                          */
/* ------------------------------------------------------------------ */

static int send_all(int fd, const uint8_t *b, size_t n)
{
	while (n > 0) {
		ssize_t r = send(fd, b, n, MSG_NOSIGNAL);

		if (r < 0) {
			if (errno == EINTR) continue;
			return -1;
		}
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Whether a byte is waiting on fd (or it is closed or failed: a read won't block). */
static int readable(int fd)
{
	struct pollfd pfd;

	pfd.fd = fd;
	pfd.events = POLLIN;
	pfd.revents = 0;
	return poll(&pfd, 1, 0) != 0;
}

enum fota_event fota_posix_session(struct fota_ctx *ctx, int fd, struct fota_posix *port,
                                   int erase_ahead,
                                   void (*on_event)(void *arg, struct fota_ctx *ctx,
                                                    enum fota_event ev),
                                   void *arg)
{
	uint8_t in[4096];
	const uint8_t *p = in;
	size_t len = 0, used, n;
	enum fota_event ev = fota_start(ctx);

	for (;;) {
		if (on_event != NULL) {
			on_event(arg, ctx, ev);
		}
		if (fota_is_final(ev)) {
			return ev;
		}
		if (ev == FOTA_EV_SEND) {
			const uint8_t *tx = fota_tx(ctx, &n);

			if (send_all(fd, tx, n) != 0) {
				ev = fota_close(ctx);
				continue;
			}
		} else if (ev == FOTA_EV_NEED_MORE) {
			ssize_t r;

			/* Idle: the flash works while the network fills the socket buffer. */
			while (erase_ahead && !readable(fd) &&
			       (ev = fota_erase_ahead(ctx)) == FOTA_EV_PROGRESS) {
				port->erased_ahead++;
			}
			if (ev != FOTA_EV_NEED_MORE && ev != FOTA_EV_PROGRESS) {
				continue;   /* the erase failed: its Alert, then the error */
			}
			ev = FOTA_EV_NEED_MORE;
			do {
				r = recv(fd, in, sizeof in, 0);
			} while (r < 0 && errno == EINTR);
			if (r <= 0) {
				/* The gateway closed, or the read timed out: a Final
				 * that has not come will not. */
				ev = fota_close(ctx);
				continue;
			}
			p = in;
			len = (size_t)r;
		}
		ev = fota_feed(ctx, p, len, &used);
		p += used;
		len -= used;
	}
}
