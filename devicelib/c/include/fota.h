/*
 * fota.h - the fotagate device: secure firmware over the air for
 * ESP8266-class microcontrollers (protocol v1, ../../../protocol/PROTOCOL.md).
 *
 * The library is a push state machine: it never reads a socket, never
 * blocks and never allocates. The application owns the connection and
 * one `struct fota_ctx`; it hands received bytes to fota_feed() in
 * whatever pieces the network delivers them (one byte at a time works)
 * and acts on the event each call returns. That fits a receive callback
 * that must return quickly, such as espconn's on the NONOS SDK:
 *
 *     fota_init(&ctx, &cfg);                 once per session
 *     ev = fota_start(&ctx);                 FOTA_EV_SEND: send the Hello
 *     on receive (data, len):
 *         for (;;) {
 *             ev = fota_feed(&ctx, data, len, &used);
 *             data += used; len -= used;
 *             if (ev == FOTA_EV_SEND)      send fota_tx(&ctx, &n), n bytes
 *             else if (ev == FOTA_EV_NEED_MORE) return, wait for more
 *             else if (fota_is_final(ev))  close the connection; done
 *             (FOTA_EV_OFFER and FOTA_EV_PROGRESS are informational)
 *         }
 *     on disconnect: fota_close(&ctx)
 *
 * Everything the device must keep across power loss goes through the
 * state callbacks as one fixed `struct fota_state`; the update slot goes
 * through the flash callbacks. The library orders every write so that a
 * power cut at any point leaves the old image bootable or the new one
 * verified and pending, never a partial image marked bootable
 * (PROTOCOL.md 9).
 *
 * Conventions, as in fota_crypto.h: every name is prefixed fota_; every
 * buffer is caller-owned, with its size stated here; callbacks return 0
 * on success and anything else on failure.
 */
#ifndef FOTA_H
#define FOTA_H

#include <stddef.h>
#include <stdint.h>

#include "fota_crypto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Compile-time settings (define them the same for the library and    */
/* the application: they size struct fota_ctx)                        */
/* ------------------------------------------------------------------ */

/*
 * The largest data-frame payload the device can take, 64..4096 bytes.
 * It sizes the one frame buffer in struct fota_ctx. Larger chunks cost
 * RAM and save per-frame work (19 bytes on the wire, one tag).
 */
#ifndef FOTA_MAX_PAYLOAD
#define FOTA_MAX_PAYLOAD 1024
#endif

/* The flash erase unit in bytes: a power of two, 4 KiB on the ESP8266. */
#ifndef FOTA_SECTOR_SIZE
#define FOTA_SECTOR_SIZE 4096
#endif

/* ------------------------------------------------------------------ */
/* Protocol sizes (PROTOCOL.md 3)                                     */
/* ------------------------------------------------------------------ */

#define FOTA_MIN_PAYLOAD     64
#define FOTA_PAYLOAD_LIMIT   4096  /* largest chunk the protocol allows */
#define FOTA_HEADER_SIZE     3     /* type u8 | length u16 */
#define FOTA_TAG_SIZE        16
#define FOTA_ID_MAX          16    /* device ID, gateway ID, class */
#define FOTA_PSK_SIZE        32
#define FOTA_DIGEST_SIZE     32
#define FOTA_MAX_OFFER_BODY  174
#define FOTA_TX_SIZE         72    /* the longest message a device sends: a Hello */

#if FOTA_MAX_PAYLOAD < FOTA_MIN_PAYLOAD || FOTA_MAX_PAYLOAD > FOTA_PAYLOAD_LIMIT
#error "FOTA_MAX_PAYLOAD must be 64..4096"
#endif
/*
 * Default bytes between durable points: each costs a state save (a
 * 45 ms sector erase on an ESP8266, and wear) and a 20-byte Ack, so
 * 32 KiB keeps both near 0.06% of the image; a cut re-sends at most this.
 */
#ifndef FOTA_ACK_EVERY_DEFAULT
#define FOTA_ACK_EVERY_DEFAULT 32768u
#endif

#if FOTA_SECTOR_SIZE < 256 || (FOTA_SECTOR_SIZE & (FOTA_SECTOR_SIZE - 1)) != 0
#error "FOTA_SECTOR_SIZE must be a power of two of at least 256"
#endif
#if FOTA_ACK_EVERY_DEFAULT % FOTA_SECTOR_SIZE != 0
#error "FOTA_ACK_EVERY_DEFAULT must be a multiple of FOTA_SECTOR_SIZE"
#endif

/*
 * The frame body buffer: the largest data frame's body (chunk + tag) or
 * the largest Offer's. With the 3 header bytes, which the context keeps
 * apart so that the body starts 4-byte aligned, this is the
 * max(19 + FOTA_MAX_PAYLOAD, 177) bytes of PROTOCOL.md 3.3.
 */
#define FOTA_BODY_SIZE (FOTA_MAX_PAYLOAD + FOTA_TAG_SIZE > FOTA_MAX_OFFER_BODY ? \
                        FOTA_MAX_PAYLOAD + FOTA_TAG_SIZE : FOTA_MAX_OFFER_BODY)

/* ------------------------------------------------------------------ */
/* Events and errors                                                  */
/* ------------------------------------------------------------------ */

/* What fota_start, fota_feed and fota_close ask the application to do. */
enum fota_event {
	FOTA_EV_NEED_MORE = 0, /* all input used; call again when bytes arrive */
	FOTA_EV_SEND,          /* send the fota_tx() bytes now, then call fota_feed again */
	FOTA_EV_OFFER,         /* an acceptable image is offered (fota_manifest);
	                          fota_decline may refuse it before the next call */
	FOTA_EV_PROGRESS,      /* a data frame was written (fota_progress) */
	/* Final events: the session is over, its secrets are wiped; close. */
	FOTA_EV_DONE,          /* image verified in flash and recorded as pending */
	FOTA_EV_UP_TO_DATE,    /* nothing newer for this device */
	FOTA_EV_RETRY,         /* gateway still fetching: retry after fota_retry_after() s */
	FOTA_EV_ERROR          /* failed or refused: fota_error() says why */
};

/* Nonzero for the events that end a session. */
#define fota_is_final(ev) ((ev) >= FOTA_EV_DONE)

/*
 * Why a session failed. 0x01..0x0f are the wire codes of PROTOCOL.md 6
 * (the device's own refusals and failures, and codes received in a
 * Reject or Alert); the rest never travel. fota_err_name() gives the
 * protocol's snake_case name for each, as the Go code and the test
 * vectors use.
 */
enum fota_err {
	FOTA_OK = 0x00,
	FOTA_ERR_AUTH_FAILED = 0x01,         /* Reject, or the Offer came from another gateway */
	FOTA_ERR_UNSUPPORTED_VERSION = 0x02,
	FOTA_ERR_BUSY = 0x03,
	FOTA_ERR_MALFORMED = 0x04,
	FOTA_ERR_ROLLBACK = 0x05,            /* offered sequence below the running one */
	FOTA_ERR_WRONG_CLASS = 0x06,
	FOTA_ERR_TOO_LARGE = 0x07,           /* image larger than the slot */
	FOTA_ERR_BAD_SIGNATURE = 0x08,
	FOTA_ERR_DIGEST_MISMATCH = 0x09,     /* slot read back does not match the manifest */
	FOTA_ERR_FLASH = 0x0a,               /* flash_error: a flash or state callback failed */
	FOTA_ERR_UNAVAILABLE = 0x0b,
	FOTA_ERR_TIMEOUT = 0x0c,
	FOTA_ERR_BAD_CHUNK = 0x0d,
	FOTA_ERR_UNSUPPORTED_SUITE = 0x0e,
	FOTA_ERR_DECLINED = 0x0f,            /* same sequence as running, or fota_decline */
	FOTA_ERR_FRAME_TOO_LARGE = 0x10,     /* length over the limit of the state (3.1) */
	FOTA_ERR_UNEXPECTED_MESSAGE = 0x11,
	FOTA_ERR_BAD_RECORD = 0x12,          /* tag check failed: tampered, replayed, reordered */
	FOTA_ERR_TRUNCATED = 0x13,           /* connection closed before the Final */
	FOTA_ERR_COUNTER_EXHAUSTED = 0x14,
	FOTA_ERR_RANDOM = 0x15,              /* the random callback failed */
	FOTA_ERR_CONFIG = 0x16,              /* fota_init refused the configuration */
	FOTA_ERR_MISUSE = 0x17,              /* a call out of order, e.g. feed before start */
	FOTA_ERR_ABI = 0x18                  /* library and application compiled with different
	                                        FOTA_MAX_PAYLOAD, FOTA_SECTOR_SIZE or
	                                        FOTA_WITH_ED25519 (fota_init) */
};

/* "bad_record" and so on; "unknown" for a value outside the enum. */
const char *fota_err_name(enum fota_err err);

/* ------------------------------------------------------------------ */
/* Durable state (PROTOCOL.md 9): the core defines it, the port keeps */
/* it                                                                 */
/* ------------------------------------------------------------------ */

/* One firmware image. size 0 means "none" (the protocol never offers 0). */
struct fota_image {
	uint32_t seq;
	uint32_t size;
	uint8_t  digest[FOTA_DIGEST_SIZE];  /* SHA-256 of the image */
};

struct fota_state {
	/* Incremented and saved by fota_start before each Hello: it keeps
	 * the session nonce fresh even if the RNG repeats after a reboot. */
	uint32_t boot_counter;
	/* The image the device runs; running.seq is the anti-rollback
	 * floor, raised only by fota_confirm after the new image booted. */
	struct fota_image running;
	/* Verified in the slot, waiting for the next boot; size 0 if none. */
	struct fota_image pending;
	/* The image partly downloaded into the slot (size 0 if none), and
	 * the length of its prefix that is written, synced and recorded. */
	struct fota_image resume;
	uint32_t durable;
};

/* ------------------------------------------------------------------ */
/* Configuration: the device, its platform callbacks                  */
/* ------------------------------------------------------------------ */

/*
 * Read through a pointer for the whole session, so it must outlive the
 * context. It and the strings and key it points to must be readable
 * with byte loads (on the ESP8266: RAM, not .irom).
 */
struct fota_config {
	const char    *device_id;    /* NUL-terminated, 1..16 of [A-Za-z0-9._-] */
	const char    *device_class; /* same rules, e.g. "esp8266-4m" */
	const char    *gateway_id;   /* NULL: any gateway; else only this one */
	const uint8_t *psk;          /* FOTA_PSK_SIZE bytes, this device's own key */
	uint32_t max_payload;        /* announced chunk limit, 64..FOTA_MAX_PAYLOAD; 0 = FOTA_MAX_PAYLOAD */
	uint32_t slot_size;          /* update slot bytes, a multiple of FOTA_SECTOR_SIZE */
	/*
	 * Bytes between durable points: flash sync, state save and an Ack
	 * (so also the most a cut can cost). A multiple of
	 * FOTA_SECTOR_SIZE; 0 means FOTA_ACK_EVERY_DEFAULT. Fewer points wear
	 * the state sector less and send fewer Acks; any value above the
	 * image size leaves only the end.
	 */
	uint32_t ack_every;

	void *arg;                   /* passed to every callback */

	/* Fills buf with len (12) bytes from the best RNG the device has. */
	int (*random)(void *arg, uint8_t *buf, size_t len);

	/*
	 * The update slot, addressed from 0 to slot_size. write() gets a
	 * 4-byte aligned offset, length and data pointer, and only ever
	 * programs bytes erased since the image started; the library erases
	 * each sector (index = offset / FOTA_SECTOR_SIZE) right before it
	 * first writes into it, or earlier in fota_erase_ahead(). read()
	 * gets a 4-byte aligned offset, length and buffer. sync() returns
	 * once everything written is durable. Slow callbacks (a sector
	 * erase, a read back of the whole slot) run inside fota_feed: feed
	 * the watchdog in them if needed.
	 */
	int (*flash_erase)(void *arg, uint32_t sector);
	int (*flash_write)(void *arg, uint32_t offset, const uint8_t *data, size_t len);
	int (*flash_read)(void *arg, uint32_t offset, uint8_t *buf, size_t len);
	int (*flash_sync)(void *arg);

	/*
	 * The durable state. load() of a device that never saved fills a
	 * zero state (and its factory running image, if it knows one).
	 * save() must be atomic: after a power cut, load() returns either
	 * the old state or the new one.
	 */
	int (*state_load)(void *arg, struct fota_state *st);
	int (*state_save)(void *arg, const struct fota_state *st);

#ifdef FOTA_WITH_ED25519
	/*
	 * Compile-time option FOTA_WITH_ED25519 (off by default; define it
	 * for the library and the application alike, and link
	 * src/fota_sha512.c and src/fota_ed25519.c): the vendor's Ed25519
	 * public keys (PROTOCOL.md 7). An offer is taken only if its
	 * manifest carries a signature over the image statement (7.2) that
	 * one of these keys verifies; any other is refused in the Accept
	 * with bad_signature (4.3), before a byte of flash is touched, so no
	 * image the vendor did not sign can be marked bootable. With no keys
	 * (count 0) every offer is refused: the build asked for signatures.
	 * vendor_key_count keys of 32 bytes each, in byte-readable memory.
	 */
	const uint8_t (*vendor_keys)[FOTA_ED25519_KEY_SIZE];
	uint32_t vendor_key_count;
#endif
};

/* The image offered, after FOTA_EV_OFFER (and in every later state). */
struct fota_manifest {
	uint32_t seq;
	uint32_t size;
	uint16_t chunk;          /* payload of every Data frame */
	uint16_t retry_after;    /* seconds, with FOTA_EV_RETRY */
	uint8_t  digest[FOTA_DIGEST_SIZE];
};

struct fota_progress {
	uint32_t start;     /* offset this session resumed from (before the
	                       Offer: the resume point its Hello named) */
	uint32_t received;  /* image bytes received and written so far */
	uint32_t durable;   /* synced and recorded: a resume starts here */
	uint32_t size;      /* of the image; 0 before the offer */
};

/* ------------------------------------------------------------------ */
/* The session context                                                */
/* ------------------------------------------------------------------ */

/* One traffic direction (PROTOCOL.md 5.3): key || IV, next counter. */
struct fota_dir {
	uint8_t  key_iv[FOTA_AEAD_KEY_SIZE + FOTA_AEAD_NONCE_SIZE];
	uint32_t counter;
	uint8_t  exhausted;   /* counter 2^32 - 1 has been used */
};

/*
 * All of a session's state, owned by the caller (static or stack; on the
 * ESP8266 about 800 bytes plus FOTA_BODY_SIZE). Its fields are private.
 */
struct fota_ctx {
	/* Small fields first: the LX106 reaches bytes at offsets below 256
	 * and halfwords below 512 in one instruction, so this keeps code small. */
	const struct fota_config *cfg;
	uint8_t state;               /* the state machine of PROTOCOL.md 8.1 */
	uint8_t next_ev;             /* event owed after a FOTA_EV_SEND, or 0 */
	uint8_t end_ev;              /* the final event, once over */
	uint8_t err;                 /* enum fota_err */
	uint8_t declined;            /* fota_decline was called */
	uint8_t ack_due;             /* a durable point passed in this frame */
	uint8_t id_len;
	uint8_t tail_n;              /* image bytes waiting in tail for a whole word */
	uint32_t got;                /* bytes of the current frame received */
	uint32_t need;               /* its body length, once the header is in */
	uint8_t  tx_len;
	/* Image bookkeeping, as offsets into the slot (PROTOCOL.md 5.4, 9.1). */
	uint32_t start;              /* resumed from */
	uint32_t pos;                /* next payload byte */
	uint32_t written;            /* programmed: pos rounded down to a word */
	uint32_t durable;            /* synced and recorded */
	uint32_t next_commit;        /* next durable point */
	uint32_t erased_to;          /* end of the sectors erased, a sector boundary */
	union { uint32_t align; uint8_t b[4]; } tail;

	struct fota_manifest m;
	/* The received frame's header, then the rest of its associated data
	 * (TH; offset, size, digest), so the AEAD reads it in one piece. */
	uint8_t  ad[FOTA_HEADER_SIZE + 4 + 4 + FOTA_DIGEST_SIZE];
	uint8_t  tx[FOTA_TX_SIZE];   /* the message to send on FOTA_EV_SEND */
	struct fota_state st;        /* working copy; saved at each durable point */
	struct fota_dir g2d, d2g;

	/* Working memory: the handshake's and the data phase's never overlap. */
	union {
		struct {
			fota_hmac_sha256_ctx hmac;
			uint8_t prk[FOTA_SHA256_SIZE];
			uint8_t t[FOTA_SHA256_SIZE];
		} hs;
		struct {
			fota_sha256_ctx sha;     /* TH2, then the image as it streams */
			fota_aead_ctx aead;
		} rx;
	} w;

	union { uint32_t align; uint8_t b[FOTA_BODY_SIZE]; } body;
};

/* ------------------------------------------------------------------ */
/* Calls                                                              */
/* ------------------------------------------------------------------ */

/*
 * The build settings as this compilation sees them: sizeof(struct
 * fota_ctx) in bits 0..15, sizeof(struct fota_config) in bits 16..23,
 * FOTA_WITH_ED25519 in bit 24, and in bits 25..30 FOTA_SECTOR_SIZE
 * mod 37, which tells every power of two up to 2^35 apart (2 generates
 * the units mod 37). fota_init passes the application's tag to the
 * library, which compares it with its own.
 */
#ifdef FOTA_WITH_ED25519
#define FOTA_ABI_ED25519 1u
#else
#define FOTA_ABI_ED25519 0u
#endif
#define FOTA_ABI_TAG ((uint32_t)sizeof(struct fota_ctx) | \
                      (uint32_t)sizeof(struct fota_config) << 16 | \
                      FOTA_ABI_ED25519 << 24 | (uint32_t)(FOTA_SECTOR_SIZE % 37) << 25)

/*
 * Checks cfg and prepares ctx for one session. Returns FOTA_OK,
 * FOTA_ERR_CONFIG (an ID or class outside the rules, a max_payload
 * outside 64..FOTA_MAX_PAYLOAD, a slot or ack_every that is not a
 * multiple of FOTA_SECTOR_SIZE, a missing callback), or FOTA_ERR_ABI:
 * the application was compiled with other settings than the library
 * (FOTA_MAX_PAYLOAD, FOTA_SECTOR_SIZE, FOTA_WITH_ED25519), so its
 * struct fota_ctx or fota_config has another size. Then only the first
 * few bytes of ctx, laid out alike in every build, are written (no
 * memset of the library's sizeof), and every later call on ctx returns
 * FOTA_EV_ERROR.
 *
 * A macro, so that the tag is evaluated in the application's build;
 * call fota_init, not fota_init_abi.
 */
#define fota_init(ctx, cfg) fota_init_abi((ctx), (cfg), FOTA_ABI_TAG)
enum fota_err fota_init_abi(struct fota_ctx *ctx, const struct fota_config *cfg,
                            uint32_t abi_tag);

/*
 * Starts the session: loads the state, increments the boot counter and
 * saves it, and only then builds the Hello (PROTOCOL.md 4.1, 9.2), so no
 * application can forget to. The Hello names the resume point: to check
 * that the slot past a durable offset inside a sector is still erased,
 * this reads up to the end of that sector. Returns FOTA_EV_SEND (send the
 * Hello), or FOTA_EV_ERROR (FOTA_ERR_FLASH if the state could not be
 * loaded or saved, or that read failed; nothing is sent then).
 */
enum fota_event fota_start(struct fota_ctx *ctx);

/*
 * Consumes up to len received bytes (data may be NULL when len is 0) and
 * sets *consumed (never NULL) to how many it used; the rest must be
 * passed again in the next call. Frames may be split anywhere, and the
 * gateway's first data frames may come with the Offer, before the Accept
 * is sent (PROTOCOL.md 4.4): FOTA_EV_OFFER leaves them unused, to be
 * passed again after the Accept. Each frame's length is
 * checked against the limit of the current state before any of its
 * body is buffered (PROTOCOL.md 3.1), and every sealed frame is
 * authenticated before anything in it is used.
 *
 * Returns after each event: call again, with the remaining bytes or
 * none, until it returns FOTA_EV_NEED_MORE or a final event. After
 * FOTA_EV_SEND the bytes at fota_tx() must be sent before the next call
 * overwrites them. A frame that completes a durable point, or the Final,
 * runs flash callbacks (erase, sync, read back) inside this call.
 */
enum fota_event fota_feed(struct fota_ctx *ctx, const uint8_t *data, size_t len,
                          size_t *consumed);

/*
 * Erase ahead: erases the next sector the image will need, which
 * fota_feed would otherwise erase inside the call that first writes into
 * it. Flash, not the cipher, bounds the device (an ESP8266 sector erase
 * takes about 45 ms, as long as 4 KiB take at 730 kbit/s): call this
 * while the receive path is idle, e.g. from a low-priority task posted
 * after fota_feed returned FOTA_EV_NEED_MORE, so the erase runs while
 * the network delivers into the TCP buffers, not while data waits in
 * the receive callback. One sector per call (one flash_erase), so each
 * call is bounded; call again while it returns FOTA_EV_PROGRESS.
 *
 * It erases only sectors of the image at or past everything written,
 * never a sector holding durable data, and only while the image streams
 * (after the Accept, before the Final) with no event owed. A power cut
 * during it is harmless: the resume starts at the durable offset and
 * erases from there again. Optional: without it each sector is erased
 * right before its first write, as before.
 *
 * Returns FOTA_EV_PROGRESS (a sector was erased), FOTA_EV_NEED_MORE
 * (nothing to erase now: not streaming, an event owed, or the whole
 * image's sectors erased), or, if flash_erase failed, what fota_feed
 * returns on a failure: FOTA_EV_SEND (an Alert flash_error; send it),
 * after which fota_feed returns FOTA_EV_ERROR.
 */
enum fota_event fota_erase_ahead(struct fota_ctx *ctx);

/*
 * The connection closed (or the application gives up, e.g. on a
 * timeout). Ends a session still running with FOTA_ERR_TRUNCATED and
 * wipes its secrets; returns the session's final event. Calling it on an
 * ended session is harmless.
 */
enum fota_event fota_close(struct fota_ctx *ctx);

/*
 * After FOTA_EV_OFFER only: refuse the offer (e.g. on low battery). The
 * next fota_feed answers the gateway with "declined" and ends the
 * session with FOTA_ERR_DECLINED. Returns FOTA_ERR_MISUSE at any other time.
 */
enum fota_err fota_decline(struct fota_ctx *ctx);

/* The message to send after FOTA_EV_SEND: *len (at most FOTA_TX_SIZE) bytes. */
const uint8_t *fota_tx(const struct fota_ctx *ctx, size_t *len);

/* Why the session failed, after FOTA_EV_ERROR; FOTA_OK otherwise. */
enum fota_err fota_error(const struct fota_ctx *ctx);

/* The offer (zero before one arrived). */
const struct fota_manifest *fota_manifest(const struct fota_ctx *ctx);

/* Seconds the gateway asked to wait, after FOTA_EV_RETRY. */
uint16_t fota_retry_after(const struct fota_ctx *ctx);

void fota_progress(const struct fota_ctx *ctx, struct fota_progress *p);

/*
 * For the new image once it has booted and checked itself (MCUboot's
 * "confirm"): makes the pending image the running one, raising the
 * anti-rollback floor (PROTOCOL.md 9.2). Returns FOTA_OK (also when
 * nothing is pending), FOTA_ERR_ROLLBACK if the pending image is not
 * newer than the running one (it is dropped), or FOTA_ERR_FLASH.
 * Only cfg's state callbacks are used.
 */
enum fota_err fota_confirm(const struct fota_config *cfg);

#ifdef __cplusplus
}
#endif

#endif /* FOTA_H */
