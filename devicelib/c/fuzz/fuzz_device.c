/*
 * fuzz_device.c - libFuzzer harness for what fota_feed does with bytes
 * from the network (framing, the Offer, the record layer, the data
 * stream, verification), under AddressSanitizer and UBSan.
 *
 * One source, three targets (FUZZ_MODE), because a fuzzer cannot forge a
 * Poly1305 tag: mutated sealed frames die at the tag check, so the code
 * behind it needs a harness that seals what the fuzzer chooses.
 *
 *   FUZZ_RAW     the device from its first byte: fota_start, then the
 *                input as the gateway's stream. Reaches framing, length
 *                rules, Reject, the Offer's clear part and tag check. With
 *                the vector transcript as seed it reaches a whole update.
 *   FUZZ_SESSION the handshake of v1.json's first session is completed
 *                first (its Offer, byte for byte), then the input as the
 *                stream: Data/Final framing and their tag checks.
 *   FUZZ_SEALED  the input is plaintext records; the harness derives the
 *                session keys from the device's Hello (as a gateway does),
 *                seals each record with the right counter and associated
 *                data, and feeds it: the Offer and manifest parsers, the
 *                device's policy, writes, durable points, resume, Final and
 *                verification all see fuzzer-chosen content.
 *
 * Input layout (all modes): split count k (low 3 bits of byte 0; bit 3:
 * call fota_erase_ahead whenever the library waits for bytes), then k
 * piece sizes (each byte + 1): the bytes are fed to fota_feed in pieces of
 * those sizes, cycling (k = 0: as one piece). FUZZ_SEALED then takes a
 * flags byte (bit 0: decline the offer; bit 1: start with a resume record
 * of the harness's own image, partly in flash; bits 2-4: a callback to
 * fail, bits 5-7: at which of its calls, 1..8) and records
 * `type u8 | length u16 | plaintext`; the first is the Offer's plaintext.
 *
 * The simulated flash and state store abort on any broken promise of
 * fota.h (alignment, bounds, erase before write, NOR rules, durable
 * offset ahead of a sync), and after a session the harness checks that
 * FOTA_EV_DONE only ever comes with the manifest's digest in the slot.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fota.h"

#define FUZZ_RAW     1
#define FUZZ_SESSION 2
#define FUZZ_SEALED  3
#ifndef FUZZ_MODE
#error "define FUZZ_MODE"
#endif

#define SLOT_SIZE (64u * 1024u)
#define SECTORS   (SLOT_SIZE / FOTA_SECTOR_SIZE)
/* The harness's own image for resume (FUZZ_SEALED flag bit 1). */
#define RESUME_SIZE 9000u
#define RESUME_SEQ  4u
#define RESUME_DURABLE (FOTA_SECTOR_SIZE + 1000u)

static void check(int ok)
{
	if (!ok) {
		abort();   /* libFuzzer reports it as a crash, with the input */
	}
}

/* ---- session 0 of protocol/testdata/vectors/v1.json ("signed chunk 256") ---- */

static const uint8_t psk[FOTA_PSK_SIZE] = {
	0x27, 0x0c, 0xbd, 0x98, 0xef, 0x10, 0x81, 0xc0, 0x5e, 0x3e, 0x1f, 0x23, 0x93, 0xb4, 0xe6, 0xec,
	0xeb, 0xfa, 0xa0, 0xe5, 0x98, 0xf8, 0x54, 0x95, 0x67, 0xda, 0xe6, 0x7c, 0xc4, 0xec, 0x33, 0x56,
};
static const uint8_t nd_random[12] = {
	0x13, 0xbe, 0x6d, 0xdc, 0xf7, 0xc8, 0x6d, 0x9e, 0x4b, 0x48, 0x8b, 0x2f,
};
#define VECTOR_BOOT_COUNTER 41u   /* after fota_start's increment */
#define VECTOR_RUNNING_SEQ  3u

#ifdef FOTA_WITH_ED25519
/* The vendor key that signed the session's manifest (v1.json
 * vendor_public_key): built with the option, the sealed target also
 * fuzzes the signature check (FUZZ_TARGET signed). */
static const uint8_t vendor_keys[1][FOTA_ED25519_KEY_SIZE] = { {
#include "vendor_key.inc"
} };
#endif

#if FUZZ_MODE == FUZZ_SESSION
/* The session's Offer frame on the wire (v1.json sessions[0].wire.offer). */
static const uint8_t vector_offer[] = {
#include "offer.inc"
};
#endif

/* ---- simulated platform ---- */

static uint8_t slot[SLOT_SIZE] __attribute__((aligned(4)));
static uint8_t erased[SECTORS];
static long resumed_sector;
static uint32_t synced_to, written_to;
static struct fota_state stored;

/* FUZZ_SEALED: the fail_n-th call of one callback fails, as flash can. */
enum { OP_NONE, OP_ERASE, OP_WRITE, OP_READ, OP_SYNC, OP_LOAD, OP_SAVE, OP_RANDOM };
static unsigned fail_op, fail_n;

static int failing(unsigned op)
{
	return op == fail_op && fail_n > 0 && --fail_n == 0;
}

static int cb_random(void *arg, uint8_t *out, size_t len)
{
	(void)arg;
	if (failing(OP_RANDOM)) {
		return -1;
	}
	check(len == sizeof nd_random);
	memcpy(out, nd_random, len);
	return 0;
}

static int cb_erase(void *arg, uint32_t sector)
{
	(void)arg;
	if (failing(OP_ERASE)) {
		return -1;
	}
	check(sector < SECTORS);
	memset(slot + (size_t)sector * FOTA_SECTOR_SIZE, 0xff, FOTA_SECTOR_SIZE);
	erased[sector] = 1;
	return 0;
}

static int cb_write(void *arg, uint32_t off, const uint8_t *data, size_t len)
{
	size_t i;

	(void)arg;
	if (failing(OP_WRITE)) {
		return -1;
	}
	check(off % 4 == 0 && len % 4 == 0 && ((uintptr_t)data & 3) == 0);
	check(len > 0 && (uint64_t)off + len <= SLOT_SIZE);
	for (i = off / FOTA_SECTOR_SIZE; i <= (off + len - 1) / FOTA_SECTOR_SIZE; i++) {
		check(erased[i] || (long)i == resumed_sector);
	}
	for (i = 0; i < len; i++) {
		check(slot[off + i] == 0xff);   /* NOR: only erased bytes program */
	}
	memcpy(slot + off, data, len);
	if (off + len > written_to) {
		written_to = (uint32_t)(off + len);
	}
	return 0;
}

static int cb_read(void *arg, uint32_t off, uint8_t *out, size_t len)
{
	(void)arg;
	if (failing(OP_READ)) {
		return -1;
	}
	check(off % 4 == 0 && len % 4 == 0 && ((uintptr_t)out & 3) == 0);
	check((uint64_t)off + len <= SLOT_SIZE);
	memcpy(out, slot + off, len);
	return 0;
}

static int cb_sync(void *arg)
{
	(void)arg;
	if (failing(OP_SYNC)) {
		return -1;
	}
	synced_to = written_to;
	return 0;
}

static int cb_load(void *arg, struct fota_state *st)
{
	(void)arg;
	if (failing(OP_LOAD)) {
		return -1;
	}
	*st = stored;
	return 0;
}

static int cb_save(void *arg, const struct fota_state *st)
{
	(void)arg;
	if (failing(OP_SAVE)) {
		return -1;
	}
	/* 9.1: the record never claims bytes that were not synced first. */
	check(st->resume.size == 0 || st->durable <= synced_to);
	check(st->durable <= st->resume.size || st->resume.size == 0);
	stored = *st;
	return 0;
}

static const struct fota_config cfg = {
	.device_id = "boiler-17",
	.device_class = "esp8266-4m",
	.gateway_id = NULL,
	.psk = psk,
#if FUZZ_MODE == FUZZ_SEALED
	.max_payload = 0,           /* FOTA_MAX_PAYLOAD: every chunk size */
	.ack_every = FOTA_SECTOR_SIZE,   /* a durable point in every sector */
#else
	.max_payload = 256,         /* as the vector's Hello says */
	.ack_every = 0,
#endif
	.slot_size = SLOT_SIZE,
	.arg = NULL,
	.random = cb_random,
	.flash_erase = cb_erase,
	.flash_write = cb_write,
	.flash_read = cb_read,
	.flash_sync = cb_sync,
	.state_load = cb_load,
	.state_save = cb_save,
#ifdef FOTA_WITH_ED25519
	.vendor_keys = vendor_keys,
	.vendor_key_count = 1,
#endif
};

/* The image a FUZZ_SEALED resume record describes: deterministic bytes. */
static uint8_t resume_byte(uint32_t i)
{
	return (uint8_t)(i * 7u + (i >> 8));
}

static void platform_reset(int resume)
{
	memset(slot, 0xff, sizeof slot);
	memset(erased, 0, sizeof erased);
	memset(&stored, 0, sizeof stored);
	stored.boot_counter = VECTOR_BOOT_COUNTER - 1;
	stored.running.seq = VECTOR_RUNNING_SEQ;
	synced_to = written_to = 0;
	resumed_sector = -1;
	if (resume) {
		uint32_t i;

		for (i = 0; i < RESUME_SIZE; i++) {
			slot[i] = resume_byte(i);
		}
		stored.resume.seq = RESUME_SEQ;
		stored.resume.size = RESUME_SIZE;
		fota_sha256(stored.resume.digest, slot, RESUME_SIZE);
		/* Durable inside the second sector, the rest of it erased: the
		 * device resumes there without erasing that sector. */
		memset(slot + RESUME_DURABLE, 0xff, RESUME_SIZE - RESUME_DURABLE);
		stored.durable = RESUME_DURABLE;
		synced_to = written_to = RESUME_DURABLE;
	}
}

/* ---- feeding ---- */

static struct fota_ctx ctx;
static const uint8_t *splits;
static size_t nsplits, split_i;
static enum fota_event final_ev;   /* 0 while the session runs */
static int decline_offer;
static int started;   /* fota_start asked to send the Hello */
static int ahead;     /* call fota_erase_ahead while waiting for bytes */

/* The next piece size of the fuzzer's split pattern. */
static size_t next_piece(size_t left)
{
	size_t n = left;

	if (nsplits > 0) {
		n = (size_t)splits[split_i] + 1;
		split_i = (split_i + 1) % nsplits;
	}
	return n < left ? n : left;
}

/* Acts on one event as an application would. */
static void on_event(enum fota_event ev)
{
	size_t n;

	switch (ev) {
	case FOTA_EV_SEND:
		check(fota_tx(&ctx, &n) != NULL && n > 0 && n <= FOTA_TX_SIZE);
		break;
	case FOTA_EV_OFFER:
		if (decline_offer) {
			check(fota_decline(&ctx) == FOTA_OK);
		}
		break;
	case FOTA_EV_NEED_MORE:
	case FOTA_EV_PROGRESS:
		break;
	default:
		check(fota_is_final(ev));
		final_ev = ev;
		break;
	}
}

/*
 * With the erase-ahead bit, the application erases ahead whenever the
 * library waits for bytes, as a NONOS task would (fota.h): up to two
 * sectors each time.
 */
static void erase_ahead(void)
{
	int i;

	for (i = 0; ahead && i < 2 && final_ev == 0; i++) {
		enum fota_event ev = fota_erase_ahead(&ctx);

		check(ev == FOTA_EV_PROGRESS || ev == FOTA_EV_NEED_MORE || ev == FOTA_EV_SEND);
		if (ev != FOTA_EV_PROGRESS) {
			on_event(ev);   /* SEND: an Alert, after a failed erase */
			return;
		}
	}
}

/*
 * Feeds len bytes in the fuzzer's pieces, handling events, until they are
 * used or the session ends. Each call must use input or return an event
 * other than NEED_MORE; a bound on the calls catches a feed that does
 * neither (a livelock).
 */
static void feed(const uint8_t *p, size_t len)
{
	while (len > 0 && final_ev == 0) {
		size_t n = next_piece(len), calls = 0;

		len -= n;
		while (final_ev == 0) {
			size_t used = (size_t)-1;
			enum fota_event ev = fota_feed(&ctx, p, n, &used);

			check(used <= n);
			check(ev != FOTA_EV_NEED_MORE || used == n);
			p += used;
			n -= used;
			on_event(ev);
			if (ev == FOTA_EV_NEED_MORE) {
				erase_ahead();
				break;
			}
			check(++calls < 4096);
		}
	}
	/* Events owed after the input ran out (a send's follow-up, the
	 * verification after the Final) come on a call with no bytes. */
	while (final_ev == 0) {
		size_t used = 0;
		enum fota_event ev = fota_feed(&ctx, NULL, 0, &used);

		check(used == 0);
		on_event(ev);
		if (ev == FOTA_EV_NEED_MORE) {
			break;
		}
	}
}

/* After the session: the guarantees that must hold whatever came in. */
static void finish(void)
{
	enum fota_event ev = fota_close(&ctx);
	size_t used = 1;
	uint8_t digest[FOTA_DIGEST_SIZE];
	const struct fota_manifest *m = fota_manifest(&ctx);

	check(fota_is_final(ev));
	check(final_ev == 0 || ev == final_ev);
#ifdef FUZZ_DEBUG
	/* Which end a seed reaches: `make fuzz-debug`, then run it on a file. */
	fprintf(stderr, "end: event %d, %s, %lu of %lu bytes\n", (int)ev,
	        fota_err_name(fota_error(&ctx)), (unsigned long)stored.durable,
	        (unsigned long)m->size);
#endif
	check(fota_feed(&ctx, NULL, 0, &used) == ev && used == 0);
	check(ev == FOTA_EV_ERROR ? fota_error(&ctx) != FOTA_OK : fota_error(&ctx) == FOTA_OK);
	if (ev == FOTA_EV_DONE) {
		/* Never a partial or wrong image recorded as pending (5.4). */
		check(m->size > 0 && m->size <= SLOT_SIZE);
		fota_sha256(digest, slot, m->size);
		check(memcmp(digest, m->digest, sizeof digest) == 0);
		check(stored.pending.size == m->size &&
		      memcmp(stored.pending.digest, m->digest, sizeof digest) == 0);
	}
	/* The boot counter is durable before any Hello exists (4.1, 9.2). */
	check(stored.boot_counter == VECTOR_BOOT_COUNTER || !started);
	check(stored.running.seq == VECTOR_RUNNING_SEQ);
}

#if FUZZ_MODE == FUZZ_SEALED

/* A gateway's view of the session (PROTOCOL.md 5.2, 5.3), with the
 * vector's Ng and gateway ID. */
static const uint8_t ng[16] = {
	0x7c, 0x97, 0xed, 0xb8, 0x2a, 0x66, 0x2c, 0xd4, 0xd5, 0x4c, 0x8f, 0x54, 0xb9, 0x38, 0xd3, 0x2e,
};
static const char gateway_id[] = "gw-plantroom";

static uint8_t g2d_key_iv[FOTA_AEAD_KEY_SIZE + FOTA_AEAD_NONCE_SIZE];
static uint32_t g2d_counter;
static uint8_t frame[FOTA_HEADER_SIZE + 8192 + FOTA_TAG_SIZE] __attribute__((aligned(4)));

static void store32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* k_g2d || iv_g2d = HKDF-Expand(PRK, info("g2d"), 44), info of 5.2. */
static void derive_g2d(const uint8_t *hello, size_t hello_len, const uint8_t th[32])
{
	static const char label[] = "fotagate v1 g2d";
	uint8_t info[sizeof label - 1 + 2 + 1 + FOTA_ID_MAX + 1 + FOTA_ID_MAX + 32];
	uint8_t salt[32], prk[32];
	size_t n = 0, id_len = hello[5];

	memcpy(salt, hello + 6 + id_len, 16);   /* Nd */
	memcpy(salt + 16, ng, 16);
	fota_hkdf_sha256_extract(prk, salt, sizeof salt, psk, sizeof psk);
	memcpy(info, label, sizeof label - 1);
	n += sizeof label - 1;
	info[n++] = hello[3];   /* version */
	info[n++] = hello[4];   /* suite */
	memcpy(info + n, hello + 5, 1 + id_len);
	n += 1 + id_len;
	info[n++] = (uint8_t)(sizeof gateway_id - 1);
	memcpy(info + n, gateway_id, sizeof gateway_id - 1);
	n += sizeof gateway_id - 1;
	memcpy(info + n, th, 32);
	n += 32;
	check(hello_len > 6 + id_len + 16);
	check(fota_hkdf_sha256_expand(g2d_key_iv, sizeof g2d_key_iv, prk, info, n) == 0);
}

/* Seals plen plaintext bytes already at frame + 3 as a frame of type typ
 * with associated data header || extra; returns the frame's length. */
static size_t seal(uint8_t typ, size_t plen, const uint8_t *extra, size_t extra_len)
{
	uint8_t ad[FOTA_HEADER_SIZE + 40], nonce[12];
	size_t body = plen + FOTA_TAG_SIZE;

	frame[0] = typ;
	frame[1] = (uint8_t)(body >> 8);
	frame[2] = (uint8_t)body;
	memcpy(ad, frame, FOTA_HEADER_SIZE);
	memcpy(ad + FOTA_HEADER_SIZE, extra, extra_len);
	memcpy(nonce, g2d_key_iv + FOTA_AEAD_KEY_SIZE, sizeof nonce);
	/* uint32_t before the shift: an IV byte of 0x80 or more shifted by 24
	 * overflows an int (the keys, and so the IV, follow from the Hello). */
	store32(nonce + 8, ((uint32_t)nonce[8] << 24 | (uint32_t)nonce[9] << 16 |
	                    (uint32_t)nonce[10] << 8 | nonce[11]) ^ g2d_counter);
	g2d_counter++;
	fota_aead_seal(frame + FOTA_HEADER_SIZE + plen, frame + FOTA_HEADER_SIZE, plen, g2d_key_iv,
	               nonce, ad, FOTA_HEADER_SIZE + extra_len);
	return FOTA_HEADER_SIZE + body;
}

/* Takes one record `type u8 | length u16 | plaintext` from the input; the
 * length is cut to what is left. Returns 0 when none is left. */
static int next_record(const uint8_t **in, size_t *left, uint8_t *typ, const uint8_t **pt,
                       size_t *plen)
{
	size_t n;

	if (*left < 3) {
		return 0;
	}
	*typ = (*in)[0];
	n = (size_t)((*in)[1] << 8 | (*in)[2]);
	*in += 3;
	*left -= 3;
	if (n > *left) {
		n = *left;
	}
	if (n > sizeof frame - FOTA_HEADER_SIZE - FOTA_TAG_SIZE - 64) {
		n = sizeof frame - FOTA_HEADER_SIZE - FOTA_TAG_SIZE - 64;
	}
	*pt = *in;
	*plen = n;
	*in += n;
	*left -= n;
	return 1;
}

static void run_sealed(const uint8_t *in, size_t left, const uint8_t *hello, size_t hello_len)
{
	fota_sha256_ctx sha;
	uint8_t th[32], typ, extra[40], ad[FOTA_HEADER_SIZE + 32], nonce[12];
	const uint8_t *pt;
	size_t plen, clear = 16 + 1 + sizeof gateway_id - 1, n;

	if (!next_record(&in, &left, &typ, &pt, &plen)) {
		return;
	}
	/* The Offer: Ng | gw_len | gateway_id | Seal(offer, header || TH). */
	n = clear + plen + FOTA_TAG_SIZE;
	frame[0] = typ;
	frame[1] = (uint8_t)(n >> 8);
	frame[2] = (uint8_t)n;
	memcpy(frame + 3, ng, 16);
	frame[3 + 16] = (uint8_t)(sizeof gateway_id - 1);
	memcpy(frame + 3 + 17, gateway_id, sizeof gateway_id - 1);
	fota_sha256_init(&sha);
	fota_sha256_update(&sha, hello, hello_len);
	fota_sha256_update(&sha, frame, FOTA_HEADER_SIZE + clear);
	fota_sha256_final(&sha, th);
	derive_g2d(hello, hello_len, th);
	memcpy(frame + FOTA_HEADER_SIZE + clear, pt, plen);
	memcpy(ad, frame, FOTA_HEADER_SIZE);
	memcpy(ad + FOTA_HEADER_SIZE, th, 32);
	memcpy(nonce, g2d_key_iv + FOTA_AEAD_KEY_SIZE, sizeof nonce);   /* counter 0 */
	g2d_counter = 1;
	fota_aead_seal(frame + FOTA_HEADER_SIZE + clear + plen, frame + FOTA_HEADER_SIZE + clear, plen,
	               g2d_key_iv, nonce, ad, sizeof ad);
	feed(frame, FOTA_HEADER_SIZE + n);

	/* The stream: each record sealed for the offset the device is at. */
	while (final_ev == 0 && next_record(&in, &left, &typ, &pt, &plen)) {
		struct fota_progress pr;
		const struct fota_manifest *m = fota_manifest(&ctx);
		size_t extra_len = 0;

		fota_progress(&ctx, &pr);
		if (typ == 0x04 || typ == 0x05) {
			store32(extra, pr.received);   /* the device's next offset */
			extra_len = 4;
		}
		if (typ == 0x05) {
			store32(extra + 4, m->size);
			memcpy(extra + 8, m->digest, 32);
			extra_len = 40;
		}
		memcpy(frame + FOTA_HEADER_SIZE, pt, plen);
		feed(frame, seal(typ, plen, extra, extra_len));
	}
}

#endif /* FUZZ_SEALED */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *hello;
	size_t hello_len, k;
	int resume = 0;

	if (size < 1) {
		return 0;
	}
	k = data[0] & 7u;
	ahead = (data[0] >> 3) & 1;
	if (size < 1 + k) {
		return 0;
	}
	splits = data + 1;
	nsplits = k;
	split_i = 0;
	data += 1 + k;
	size -= 1 + k;
	decline_offer = 0;
	fail_op = OP_NONE;
#if FUZZ_MODE == FUZZ_SEALED
	if (size < 1) {
		return 0;
	}
	decline_offer = data[0] & 1;
	resume = (data[0] >> 1) & 1;
	fail_op = (data[0] >> 2) & 7u;
	fail_n = (data[0] >> 5) + 1u;
	data++;
	size--;
#endif
	platform_reset(resume);
	if (resume) {
		/* The sector the durable offset ends, when it is not a boundary. */
		resumed_sector = stored.durable % FOTA_SECTOR_SIZE ?
		                 (long)(stored.durable / FOTA_SECTOR_SIZE) : -1;
	}
	final_ev = 0;
	check(fota_init(&ctx, &cfg) == FOTA_OK);
	started = fota_start(&ctx) == FOTA_EV_SEND;
	if (!started) {
		/* Only an injected failure (load, save, the read of the slot
		 * past a resume point, RNG) may stop the Hello, and then
		 * nothing is sent. */
		check(fail_op != OP_NONE);
		finish();
		return 0;
	}
	hello = fota_tx(&ctx, &hello_len);
	check(hello_len <= FOTA_TX_SIZE);

#if FUZZ_MODE == FUZZ_RAW
	(void)hello;
	feed(data, size);
#elif FUZZ_MODE == FUZZ_SESSION
	(void)hello;
	{
		/* The handshake, whole: the fuzzer's split is for its bytes. */
		size_t keep = nsplits;

		nsplits = 0;
		feed(vector_offer, sizeof vector_offer);
		nsplits = keep;
		check(final_ev == 0);   /* the Offer is valid for this Hello */
	}
	feed(data, size);
#else
	{
		/* The Hello is overwritten by the device's next message: keep it. */
		uint8_t h[FOTA_TX_SIZE];

		memcpy(h, hello, hello_len);
		run_sealed(data, size, h, hello_len);
	}
#endif
	finish();
	return 0;
}
