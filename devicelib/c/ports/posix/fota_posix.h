/*
 * fota_posix.h - the fotagate device library on a POSIX host.
 *
 * A port is a leaf: it implements fota.h's callbacks and the core never
 * includes it. This one keeps the update slot in a file that behaves
 * like NOR flash (writes only to erased bytes, 4-byte aligned), with an
 * optional ESP8266 timing model; the durable state in a file replaced
 * atomically, in the Go device's format (devicelib/state.go), so either
 * device can pick up the other's download; random bytes from
 * /dev/urandom; and a blocking session over a connected socket on top of
 * the push API. The command-line device fotadev.c is built on it.
 */
#ifndef FOTA_POSIX_H
#define FOTA_POSIX_H

#include <stddef.h>
#include <stdint.h>

#include "fota.h"

/*
 * ESP8266 flash timing (the typical figures of its 25Q-series SPI flash, as
 * devicelib's TimedFlash): per sector erased, per 256 B page a write touches.
 */
#define FOTA_POSIX_ERASE_US 45000
#define FOTA_POSIX_PAGE_US  800
#define FOTA_POSIX_PAGE     256

/* The Go device's state encoding: 157 bytes with a CRC-32C. */
#define FOTA_POSIX_STATE_SIZE 157

struct fota_posix {
	int flash_fd;
	uint32_t slot_size;
	int timing;                /* sleep as long as ESP8266 flash would */
	/* How the timing model sleeps, in microseconds: NULL is nanosleep. Tests
	 * count the time here instead of spending it. */
	void (*sleep_us)(void *arg, long us);
	void *sleep_arg;
	unsigned long erased_ahead; /* sectors fota_posix_session erased ahead */
	const char *state_path;
	const char *device_class;  /* the state file names it; a mismatch is refused */
	int rng_fd;
	char err[256];             /* the last failure, for people */
};

/*
 * Opens (creating it erased if missing) the slot file of slot_size bytes
 * and /dev/urandom. Returns 0, or -1 with p->err set.
 */
int fota_posix_open(struct fota_posix *p, const char *flash_path, uint32_t slot_size,
                    const char *state_path, const char *device_class, int timing);

void fota_posix_close(struct fota_posix *p);

/* Points cfg's callbacks (and arg) at p. */
void fota_posix_callbacks(struct fota_posix *p, struct fota_config *cfg);

/* The state callbacks, also for use outside a session (fota_confirm, reports). */
int fota_posix_state_load(void *p, struct fota_state *st);
int fota_posix_state_save(void *p, const struct fota_state *st);

/*
 * Runs one session over the connected socket fd, blocking: sends what
 * the library asks, reads what the gateway sends, and tells the library
 * when the connection ends (a read timeout set on fd counts as an end).
 * With erase_ahead, whenever no byte waits on fd, it erases the next
 * sector ahead (fota_erase_ahead) before it blocks: the kernel keeps
 * receiving into the socket buffer while the flash is busy, as lwIP
 * would into its window; port (the one behind ctx) counts those sectors.
 * on_event, if not NULL, sees every event. Returns the final event.
 */
enum fota_event fota_posix_session(struct fota_ctx *ctx, int fd, struct fota_posix *port,
                                   int erase_ahead,
                                   void (*on_event)(void *arg, struct fota_ctx *ctx,
                                                    enum fota_event ev),
                                   void *arg);

#endif /* FOTA_POSIX_H */
