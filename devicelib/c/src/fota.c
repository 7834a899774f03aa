/*
 * fota.c - the device role of fotagate protocol v1 as a push state
 * machine (PROTOCOL.md 4, 5, 8.1 and 9).
 *
 * Bytes come in through fota_feed in any split; one frame at a time is
 * assembled in the context's single body buffer (the header goes to
 * ctx->ad, where the AEAD wants it as associated data), after its length
 * has been checked against what the current state expects. Sealed frames
 * are opened in place, and nothing in them is used before the tag has
 * verified. The image goes to flash as it streams, a word at a time, and
 * becomes durable in the order flash, sync, state record, Ack.
 */
#include <string.h>

#include "fota.h"
#include "fota_internal.h"

/* Message types (PROTOCOL.md 3.2). */
enum {
	T_HELLO = 0x01, T_OFFER = 0x02, T_ACCEPT = 0x03, T_DATA = 0x04,
	T_FINAL = 0x05, T_ACK = 0x06, T_REPORT = 0x07, T_ALERT = 0x08,
	T_REJECT = 0x09
};

/* Offer status (4.2). */
enum { OFFER_IMAGE = 0x00, OFFER_UP_TO_DATE = 0x01, OFFER_RETRY = 0x02 };

#define VERSION        0x01
#define SUITE          0x01   /* ChaCha20-Poly1305, HKDF-SHA256 */
#define ND_RANDOM      12     /* Nd = random [12] || boot_counter u32 */
#define NONCE_SIZE     16     /* Nd, Ng */
#define MAC1_SIZE      16
#define RESUME_ID      8      /* of the resume point's SHA-256, in the Hello */
#define HELLO_FIXED    (1 + 1 + 1 + NONCE_SIZE + 4 + 2 + 4 + RESUME_ID + MAC1_SIZE)
#define MANIFEST_FIXED (4 + 4 + 2 + 1 + FOTA_DIGEST_SIZE + 1)
#define FLAG_SIGNED    0x01
#define SIGNATURE_SIZE 64
#define WORD           4u     /* flash program granularity */

typedef char fota_payload_limit_is_2_12[FOTA_PAYLOAD_LIMIT == 1 << 12 ? 1 : -1];

/* A Hello's length fits in its low byte: fota_start writes only that one
 * into ctx->tx, whose high byte fota_init zeroed. */
typedef char fota_hello_short[HELLO_FIXED + FOTA_ID_MAX < 0x100 ? 1 : -1];

/* The session's states (8.1), in the order a session moves through them. */
enum {
	S_IDLE,       /* fota_init done: fota_start sends the Hello */
	S_WAIT_OFFER, /* an Offer or a Reject */
	S_OFFERED,    /* FOTA_EV_OFFER returned: the next call answers it */
	S_RECEIVE,    /* Accept(ok) sent: Data..., then the Final; or an Alert */
	S_VERIFY,     /* Final stored and acknowledged: the next call verifies */
	S_END
};

/* The key schedule's labels (5.1, 5.2): the session keys' are one byte shorter. */
static const char label_mac1[] = "fotagate v1 mac1";
static const char label_g2d[] = "fotagate v1 g2d";
static const char label_d2g[] = "fotagate v1 d2g";
#define LABEL_SIZE(session) ((session) ? sizeof label_g2d - 1 : sizeof label_mac1 - 1)
typedef char fota_labels_alike[sizeof label_g2d == sizeof label_d2g ? 1 : -1];

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/*
 * The u16 at p, through the u32 loader that the manifest's fields need
 * anyway: every caller's p has two more bytes after it in its buffer.
 * GCC's inline byte swap would take 30 bytes more on the LX106, and a
 * loader of its own 14 more.
 */
static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(fota_load32_be(p) >> 16);
}

/* ------------------------------------------------------------------ */
/* Names (3.1)                                                        */
/* ------------------------------------------------------------------ */

/*
 * 1..16 bytes of [A-Za-z0-9._-], the first a letter or digit. One test
 * per byte, the ranges as unsigned differences (wrapping below the
 * range's start): about half the code of a helper per class.
 */
typedef char fota_dash_dot_adjacent['.' == '-' + 1 ? 1 : -1];

static int valid_name(const uint8_t *s, size_t n)
{
	size_t i;

	if (n - 1 >= FOTA_ID_MAX) {   /* n == 0 wraps */
		return 0;
	}
	for (i = 0; i < n; i++) {
		unsigned c = s[i];

		/* '-' and '.' are neighbours in ASCII: one test for both. */
		if (c - '0' >= 10u && (c | 0x20) - 'a' >= 26u &&
		    (i == 0 || (c - '-' >= 2u && c != '_'))) {
			return 0;
		}
	}
	return 1;
}

/*
 * The length of a configured name (NUL-terminated) if it is valid, else
 * 0, also for NULL: one call per name in fota_init.
 */
static size_t config_name(const char *s)
{
	size_t n = 0;

	if (s == NULL) {
		return 0;
	}
	while (n <= FOTA_ID_MAX && s[n] != '\0') {
		n++;
	}
	return valid_name((const uint8_t *)s, n) ? n : 0;
}

/*
 * Whether the configured name want (checked by fota_init) is the n bytes
 * at s. Always inlined, as are erase_next, store and on_frame: GCC 12 at
 * -Os would keep some of them apart or inline them later, and lay out
 * fota_feed with more code (4 to 11 bytes each on the LX106, make size).
 */
FOTA_ALWAYS_INLINE static inline int same_name(const char *want, const uint8_t *s, size_t n)
{
	return config_name(want) == n && memcmp(want, s, n) == 0;
}

/* ------------------------------------------------------------------ */
/* Session end                                                        */
/* ------------------------------------------------------------------ */

static uint32_t max_payload(const struct fota_ctx *ctx)
{
	return ctx->cfg->max_payload != 0 ? ctx->cfg->max_payload : FOTA_MAX_PAYLOAD;
}

/*
 * Moves next_commit on to the next multiple of ack_every, or to
 * UINT32_MAX (past any image: the slot is below it) where that would
 * wrap. prepare steps it up from 0 to the first point past the start:
 * one helper instead of a division there.
 */
static void next_point(struct fota_ctx *ctx)
{
	uint32_t every = ctx->cfg->ack_every != 0 ? ctx->cfg->ack_every : FOTA_ACK_EVERY_DEFAULT;

	ctx->next_commit = ctx->next_commit > UINT32_MAX - every ? UINT32_MAX : ctx->next_commit + every;
}

/*
 * One wipe covers the four secret areas, which end struct fota_ctx in
 * this order (10 bytes less code on the LX106 than two wipes; padding
 * between them is wiped too); the build fails if a field ever follows
 * them, or comes between them.
 */
typedef char fota_wipe_tail[
	offsetof(struct fota_ctx, d2g) - offsetof(struct fota_ctx, g2d) < sizeof(struct fota_dir) + 8 &&
	offsetof(struct fota_ctx, w) - offsetof(struct fota_ctx, d2g) < sizeof(struct fota_dir) + 8 &&
	offsetof(struct fota_ctx, body) - offsetof(struct fota_ctx, w) < sizeof(((struct fota_ctx *)0)->w) + 8 &&
	sizeof(struct fota_ctx) - offsetof(struct fota_ctx, body) < sizeof(((struct fota_ctx *)0)->body) + 8
	? 1 : -1];

/*
 * Ends the session with ev. Keys, the key schedule's working state and
 * the plaintext in the body buffer do not outlive it (5.2). Not
 * inlined: with one wipe GCC would copy it into its callers (135 bytes
 * more on the LX106).
 */
FOTA_NOINLINE static enum fota_event end(struct fota_ctx *ctx, enum fota_event ev)
{
	fota_wipe(&ctx->g2d, sizeof *ctx - offsetof(struct fota_ctx, g2d));
	ctx->state = S_END;
	ctx->end_ev = (uint8_t)ev;
	ctx->next_ev = 0;
	return ev;
}

/*
 * Asks the application to send ctx->tx, then returns ev on the next call
 * (FOTA_EV_NEED_MORE: nothing is owed, the next call reads input).
 */
static enum fota_event send_then(struct fota_ctx *ctx, enum fota_event ev)
{
	ctx->next_ev = (uint8_t)ev;
	return FOTA_EV_SEND;
}

/* A call out of order ends the session, without an Alert. */
static enum fota_event misuse(struct fota_ctx *ctx)
{
	ctx->err = FOTA_ERR_MISUSE;
	return end(ctx, FOTA_EV_ERROR);
}

/* ------------------------------------------------------------------ */
/* Record layer (5.3)                                                 */
/* ------------------------------------------------------------------ */

/*
 * Seals (direction d2g) or opens (g2d) the n bytes at p in place, the
 * tag after them, associated data ctx->ad[0..ad_len). A counter moves
 * only once its record is sealed or its tag verified, so a forged frame
 * changes nothing (and ends the session anyway).
 */
static enum fota_err record(struct fota_ctx *ctx, struct fota_dir *d, uint8_t *p, size_t n,
                            size_t ad_len)
{
	fota_aead_ctx *a = &ctx->w.rx.aead;
	uint32_t c, be = 0;
	int i;

	/* A direction that has used counter 2^32 - 1 is spent. */
	if (d->exhausted) {
		return FOTA_ERR_COUNTER_EXHAUSTED;
	}
	/* nonce = iv XOR (0^32 || counter u64): the counter is u32, so only
	 * the nonce's last word changes, where the counter is big-endian and
	 * the state's word little-endian: XORed into the state byte-swapped,
	 * with no copy of the nonce. */
	fota_chacha20_setup(a->chacha, d->key_iv, d->key_iv + FOTA_AEAD_KEY_SIZE);
	for (i = 0, c = d->counter; i < 4; i++) {
		be = be << 8 | (c & 0xff);
		c >>= 8;
	}
	a->chacha[15] ^= be;
	if (fota_aead_run(a, d == &ctx->d2g, p + n, p, n, ctx->ad, ad_len) != 0) {
		return FOTA_ERR_BAD_RECORD;
	}
	if (++d->counter == 0) {
		d->exhausted = 1;
	}
	return FOTA_OK;
}

static enum fota_err open_record(struct fota_ctx *ctx, uint8_t *p, size_t n, size_t ad_len)
{
	return record(ctx, &ctx->g2d, p, n, ad_len);
}

/*
 * Seals a device message into ctx->tx and asks the application to send
 * it, then returns then (5.3, 5.5). The plaintext follows from the type:
 * Accept and Report carry code || offset, the Ack its offset, the Alert
 * its code. The associated data is the header and, for the Accept, TH2,
 * which waits in ctx->ad after it (4.4).
 */
static enum fota_event send_msg(struct fota_ctx *ctx, uint8_t typ, enum fota_err code,
                                uint32_t offset, enum fota_event then)
{
	uint8_t *tx = ctx->tx, *p = tx + FOTA_HEADER_SIZE;
	size_t n = 0;

	if (typ != T_ACK) {
		p[n++] = (uint8_t)code;
	}
	if (typ != T_ALERT) {
		fota_store32_be(p + n, offset);
		n += 4;
	}
	tx[0] = typ;
	put16(tx + 1, (uint32_t)(n + FOTA_TAG_SIZE));
	memcpy(ctx->ad, tx, FOTA_HEADER_SIZE);
	if (record(ctx, &ctx->d2g, p, n, typ == T_ACCEPT ? FOTA_HEADER_SIZE + FOTA_SHA256_SIZE
	                                                 : FOTA_HEADER_SIZE) != FOTA_OK) {
		/* Not even an Alert could be sealed now: just end. */
		ctx->err = FOTA_ERR_COUNTER_EXHAUSTED;
		return end(ctx, FOTA_EV_ERROR);
	}
	ctx->tx_len = (uint8_t)(FOTA_HEADER_SIZE + n + FOTA_TAG_SIZE);
	return send_then(ctx, then);
}

/*
 * Ends the session with err. Once the gateway streams (after Accept ok)
 * it is owed a reason, so an Alert goes first (5.5). Codes that never
 * travel are reported as malformed.
 */
static enum fota_event fail(struct fota_ctx *ctx, enum fota_err err)
{
	ctx->err = (uint8_t)err;
	if (ctx->state == S_RECEIVE) {
		return send_msg(ctx, T_ALERT, err <= FOTA_ERR_DECLINED ? err : FOTA_ERR_MALFORMED,
		                0, FOTA_EV_ERROR);
	}
	return end(ctx, FOTA_EV_ERROR);
}

/* Refuses or answers in the Accept (4.4); then ends with then. */
static enum fota_event send_accept(struct fota_ctx *ctx, enum fota_err code,
                                   uint32_t offset, enum fota_event then)
{
	if (then == FOTA_EV_ERROR) {
		ctx->err = (uint8_t)code;
	}
	return send_msg(ctx, T_ACCEPT, code, offset, then);
}

/* ------------------------------------------------------------------ */
/* Key schedule (5.1, 5.2)                                            */
/* ------------------------------------------------------------------ */

/*
 * The one hash that is running at any time: the HMAC's inner hash while
 * keys are derived, TH and TH2 and then the image's running hash after
 * them. Both lie at the start of ctx->w, so one helper feeds either, and
 * fota_hmac_sha256_update (a wrapper of the same call) is not linked.
 */
typedef char fota_one_running_hash[
	offsetof(struct fota_ctx, w.hs.hmac.inner) == offsetof(struct fota_ctx, w.rx.sha) ? 1 : -1];

static void absorb(struct fota_ctx *ctx, const uint8_t *p, size_t n)
{
	fota_sha256_update(&ctx->w.rx.sha, p, n);
}

/*
 * HKDF-Expand (RFC 5869 2.3) from w.hs.prk, with the info of 5.1 (label
 * || id_len || device_id) or, for session keys, of 5.2 (label ||
 * version || suite || id_len || device_id || gw_len || gateway_id ||
 * TH). The info is absorbed piece by piece from where it already lies:
 * version, suite and the ID in the Hello in ctx->tx (which has them in
 * that order), the gateway ID in the Offer in the body buffer, TH in
 * ctx->ad. T(i) goes to w.hs.t, where block i + 1 reads it. At most two
 * blocks are needed (44 bytes of key || IV), so T(i - 1) is (i - 1) * 32
 * bytes long: none before the first block.
 */
typedef char fota_expand_two_blocks[
	sizeof(((struct fota_dir *)0)->key_iv) <= 2 * FOTA_SHA256_SIZE ? 1 : -1];

static void expand(struct fota_ctx *ctx, uint8_t *okm, size_t len, const char *label, int session)
{
	fota_hmac_sha256_ctx *h = &ctx->w.hs.hmac;
	uint8_t *t = ctx->w.hs.t;
	size_t skip = session ? 0 : 2;   /* 5.1 has no version || suite */
	uint8_t i;

	for (i = 1; len > 0; i++) {
		size_t n = len < FOTA_SHA256_SIZE ? len : FOTA_SHA256_SIZE;

		fota_hmac_sha256_key(h, ctx->w.hs.prk, FOTA_SHA256_SIZE);
		absorb(ctx, t, (i - 1u) * FOTA_SHA256_SIZE);
		absorb(ctx, (const uint8_t *)label, LABEL_SIZE(session));
		absorb(ctx, ctx->tx + 3 + skip, 3 - skip + ctx->id_len);
		if (session) {
			absorb(ctx, ctx->body.b + NONCE_SIZE, 1u + ctx->body.b[NONCE_SIZE]);
			absorb(ctx, ctx->ad + FOTA_HEADER_SIZE, FOTA_SHA256_SIZE);
		}
		absorb(ctx, &i, 1);
		fota_hmac_sha256_final(h, t);
		memcpy(okm, t, n);
		okm += n;
		len -= n;
	}
}

/* out = HMAC(key, msg), through w.hs.hmac. */
static void hmac(struct fota_ctx *ctx, const uint8_t *key, size_t key_len,
                 const uint8_t *msg, size_t len, uint8_t *out)
{
	fota_hmac_sha256_ctx *h = &ctx->w.hs.hmac;

	fota_hmac_sha256_key(h, key, key_len);
	absorb(ctx, msg, len);
	fota_hmac_sha256_final(h, out);
}

/* PRK = HKDF-Extract(salt, IKM = PSK): the salt is the HMAC key. */
static void extract(struct fota_ctx *ctx, const uint8_t *salt, size_t salt_len)
{
	hmac(ctx, salt, salt_len, ctx->cfg->psk, FOTA_PSK_SIZE, ctx->w.hs.prk);
}

/* 5.1: mac1 over the Hello in ctx->tx, written into its last 16 bytes. */
static void hello_mac1(struct fota_ctx *ctx)
{
	/* The key replaces the PRK, which its one block has used already. */
	uint8_t *key = ctx->w.hs.prk, *t = ctx->w.hs.t;
	size_t n = ctx->tx_len - MAC1_SIZE;

	extract(ctx, NULL, 0);   /* an empty salt: 32 zero bytes, as RFC 5869 says */
	expand(ctx, key, FOTA_SHA256_SIZE, label_mac1, 0);
	hmac(ctx, key, FOTA_SHA256_SIZE, ctx->tx, n, t);
	memcpy(ctx->tx + n, t, MAC1_SIZE);
	fota_wipe(&ctx->w.hs, sizeof ctx->w.hs);
}

/*
 * 5.2: PRK = HKDF-Extract(Nd || Ng, PSK); each direction's key || IV =
 * HKDF-Expand(PRK, info(dir), 44). Nd is in the Hello still in ctx->tx,
 * Ng at the start of the Offer's body; TH in ctx->ad. TH has hashed the
 * Hello, and the info needs only its bytes up to the device ID, so Ng
 * goes right after Nd there: the salt in one piece.
 */
static void derive_keys(struct fota_ctx *ctx)
{
	uint8_t *salt = ctx->tx + 6 + ctx->id_len;

	memcpy(salt + NONCE_SIZE, ctx->body.b, NONCE_SIZE);
	extract(ctx, salt, 2 * NONCE_SIZE);
	expand(ctx, ctx->g2d.key_iv, sizeof ctx->g2d.key_iv, label_g2d, 1);
	expand(ctx, ctx->d2g.key_iv, sizeof ctx->d2g.key_iv, label_d2g, 1);
	fota_wipe(&ctx->w.hs, sizeof ctx->w.hs);
}

/* ------------------------------------------------------------------ */
/* Flash (9.1)                                                        */
/* ------------------------------------------------------------------ */

/*
 * Reads the slot's [off, end) back through the body buffer, whole words
 * at a time (the last may reach up to 3 bytes past end, still inside the
 * slot, whose size is a multiple of the sector), into w.rx.sha (left
 * open); *erased tells whether all were 0xff. A caller that only wants
 * the latter lets hash_slot start the hash afresh afterwards. Reads are
 * of the body buffer's whole words, but of at most 2044 bytes: the most a
 * movi loads on the LX106, so the 2 and 4 KiB builds need no literal
 * (a 4 KiB buffer then reads a 1 MiB slot in 513 calls, not 255).
 */
#define SCAN_CHUNK ((FOTA_BODY_SIZE & ~(WORD - 1)) < 2044u ? (FOTA_BODY_SIZE & ~(WORD - 1)) : 2044u)

static enum fota_err scan_slot(struct fota_ctx *ctx, uint32_t off, uint32_t end, int *erased)
{
	const struct fota_config *cfg = ctx->cfg;
	uint32_t n, i;
	int clean = 1;

	for (; off < end; off += n) {
		n = end - off < SCAN_CHUNK ? end - off : SCAN_CHUNK;
		if (cfg->flash_read(cfg->arg, off, ctx->body.b, (n + WORD - 1) & ~(WORD - 1)) != 0) {
			return FOTA_ERR_FLASH;
		}
		absorb(ctx, ctx->body.b, n);
		for (i = 0; i < n; i++) {
			clean &= ctx->body.b[i] == 0xff;
		}
	}
	*erased = clean;
	return FOTA_OK;
}

/* The running hash of the slot's [0, end), as it reads back (9.1). */
static enum fota_err hash_slot(struct fota_ctx *ctx, uint32_t end)
{
	int erased;

	fota_sha256_init(&ctx->w.rx.sha);
	return scan_slot(ctx, 0, end, &erased);
}

/* The state callback's verdict: nonzero (a flash error) if it failed. */
static int save_state(struct fota_ctx *ctx)
{
	return ctx->cfg->state_save(ctx->cfg->arg, &ctx->st);
}

/*
 * Erases the sector at ctx->erased_to, the next one the image needs: from
 * program() right before its first write, or earlier from
 * fota_erase_ahead(). Below the durable offset an erase would destroy
 * recorded bytes: that would be a bug here, never the gateway's doing.
 */
FOTA_ALWAYS_INLINE static inline int erase_next(struct fota_ctx *ctx)
{
	const struct fota_config *cfg = ctx->cfg;

	if (ctx->erased_to < ctx->durable ||
	    cfg->flash_erase(cfg->arg, ctx->erased_to / FOTA_SECTOR_SIZE) != 0) {
		return 1;
	}
	ctx->erased_to += FOTA_SECTOR_SIZE;
	return 0;
}

/*
 * Programs len bytes (a multiple of 4, 4-byte aligned) at ctx->written,
 * erasing each sector right before the first write into it unless
 * fota_erase_ahead() did already.
 */
static int program(struct fota_ctx *ctx, const uint8_t *data, uint32_t len)
{
	const struct fota_config *cfg = ctx->cfg;
	uint32_t end = ctx->written + len;

	while (ctx->erased_to < end) {
		if (erase_next(ctx) != 0) {
			return 1;
		}
	}
	if (cfg->flash_write(cfg->arg, ctx->written, data, len) != 0) {
		return 1;
	}
	ctx->written = end;
	return 0;
}

static int same_image(const struct fota_image *img, const struct fota_manifest *m)
{
	return img->size != 0 && img->size == m->size &&
	       memcmp(img->digest, m->digest, FOTA_DIGEST_SIZE) == 0;
}

/*
 * Makes [0, pos) durable (9.1): flash synced first, then the record, then
 * (after the frame) the Ack. A cut between any two steps leaves the
 * record at or below what the flash holds. pos is a multiple of
 * ack_every, or the image's end. The record moves only for a download,
 * which prepare has recorded in resume with no pending image: not for a
 * pending image, resumed at its end to be verified again, nor for a
 * download resumed at its recorded end.
 */
static enum fota_err commit(struct fota_ctx *ctx)
{
	const struct fota_config *cfg = ctx->cfg;

	if (cfg->flash_sync(cfg->arg) != 0) {
		return FOTA_ERR_FLASH;
	}
	if (ctx->st.pending.size == 0 && ctx->st.durable != ctx->pos) {
		ctx->st.durable = ctx->pos;
		if (save_state(ctx) != 0) {
			return FOTA_ERR_FLASH;
		}
	}
	ctx->durable = ctx->pos;
	next_point(ctx);
	ctx->ack_due = 1;
	return FOTA_OK;
}

/*
 * Writes the frame's n payload bytes, which lie at the start of the body
 * buffer, at ctx->pos, committing at every durable point they cross and
 * at the image's end. The flash takes whole words from an aligned
 * source, so the bytes of a last partial word wait in ctx->tail and go
 * in front of the next payload, which moves up over its tag (verified,
 * no longer needed; the buffer has its 16 bytes): the buffer then holds
 * the image from ctx->written, a word boundary, on. The image's own last
 * word is padded with 0xff over the tag, which programs nothing: the
 * padding reads back erased. Durable points are multiples of a sector,
 * so no byte waits in the tail at one.
 */
FOTA_ALWAYS_INLINE static inline enum fota_err store(struct fota_ctx *ctx, uint32_t n)
{
	uint8_t *b = ctx->body.b;   /* b[off - base]: image byte off */
	uint32_t base = ctx->written, end = ctx->pos + n, stop, whole;
	enum fota_err err;

	if (ctx->tail_n > 0) {
		memmove(b + ctx->tail_n, b, n);
		memcpy(b, ctx->tail.b, ctx->tail_n);
	}
	memset(b + (end - base), 0xff, WORD - 1);
	for (;;) {
		stop = ctx->next_commit < end ? ctx->next_commit : end;
		whole = stop - ctx->written;
		if (stop == ctx->m.size) {
			whole += WORD - 1;
		}
		whole &= ~(WORD - 1);
		if (whole > 0 && program(ctx, b + (ctx->written - base), whole) != 0) {
			return FOTA_ERR_FLASH;
		}
		ctx->pos = stop;
		if (stop != ctx->next_commit && stop != ctx->m.size) {
			break;
		}
		if ((err = commit(ctx)) != FOTA_OK) {
			return err;
		}
		if (stop == ctx->m.size) {
			ctx->tail_n = 0;
			return FOTA_OK;
		}
	}
	ctx->tail_n = (uint8_t)(end - ctx->written);
	memcpy(ctx->tail.b, b + (ctx->written - base), ctx->tail_n);
	return FOTA_OK;
}

/* on_manifest clears the resume point as the tail of the state from pending on. */
typedef char fota_resume_point_is_the_state_tail[
	offsetof(struct fota_state, resume) == offsetof(struct fota_state, pending) + sizeof(struct fota_image) &&
	offsetof(struct fota_state, durable) == offsetof(struct fota_state, resume) + sizeof(struct fota_image) &&
	sizeof(struct fota_state) == offsetof(struct fota_state, durable) + sizeof(uint32_t) ? 1 : -1];


/* Records the offered image in *img. */
static void set_image(struct fota_image *img, const struct fota_manifest *m)
{
	img->seq = m->seq;
	img->size = m->size;
	memcpy(img->digest, m->digest, FOTA_DIGEST_SIZE);
}

/*
 * pending, resume and durable end struct fota_state: a finished download
 * clears them with one memset from pending on.
 */
typedef char fota_state_tail[
	offsetof(struct fota_state, resume) > offsetof(struct fota_state, pending) &&
	offsetof(struct fota_state, durable) > offsetof(struct fota_state, resume) &&
	offsetof(struct fota_state, durable) + sizeof(uint32_t) == sizeof(struct fota_state) ? 1 : -1];

/*
 * The image a resume point is of: the verified one waiting for a reboot,
 * else the download in progress (size 0 if none).
 */
static const struct fota_image *resume_image(const struct fota_state *st)
{
	return st->pending.size != 0 ? &st->pending : &st->resume;
}

/*
 * 4.1, 9.1: writes the Hello's resume point at p (offset u32 || the first
 * 8 bytes of the image's SHA-256; 0 and zeros for none) and keeps the
 * offset in ctx->start until the Offer says whether the gateway streams
 * from it. A pending image is named whole. A download is named up to its
 * durable offset, backed off to the sector's start when bytes past it in
 * that sector may have been programmed before a cut: rewriting them would
 * need an erase, which takes the start of the sector with it.
 */
static enum fota_err resume_point(struct fota_ctx *ctx, uint8_t *p)
{
	const struct fota_image *img = resume_image(&ctx->st);
	uint32_t off = ctx->st.pending.size != 0 ? img->size : ctx->st.durable;
	enum fota_err err;
	int clean = 0;

	if (off < img->size && off % FOTA_SECTOR_SIZE != 0) {
		/* scan_slot hashes what it reads, into w.rx.sha as fota_init
		 * zeroed it: a meaningless hash, but a valid state to update,
		 * which the Offer's prepare starts afresh. */
		if (off % WORD == 0 &&
		    (err = scan_slot(ctx, off, (off | (FOTA_SECTOR_SIZE - 1)) + 1, &clean)) != FOTA_OK) {
			return err;
		}
		if (!clean) {
			off &= ~(uint32_t)(FOTA_SECTOR_SIZE - 1);
		}
	}
	fota_store32_be(p, off);
	if (off != 0) {   /* else the ID stays zero, as fota_init left ctx->tx */
		memcpy(p + 4, img->digest, RESUME_ID);
	}
	ctx->start = off;
	return FOTA_OK;
}

/*
 * Gets the slot, the state record and the running hash ready for the
 * download from ctx->start, where the gateway already streams from (4.1).
 */
static enum fota_err prepare(struct fota_ctx *ctx)
{
	struct fota_state *st = &ctx->st;
	const struct fota_manifest *m = &ctx->m;
	uint32_t start = ctx->start;
	enum fota_err err;
	int save = 1;   /* the state record changes */

	if (start == 0) {
		/* A new image: recorded before the first erase, so the state
		 * never claims bytes the slot no longer holds. A pending image
		 * is about to be overwritten, so it goes too. */
		memset(&st->pending, 0, sizeof st->pending);
	} else if (st->pending.size != 0) {
		/* The pending image, named whole (start is its size): take the
		 * empty Final, verify again and report, so the gateway learns. */
		save = 0;
	} else {
		/* The download named, from the offset fota_start found safe. */
		save = start != st->durable || st->resume.seq != m->seq;
	}
	if (save) {
		/* For a resume, size and digest are this image's already. */
		set_image(&st->resume, m);
		st->durable = start;
		if (save_state(ctx) != 0) {
			return FOTA_ERR_FLASH;
		}
	}
	/* Never trust an earlier session's hash: only the flash below start. */
	if ((err = hash_slot(ctx, start)) != FOTA_OK) {
		return err;
	}
	ctx->pos = ctx->written = ctx->durable = start;
	/* Rounded up to a sector: start <= slot_size, a multiple of it. */
	ctx->erased_to = (start + FOTA_SECTOR_SIZE - 1) & ~(uint32_t)(FOTA_SECTOR_SIZE - 1);
	ctx->next_commit = 0;
	do {
		next_point(ctx);
	} while (ctx->next_commit <= start);
	return FOTA_OK;
}

/* ------------------------------------------------------------------ */
/* Handshake (4)                                                      */
/* ------------------------------------------------------------------ */

#ifdef FOTA_WITH_ED25519
/*
 * 7.2: whether one of the vendor keys signed the image statement
 * "fotagate image v1" 0x00 | class_len | class | seq | size | sha256,
 * hashed in pieces straight from the manifest p (whose class_len, class,
 * seq and size bytes are the statement's) with no copy. The Offer's seal
 * binds the manifest to this session and the slot is checked against its
 * digest before the image is marked bootable (verify), so a signature
 * checked here covers the image that is installed.
 */
static int vendor_signed(const struct fota_config *cfg, const uint8_t *p, size_t cl)
{
	static const char context[] = "fotagate image v1";   /* sizeof: with its 0x00 */
	const uint8_t *digest = p + 11 + cl;
	fota_ed25519_ctx e;
	uint32_t i;

	if ((digest[FOTA_DIGEST_SIZE] & FLAG_SIGNED) == 0) {
		return 0;
	}
	for (i = 0; i < cfg->vendor_key_count; i++) {
		fota_ed25519_init(&e, digest + FOTA_DIGEST_SIZE + 1, cfg->vendor_keys[i]);
		fota_ed25519_update(&e, (const uint8_t *)context, sizeof context);
		fota_ed25519_update(&e, p + 10, 1 + cl);
		fota_ed25519_update(&e, p, 8);
		fota_ed25519_update(&e, digest, FOTA_DIGEST_SIZE);
		if (fota_ed25519_final(&e) == 0) {
			return 1;
		}
	}
	return 0;
}
#endif

/*
 * The manifest (4.3), which fills the rest of the offer plaintext
 * exactly, into ctx->m. Returns its syntax error, which ends the session;
 * *refuse gets the device's policy refusal, answered in the Accept
 * (checked in the order of the Go reference).
 */
static enum fota_err parse_manifest(struct fota_ctx *ctx, const uint8_t *p, size_t n,
                                    enum fota_err *refuse)
{
	const struct fota_config *cfg = ctx->cfg;
	struct fota_manifest *m = &ctx->m;
	const struct fota_image *named = resume_image(&ctx->st);
	size_t cl;
	uint8_t flags;

	/* The class length bounds the reads here (any value does); valid_name
	 * then holds it to 1..16. p[10] lies in the body buffer however short
	 * the plaintext (the Offer's limit leaves room after it); a class of 0,
	 * which a plaintext too short to hold it may seem to have, valid_name
	 * refuses. */
	if (n < MANIFEST_FIXED + (cl = p[10])) {
		return FOTA_ERR_MALFORMED;
	}
	flags = p[11 + cl + FOTA_DIGEST_SIZE];
	if ((flags & ~FLAG_SIGNED) != 0 ||
	    n != MANIFEST_FIXED + cl + ((flags & FLAG_SIGNED) ? SIGNATURE_SIZE : 0) ||
	    !valid_name(p + 11, cl)) {
		return FOTA_ERR_MALFORMED;
	}
	m->seq = fota_load32_be(p);
	m->size = fota_load32_be(p + 4);
	m->chunk = get16(p + 8);
	memcpy(m->digest, p + 11 + cl, FOTA_DIGEST_SIZE);
	if (m->size == 0) {
		return FOTA_ERR_MALFORMED;
	}
	/* chunk - 1 below FOTA_PAYLOAD_LIMIT, 2^12, as a shift: the LX106
	 * would load the bound of a range check from a literal. */
	if (m->chunk < FOTA_MIN_PAYLOAD || (m->chunk - 1u) >> 12 != 0) {
		return FOTA_ERR_BAD_CHUNK;
	}
	/* 4.1: the gateway streams from the resume point the Hello named if
	 * this is its image by the ID, else from 0. */
	if (ctx->start > m->size || memcmp(named->digest, m->digest, RESUME_ID) != 0) {
		ctx->start = 0;
	}

	/* Without FOTA_WITH_ED25519 the signature (flags bit 0) is not
	 * checked: the device trusts the gateway for the image (7.1). */
	if (!same_name(cfg->device_class, p + 11, cl)) {
		*refuse = FOTA_ERR_WRONG_CLASS;
	} else if (m->seq < ctx->st.running.seq) {
		*refuse = FOTA_ERR_ROLLBACK;
	} else if (m->seq == ctx->st.running.seq) {
		*refuse = FOTA_ERR_DECLINED;
	} else if (m->size > cfg->slot_size) {
		*refuse = FOTA_ERR_TOO_LARGE;
	} else if (m->chunk > max_payload(ctx)) {
		*refuse = FOTA_ERR_BAD_CHUNK;
#ifdef FOTA_WITH_ED25519
	} else if (!vendor_signed(cfg, p, cl)) {
		*refuse = FOTA_ERR_BAD_SIGNATURE;
#endif
	} else if (ctx->start != 0 && !same_image(named, m)) {
		/* The ID matched, the image did not (4.1): the gateway streams
		 * from an offset the slot does not hold for it. Forget the resume
		 * point (pending, resume, durable: the state's tail), so the
		 * next Hello names none and that session starts from 0. */
		memset(&ctx->st.pending, 0, sizeof ctx->st - offsetof(struct fota_state, pending));
		*refuse = save_state(ctx) != 0 ? FOTA_ERR_FLASH : FOTA_ERR_DECLINED;
	}
	return FOTA_OK;
}

/*
 * 4.2: Ng | gw_len | gateway_id | Seal(k_g2d, nonce(0), offer, header || TH).
 * Nothing of the sealed part is read before its tag verified.
 */
static enum fota_event on_offer(struct fota_ctx *ctx)
{
	fota_sha256_ctx *sha = &ctx->w.rx.sha;
	uint8_t *b = ctx->body.b;
	size_t len = ctx->need, gl = b[NONCE_SIZE], clear = NONCE_SIZE + 1 + gl, n;
	const char *gw = ctx->cfg->gateway_id;
	uint8_t *th = ctx->ad + FOTA_HEADER_SIZE;
	enum fota_err err = FOTA_ERR_MALFORMED, refuse = FOTA_OK;

	/* b[NONCE_SIZE] lies in the body buffer whatever len is; a frame
	 * too short to hold it fails the first test whatever it holds, as
	 * clear is at least NONCE_SIZE + 1. */
	if (len < clear + 1 + FOTA_TAG_SIZE ||
	    !valid_name(b + NONCE_SIZE + 1, gl)) {
		goto fail;
	}
	if (gw != NULL && !same_name(gw, b + NONCE_SIZE + 1, gl)) {
		err = FOTA_ERR_AUTH_FAILED;
		goto fail;
	}
	n = len - clear - FOTA_TAG_SIZE;

	/* TH = H(Hello || Offer header || Ng || gw_len || gateway_id) (5.2),
	 * written after the header in ctx->ad: the Offer's associated data. */
	fota_sha256_init(sha);
	absorb(ctx, ctx->tx, ctx->tx_len);
	absorb(ctx, ctx->ad, FOTA_HEADER_SIZE);
	absorb(ctx, b, clear);
	fota_sha256_final(sha, th);
	derive_keys(ctx);

	/* TH2 = H(TH || ciphertext || tag) covers the ciphertext: absorbed
	 * before the open decrypts it in place, finished after. */
	fota_sha256_init(sha);
	absorb(ctx, th, FOTA_SHA256_SIZE);
	b += clear;
	absorb(ctx, b, len - clear);
	if ((err = open_record(ctx, b, n, FOTA_HEADER_SIZE + FOTA_SHA256_SIZE)) != FOTA_OK) {
		goto fail;
	}
	fota_sha256_final(sha, th);   /* TH2, the Accept's associated data */

	err = FOTA_ERR_MALFORMED;
	switch (b[0]) {
	case OFFER_IMAGE:
		if ((err = parse_manifest(ctx, b + 1, n - 1, &refuse)) != FOTA_OK) {
			break;
		}
		if (refuse != FOTA_OK) {
			return send_accept(ctx, refuse, 0, FOTA_EV_ERROR);
		}
		ctx->state = S_OFFERED;
		return FOTA_EV_OFFER;
	case OFFER_UP_TO_DATE:
		if (n != 1) {
			break;
		}
		return send_accept(ctx, FOTA_ERR_DECLINED, 0, FOTA_EV_UP_TO_DATE);
	case OFFER_RETRY:
		if (n != 3) {
			break;
		}
		ctx->m.retry_after = get16(b + 1);
		return send_accept(ctx, FOTA_ERR_DECLINED, 0, FOTA_EV_RETRY);
	}
fail:
	return fail(ctx, err);
}

/*
 * The gateway's code in a Reject or an opened Alert ends the session. A
 * Reject is unauthenticated (4.5): a hint for the log, so nothing durable
 * changes because of it. Unknown codes are failures too (6).
 */
static enum fota_event on_peer_code(struct fota_ctx *ctx, uint8_t code)
{
	ctx->err = code >= FOTA_ERR_AUTH_FAILED && code <= FOTA_ERR_DECLINED ? code : FOTA_ERR_MALFORMED;
	return end(ctx, FOTA_EV_ERROR);
}

/* After FOTA_EV_OFFER: the application's answer, then the Accept. */
static enum fota_event answer_offer(struct fota_ctx *ctx)
{
	enum fota_event ev;
	enum fota_err err = ctx->declined ? FOTA_ERR_DECLINED : prepare(ctx);

	if (err != FOTA_OK) {
		/* No Data may come: refuse in the Accept itself. */
		return send_accept(ctx, err, 0, FOTA_EV_ERROR);
	}
	ev = send_accept(ctx, FOTA_OK, ctx->start, FOTA_EV_NEED_MORE);
	if (ev == FOTA_EV_SEND) {
		ctx->state = S_RECEIVE;
	}
	return ev;
}

/* ------------------------------------------------------------------ */
/* Data stream (5.4, 5.5)                                             */
/* ------------------------------------------------------------------ */

/*
 * 5.4: only the slot as it reads back from flash counts, not the bytes as
 * they streamed past; both must match the manifest. Only then is the
 * image recorded as pending (9.2), and only then does the Report say ok.
 */
static enum fota_event verify(struct fota_ctx *ctx)
{
	struct fota_state *st = &ctx->st;
	enum fota_err code = FOTA_OK;
	int match = 1, pass;

	/* What streamed past, then what reads back: each digest goes to
	 * ctx->ad, free now, and is compared at once (one copy of the code). */
	for (pass = 0; ; pass++) {
		fota_sha256_final(&ctx->w.rx.sha, ctx->ad);
		match &= fota_ct_equal(ctx->ad, ctx->m.digest, FOTA_DIGEST_SIZE);
		if (pass == 1 || (code = hash_slot(ctx, ctx->m.size)) != FOTA_OK) {
			break;
		}
	}
	if (!match && code == FOTA_OK) {
		code = FOTA_ERR_DIGEST_MISMATCH;
	}
	/* Either way the download is over: a bad slot cannot be resumed,
	 * since some byte below the durable offset is wrong. Pending, resume
	 * and durable are cleared together. */
	memset(&st->pending, 0, sizeof *st - offsetof(struct fota_state, pending));
	if (code == FOTA_OK) {
		set_image(&st->pending, &ctx->m);
	}
	if (save_state(ctx) != 0 && code == FOTA_OK) {
		code = FOTA_ERR_FLASH;
	}

	ctx->err = (uint8_t)code;
	return send_msg(ctx, T_REPORT, code, ctx->durable, code == FOTA_OK ? FOTA_EV_DONE : FOTA_EV_ERROR);
}

/*
 * A Data or Final frame, its length already checked (5.3, 5.4). The
 * Final's payload stored, the whole image is made durable and said so,
 * and the next call verifies. The Ack of the whole image is owed like
 * any other durable point; a cut before the Report then resumes at the
 * end and only verifies.
 */
static enum fota_event on_data(struct fota_ctx *ctx)
{
	uint8_t *b = ctx->body.b;
	uint32_t n = (uint32_t)ctx->need - FOTA_TAG_SIZE;
	int final = ctx->ad[0] == T_FINAL;
	enum fota_event ev = FOTA_EV_PROGRESS;
	enum fota_err err;

	/* Associated data: offset u32, and for the Final size u32 || sha256. */
	fota_store32_be(ctx->ad + FOTA_HEADER_SIZE, ctx->pos);
	if (final) {
		fota_store32_be(ctx->ad + FOTA_HEADER_SIZE + 4, ctx->m.size);
		memcpy(ctx->ad + FOTA_HEADER_SIZE + 8, ctx->m.digest, FOTA_DIGEST_SIZE);
	}
	if ((err = open_record(ctx, b, n, FOTA_HEADER_SIZE + (final ? 40u : 4u))) != FOTA_OK ||
	    (absorb(ctx, b, n), err = store(ctx, n)) != FOTA_OK) {
		goto fail;
	}
	if (final) {
		/* store made the whole image durable: verify in the next call. */
		ctx->state = S_VERIFY;
		ev = FOTA_EV_NEED_MORE;
	}
	if (ctx->ack_due) {
		ctx->ack_due = 0;
		return send_msg(ctx, T_ACK, FOTA_OK, ctx->durable, ev);
	}
	return ev;
fail:
	return fail(ctx, err);
}

/* An Alert (5.5) from the gateway: authenticated, it ends the session. */
static enum fota_event on_alert(struct fota_ctx *ctx)
{
	enum fota_err err = open_record(ctx, ctx->body.b, 1, FOTA_HEADER_SIZE);

	if (err != FOTA_OK) {
		return fail(ctx, err);
	}
	return on_peer_code(ctx, ctx->body.b[0]);
}

/* ------------------------------------------------------------------ */
/* Framing (3)                                                        */
/* ------------------------------------------------------------------ */

/*
 * 3.1: the length is judged against the limit of the message the state
 * expects before a single body byte is buffered. During the stream the
 * device knows the exact length of the next frame (5.4).
 */
static enum fota_err check_header(struct fota_ctx *ctx)
{
	uint8_t typ = ctx->ad[0];
	uint32_t len = get16(ctx->ad + 1), lo = 1, hi = 1;   /* a Reject */

	/* fota_feed reads frames in S_WAIT_OFFER and S_RECEIVE only. */
	if (ctx->state == S_WAIT_OFFER) {
		if (typ == T_OFFER) {
			lo = 0;
			hi = FOTA_MAX_OFFER_BODY;
		} else if (typ != T_REJECT) {
			return FOTA_ERR_UNEXPECTED_MESSAGE;
		}
	} else if (typ == T_ALERT) {
		lo = hi = 1 + FOTA_TAG_SIZE;
	} else {
		uint32_t left = ctx->m.size - ctx->pos;

		if (typ != (left > ctx->m.chunk ? T_DATA : T_FINAL)) {
			return FOTA_ERR_UNEXPECTED_MESSAGE;
		}
		lo = hi = (left > ctx->m.chunk ? ctx->m.chunk : left) + FOTA_TAG_SIZE;
	}
	if (len > hi) {
		return FOTA_ERR_FRAME_TOO_LARGE;
	}
	if (len < lo) {
		return FOTA_ERR_MALFORMED;
	}
	ctx->need = len;
	return FOTA_OK;
}

FOTA_ALWAYS_INLINE static inline enum fota_event on_frame(struct fota_ctx *ctx)
{
	switch (ctx->ad[0]) {
	case T_OFFER:
		return on_offer(ctx);
	case T_REJECT:
		return on_peer_code(ctx, ctx->body.b[0]);
	case T_ALERT:
		return on_alert(ctx);
	default:   /* Data or Final: check_header let nothing else through */
		return on_data(ctx);
	}
}

/* ------------------------------------------------------------------ */
/* API                                                                */
/* ------------------------------------------------------------------ */

/* The tag's fields hold this build's sizes (fota.h). */
typedef char fota_abi_tag_fits[
	sizeof(struct fota_ctx) < 0x10000 && sizeof(struct fota_config) < 0x100 ? 1 : -1];

enum fota_err fota_init_abi(struct fota_ctx *ctx, const struct fota_config *cfg,
                            uint32_t abi_tag)
{
	enum fota_err err = FOTA_ERR_ABI;
	size_t id_len;

	if (abi_tag == FOTA_ABI_TAG) {
		memset(ctx, 0, sizeof *ctx);
		ctx->cfg = cfg;
		err = FOTA_ERR_CONFIG;
		if (cfg != NULL && (id_len = config_name(cfg->device_id)) != 0 &&
		    config_name(cfg->device_class) != 0 &&
		    (cfg->gateway_id == NULL || config_name(cfg->gateway_id) != 0) &&
		    cfg->psk != NULL && cfg->random != NULL && cfg->flash_erase != NULL &&
		    cfg->flash_write != NULL && cfg->flash_read != NULL && cfg->flash_sync != NULL &&
		    cfg->state_load != NULL && cfg->state_save != NULL &&
		    (cfg->max_payload == 0 ||
		     (cfg->max_payload >= FOTA_MIN_PAYLOAD && cfg->max_payload <= FOTA_MAX_PAYLOAD)) &&
		    cfg->slot_size != 0 && cfg->slot_size % FOTA_SECTOR_SIZE == 0 &&
		    cfg->ack_every % FOTA_SECTOR_SIZE == 0) {
			ctx->id_len = (uint8_t)id_len;
			return FOTA_OK;   /* S_IDLE, nothing owed */
		}
	}
	/*
	 * On FOTA_ERR_ABI the application's ctx may be smaller than this
	 * build's: only these fields are written, which come first in every
	 * build, before anything a setting sizes. Every later call then
	 * sees a session ended with err.
	 */
	ctx->state = S_END;
	ctx->next_ev = 0;
	ctx->end_ev = FOTA_EV_ERROR;
	ctx->err = (uint8_t)err;
	return err;
}

enum fota_event fota_start(struct fota_ctx *ctx)
{
	const struct fota_config *cfg = ctx->cfg;
	uint8_t *p = ctx->tx;

	if (ctx->state != S_IDLE) {
		return ctx->state == S_END ? (enum fota_event)ctx->end_ev : misuse(ctx);
	}
	/* The boot counter goes into Nd: it is made durable before the
	 * Hello exists (4.1, 9.2), so Nd never repeats, whatever the RNG. */
	if (cfg->state_load(cfg->arg, &ctx->st) != 0) {
		return fail(ctx, FOTA_ERR_FLASH);
	}
	if (++ctx->st.boot_counter == 0) {   /* never saved wrapped */
		return fail(ctx, FOTA_ERR_COUNTER_EXHAUSTED);
	}
	/* The resume point reads the slot; it goes straight to its place in
	 * the Hello, after max_payload. */
	if (save_state(ctx) != 0 ||
	    resume_point(ctx, p + 6 + ctx->id_len + NONCE_SIZE + 6) != FOTA_OK) {
		return fail(ctx, FOTA_ERR_FLASH);
	}

	/* 4.1: version | suite | id_len | device_id | Nd | running_seq |
	 * max_payload | resume_offset | resume_id | mac1 */
	p[0] = T_HELLO;
	p[2] = (uint8_t)(HELLO_FIXED + ctx->id_len);   /* p[1] is 0: see fota_hello_short */
	p[3] = VERSION;
	p[4] = SUITE;
	p[5] = ctx->id_len;
	memcpy(p + 6, cfg->device_id, ctx->id_len);
	p += 6 + ctx->id_len;
	if (cfg->random(cfg->arg, p, ND_RANDOM) != 0) {
		return fail(ctx, FOTA_ERR_RANDOM);
	}
	fota_store32_be(p + ND_RANDOM, ctx->st.boot_counter);
	fota_store32_be(p + NONCE_SIZE, ctx->st.running.seq);
	put16(p + NONCE_SIZE + 4, max_payload(ctx));
	ctx->tx_len = (uint8_t)(FOTA_HEADER_SIZE + HELLO_FIXED + ctx->id_len);
	hello_mac1(ctx);
	ctx->state = S_WAIT_OFFER;
	return FOTA_EV_SEND;
}

enum fota_event fota_feed(struct fota_ctx *ctx, const uint8_t *data, size_t len,
                          size_t *consumed)
{
	enum fota_event ev = FOTA_EV_NEED_MORE;
	enum fota_err err;
	size_t used = 0;

	if (ctx->next_ev != 0) {
		/* The event owed after a FOTA_EV_SEND. */
		ev = (enum fota_event)ctx->next_ev;
		ctx->next_ev = 0;
		if (fota_is_final(ev)) {
			ev = end(ctx, ev);
		}
	} else if (ctx->state == S_OFFERED) {
		ev = answer_offer(ctx);
	} else if (ctx->state == S_VERIFY) {
		ev = verify(ctx);
	} else if (ctx->state == S_END) {
		ev = (enum fota_event)ctx->end_ev;
	} else if (ctx->state == S_IDLE) {
		ev = misuse(ctx);
	} else {
		while (used < len && ev == FOTA_EV_NEED_MORE) {
			/* The header to ctx->ad, the body to the body buffer. */
			uint32_t got = ctx->got, want = FOTA_HEADER_SIZE;
			uint8_t *dst;
			size_t k;

			if (got < FOTA_HEADER_SIZE) {
				dst = ctx->ad + got;
			} else {
				want += ctx->need;
				dst = ctx->body.b + (got - FOTA_HEADER_SIZE);
			}
			k = len - used < want - got ? len - used : want - got;
			memcpy(dst, data + used, k);
			used += k;
			ctx->got = got = (uint32_t)(got + k);
			/* Only the header's last byte lands on got == 3: the body's
			 * first moves it past. */
			if (got == FOTA_HEADER_SIZE && (err = check_header(ctx)) != FOTA_OK) {
				ev = fail(ctx, err);
				break;
			}
			if (got == FOTA_HEADER_SIZE + ctx->need) {
				ctx->got = 0;
				ev = on_frame(ctx);
			}
		}
	}
	*consumed = used;
	return ev;
}

enum fota_event fota_close(struct fota_ctx *ctx)
{
	enum fota_event ev = (enum fota_event)ctx->next_ev;

	if (!fota_is_final(ev)) {
		if (ctx->state == S_END) {
			return (enum fota_event)ctx->end_ev;
		}
		ctx->err = FOTA_ERR_TRUNCATED;
		ev = FOTA_EV_ERROR;
	}
	/* else the last message went out; only its event was not collected. */
	return end(ctx, ev);
}

/*
 * Only while Data streams (S_RECEIVE) and nothing is owed to the
 * application: a failure's Alert must not overwrite a message not yet
 * sent. Only sectors the image will occupy, all at or above erased_to,
 * which is never below the durable offset: a power cut during this erase
 * costs nothing but the erase, as the resume erases from its start
 * sector again.
 */
enum fota_event fota_erase_ahead(struct fota_ctx *ctx)
{
	if (ctx->state != S_RECEIVE || ctx->next_ev != 0 || ctx->erased_to >= ctx->m.size) {
		return FOTA_EV_NEED_MORE;
	}
	if (erase_next(ctx) != 0) {
		return fail(ctx, FOTA_ERR_FLASH);
	}
	return FOTA_EV_PROGRESS;
}

enum fota_err fota_decline(struct fota_ctx *ctx)
{
	if (ctx->state != S_OFFERED) {
		return FOTA_ERR_MISUSE;
	}
	ctx->declined = 1;
	return FOTA_OK;
}

const uint8_t *fota_tx(const struct fota_ctx *ctx, size_t *len)
{
	*len = ctx->tx_len;
	return ctx->tx;
}

enum fota_err fota_error(const struct fota_ctx *ctx)
{
	return (enum fota_err)ctx->err;
}

const struct fota_manifest *fota_manifest(const struct fota_ctx *ctx)
{
	return &ctx->m;
}

uint16_t fota_retry_after(const struct fota_ctx *ctx)
{
	return ctx->m.retry_after;
}

void fota_progress(const struct fota_ctx *ctx, struct fota_progress *p)
{
	p->start = ctx->start;
	p->received = ctx->pos;
	p->durable = ctx->durable;
	p->size = ctx->m.size;
}

enum fota_err fota_confirm(const struct fota_config *cfg)
{
	struct fota_state st;
	enum fota_err err = FOTA_OK;

	if (cfg->state_load(cfg->arg, &st) != 0) {
		return FOTA_ERR_FLASH;
	}
	if (st.pending.size == 0) {
		return FOTA_OK;
	}
	/* The floor only rises; a stale pending image is dropped, not booted. */
	if (st.pending.seq <= st.running.seq) {
		err = FOTA_ERR_ROLLBACK;
	} else {
		st.running = st.pending;
	}
	memset(&st.pending, 0, sizeof st.pending);
	if (cfg->state_save(cfg->arg, &st) != 0) {
		return FOTA_ERR_FLASH;
	}
	return err;
}
