/*
 * fota_esp8266.c - fota.h's platform on the ESP8266 NONOS SDK, and one
 * session over espconn (see fota_esp8266.h for the design).
 *
 * Everything here runs in SDK callbacks, which must return quickly: a
 * receive callback feeds its bytes and returns; the library's slow steps
 * (a 45 ms sector erase, the read back of the slot after the Final) run
 * inside fota_feed, so the flash callbacks feed the software watchdog.
 * Code goes to flash (ICACHE_FLASH_ATTR): none of it is timing critical,
 * and IRAM is scarce.
 */
#include <string.h>

#include "fota_esp8266.h"

#define SECTOR 4096u
#define FLASH ICACHE_FLASH_ATTR

static struct fota_esp8266 *from_conn(void *arg)
{
	return (struct fota_esp8266 *)((struct espconn *)arg)->reverse;
}

/* ------------------------------------------------------------------ */
/* Flash and RNG: fota_config's callbacks                             */
/* ------------------------------------------------------------------ */

/* The slot's sector index (offset / FOTA_SECTOR_SIZE) to a flash sector. */
static FLASH int cb_erase(void *arg, uint32_t sector)
{
	struct fota_esp8266 *p = arg;
	SpiFlashOpResult r;

	system_soft_wdt_feed();   /* an erase takes about 45 ms */
	r = spi_flash_erase_sector((uint16)(p->slot_addr / SECTOR + sector));
	system_soft_wdt_feed();
	return r == SPI_FLASH_RESULT_OK ? 0 : -1;
}

/* The library passes 4-byte aligned offsets, lengths and RAM buffers,
 * which is what spi_flash_write and spi_flash_read require. The SDK's
 * prototype takes a non-const pointer; it only reads the source. */
static FLASH int cb_write(void *arg, uint32_t off, const uint8_t *data, size_t len)
{
	struct fota_esp8266 *p = arg;

	return spi_flash_write(p->slot_addr + off, (uint32 *)(uintptr_t)data, (uint32)len) ==
	       SPI_FLASH_RESULT_OK ? 0 : -1;
}

static FLASH int cb_read(void *arg, uint32_t off, uint8_t *buf, size_t len)
{
	struct fota_esp8266 *p = arg;

	system_soft_wdt_feed();   /* the read back after the Final is a loop of these */
	return spi_flash_read(p->slot_addr + off, (uint32 *)(void *)buf, (uint32)len) ==
	       SPI_FLASH_RESULT_OK ? 0 : -1;
}

/* spi_flash_write returns once the chip has programmed the bytes: there
 * is no write cache to flush. */
static FLASH int cb_sync(void *arg)
{
	(void)arg;
	return 0;
}

static FLASH int cb_random(void *arg, uint8_t *buf, size_t len)
{
	(void)arg;
	return os_get_random(buf, len) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Durable state: two sectors, written alternately                    */
/* ------------------------------------------------------------------ */

/* CRC-32 (IEEE, reflected), bit by bit: 140 bytes at boot and per save
 * do not justify a 1 KiB table. */
static FLASH uint32_t crc32(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	size_t i;
	int k;

	for (i = 0; i < n; i++) {
		c ^= p[i];
		for (k = 0; k < 8; k++) {
			c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
		}
	}
	return ~c;
}

static FLASH void put32(uint8_t *b, uint32_t v)
{
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
	b[2] = (uint8_t)(v >> 16);
	b[3] = (uint8_t)(v >> 24);
}

static FLASH uint32_t get32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static FLASH uint8_t *put_image(uint8_t *b, const struct fota_image *img)
{
	put32(b, img->seq);
	put32(b + 4, img->size);
	memcpy(b + 8, img->digest, FOTA_DIGEST_SIZE);
	return b + 8 + FOTA_DIGEST_SIZE;
}

static FLASH const uint8_t *get_image(const uint8_t *b, struct fota_image *img)
{
	img->seq = get32(b);
	img->size = get32(b + 4);
	memcpy(img->digest, b + 8, FOTA_DIGEST_SIZE);
	return b + 8 + FOTA_DIGEST_SIZE;
}

/*
 * Reads sector i's record into p->rec; returns 1 and its sequence if it
 * is whole (magic and CRC), 0 for an erased, torn or foreign sector.
 */
static FLASH int read_record(struct fota_esp8266 *p, int i, uint32_t *seq)
{
	uint8_t *b = p->rec.b;

	if (spi_flash_read((uint32)p->flash->state_sector[i] * SECTOR, (uint32 *)(void *)&p->rec.align,
	                   FOTA_ESP8266_STATE_SIZE) != SPI_FLASH_RESULT_OK) {
		return 0;
	}
	if (get32(b) != FOTA_ESP8266_STATE_MAGIC ||
	    get32(b + FOTA_ESP8266_STATE_SIZE - 4) != crc32(b, FOTA_ESP8266_STATE_SIZE - 4)) {
		return 0;
	}
	*seq = get32(b + 4);
	return 1;
}

/*
 * The newer of the two whole records (sequence numbers compared modulo
 * 2^32, so wrapping is harmless); a device that never saved gets a zero
 * state running its factory image.
 */
FLASH int fota_esp8266_state_load(void *arg, struct fota_state *st)
{
	struct fota_esp8266 *p = arg;
	uint32_t seq[2];
	int ok0 = read_record(p, 0, &seq[0]);
	int ok1 = read_record(p, 1, &seq[1]);
	int pick;
	const uint8_t *b;

	memset(st, 0, sizeof *st);
	if (!ok0 && !ok1) {
		p->state_current = 2;
		p->state_seq = 0;
		st->running.seq = p->flash->factory_seq;
		return 0;
	}
	pick = ok0 && (!ok1 || (int32_t)(seq[0] - seq[1]) > 0) ? 0 : 1;
	if (pick == 0) {
		/* The buffer holds what sector 1 read: read the winner again. */
		if (!read_record(p, 0, &seq[0])) {
			return -1;
		}
	}
	p->state_current = (uint8_t)pick;
	p->state_seq = seq[pick];
	b = p->rec.b + 8;
	st->boot_counter = get32(b);
	b = get_image(b + 4, &st->running);
	b = get_image(b, &st->pending);
	b = get_image(b, &st->resume);
	st->durable = get32(b);
	return 0;
}

/*
 * Writes the record into the sector that does not hold the current one:
 * a cut during the erase or the write leaves the current record whole,
 * and load() then returns the old state, as fota.h requires.
 */
FLASH int fota_esp8266_state_save(void *arg, const struct fota_state *st)
{
	struct fota_esp8266 *p = arg;
	uint8_t *b = p->rec.b;
	int next = p->state_current == 0 ? 1 : 0;
	uint32_t seq = p->state_seq + 1;

	put32(b, FOTA_ESP8266_STATE_MAGIC);
	put32(b + 4, seq);
	put32(b + 8, st->boot_counter);
	b = put_image(b + 12, &st->running);
	b = put_image(b, &st->pending);
	b = put_image(b, &st->resume);
	put32(b, st->durable);
	put32(b + 4, crc32(p->rec.b, FOTA_ESP8266_STATE_SIZE - 4));

	system_soft_wdt_feed();
	if (spi_flash_erase_sector(p->flash->state_sector[next]) != SPI_FLASH_RESULT_OK ||
	    spi_flash_write((uint32)p->flash->state_sector[next] * SECTOR, (uint32 *)(void *)&p->rec.align,
	                    FOTA_ESP8266_STATE_SIZE) != SPI_FLASH_RESULT_OK) {
		return -1;
	}
	system_soft_wdt_feed();
	p->state_current = (uint8_t)next;
	p->state_seq = seq;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The session over espconn                                           */
/* ------------------------------------------------------------------ */

/* espconn_send may not be called again before the sent callback. */
static FLASH void send_next(struct fota_esp8266 *p)
{
	if (p->sending || p->txq_count == 0) {
		return;
	}
	p->sending = 1;
	if (espconn_send(&p->conn, p->txq[p->txq_head].b, p->txq_len[p->txq_head]) != ESPCONN_OK) {
		/* The connection is gone or broken: the disconnect or
		 * reconnect callback ends the session. */
		p->sending = 0;
		p->txq_count = 0;
	}
}

/* Closing from inside an espconn callback is not allowed: a timer does it. */
static FLASH void close_later(struct fota_esp8266 *p, uint32_t ms)
{
	os_timer_disarm(&p->timer);
	os_timer_arm(&p->timer, ms, 0);
}

static FLASH void on_timer(void *arg)
{
	espconn_disconnect(&((struct fota_esp8266 *)arg)->conn);
}

/* The session is over (its secrets are wiped): report once. */
static FLASH void finish(struct fota_esp8266 *p, enum fota_event ev)
{
	os_timer_disarm(&p->timer);
	if (!p->done_called) {
		p->done_called = 1;
		p->result = ev;
		if (p->done != NULL) {
			p->done(p, ev);
		}
	}
}

/* Queues the message the library asks to send; 0, or -1 if full. */
static FLASH int queue(struct fota_esp8266 *p)
{
	size_t n;
	const uint8_t *m = fota_tx(&p->ctx, &n);
	uint8_t slot;

	if (p->txq_count == FOTA_ESP8266_TXQ) {
		return -1;
	}
	slot = (uint8_t)((p->txq_head + p->txq_count) % FOTA_ESP8266_TXQ);
	memcpy(p->txq[slot].b, m, n);
	p->txq_len[slot] = (uint8_t)n;
	p->txq_count++;
	send_next(p);
	return 0;
}

/* Acts on events until the library needs bytes or the session ended. */
static FLASH void run(struct fota_esp8266 *p, enum fota_event ev, const uint8_t *data, size_t len)
{
	size_t used;
	unsigned guard;

	/* fota_feed returns after each event and uses input or moves on at
	 * every call, so this ends; the bound guards against a bug. */
	for (guard = 0; guard < 4096u + 2u * (unsigned)len; guard++) {
		if (ev == FOTA_EV_SEND && queue(p) != 0) {
			ev = fota_close(&p->ctx);   /* nothing may be dropped (records are counted) */
		}
		if (fota_is_final(ev)) {
			p->closing = 1;
			p->result = ev;
			close_later(p, p->txq_count == 0 ? 1u : FOTA_ESP8266_IDLE_MS);
			return;
		}
		if (ev == FOTA_EV_NEED_MORE && len == 0) {
			return;
		}
		ev = fota_feed(&p->ctx, data, len, &used);
		data += used;
		len -= used;
	}
	p->closing = 1;
	p->result = fota_close(&p->ctx);
	close_later(p, 1);
}

static FLASH void on_connect(void *arg)
{
	struct fota_esp8266 *p = from_conn(arg);

	if (fota_init(&p->ctx, &p->cfg) != FOTA_OK) {
		p->closing = 1;
		close_later(p, 1);
		return;
	}
	close_later(p, FOTA_ESP8266_IDLE_MS);   /* the idle timeout, re-armed on each receive */
	run(p, fota_start(&p->ctx), NULL, 0);
}

static FLASH void on_recv(void *arg, char *pdata, unsigned short len)
{
	struct fota_esp8266 *p = from_conn(arg);

	if (p->closing) {
		return;   /* the session is over; the gateway's extra bytes do not matter */
	}
	close_later(p, FOTA_ESP8266_IDLE_MS);
	run(p, FOTA_EV_NEED_MORE, (const uint8_t *)pdata, len);
}

static FLASH void on_sent(void *arg)
{
	struct fota_esp8266 *p = from_conn(arg);

	p->sending = 0;
	if (p->txq_count > 0) {
		p->txq_head = (uint8_t)((p->txq_head + 1) % FOTA_ESP8266_TXQ);
		p->txq_count--;
	}
	send_next(p);
	if (p->closing && p->txq_count == 0) {
		close_later(p, 1);   /* the Report (or Alert) is out: close */
	}
}

/* The connection ended, cleanly or not: a session still running is
 * truncated (its durable offset holds for the next one). */
static FLASH void on_disconnect(void *arg)
{
	struct fota_esp8266 *p = from_conn(arg);

	finish(p, fota_close(&p->ctx));
}

static FLASH void on_error(void *arg, sint8 err)
{
	(void)err;
	on_disconnect(arg);
}

/* ------------------------------------------------------------------ */
/* API                                                                */
/* ------------------------------------------------------------------ */

FLASH enum fota_err fota_esp8266_init(struct fota_esp8266 *p, const struct fota_esp8266_flash *flash,
                                      const char *device_id, const char *device_class,
                                      const char *gateway_id, const uint8_t psk[FOTA_PSK_SIZE],
                                      fota_esp8266_done_fn done)
{
	struct fota_config *cfg = &p->cfg;

	memset(p, 0, sizeof *p);
	if (flash == NULL || flash->user1_addr % SECTOR != 0 || flash->user2_addr % SECTOR != 0 ||
	    flash->slot_size == 0 || flash->slot_size % SECTOR != 0 ||
	    flash->state_sector[0] == flash->state_sector[1]) {
		return FOTA_ERR_CONFIG;
	}
	p->flash = flash;
	p->state_current = 2;
	p->done = done;
	/* Write the slot the boot loader is not running from. */
	p->slot_addr = system_upgrade_userbin_check() == UPGRADE_FW_BIN1 ? flash->user2_addr
	                                                                 : flash->user1_addr;
	cfg->device_id = device_id;
	cfg->device_class = device_class;
	cfg->gateway_id = gateway_id;
	cfg->psk = psk;
	cfg->slot_size = flash->slot_size;
	cfg->arg = p;
	cfg->random = cb_random;
	cfg->flash_erase = cb_erase;
	cfg->flash_write = cb_write;
	cfg->flash_read = cb_read;
	cfg->flash_sync = cb_sync;
	cfg->state_load = fota_esp8266_state_load;
	cfg->state_save = fota_esp8266_state_save;
	/* fota_init checks the rest (IDs, key, sizes) now rather than at connect. */
	return fota_init(&p->ctx, cfg);
}

FLASH int fota_esp8266_connect(struct fota_esp8266 *p, const uint8_t ip[4], uint16_t port)
{
	sint8 r;

	p->txq_head = p->txq_count = 0;
	p->sending = p->closing = p->done_called = 0;
	p->result = FOTA_EV_NEED_MORE;
	memset(&p->conn, 0, sizeof p->conn);
	memset(&p->tcp, 0, sizeof p->tcp);
	p->conn.type = ESPCONN_TCP;
	p->conn.state = ESPCONN_NONE;
	p->conn.proto.tcp = &p->tcp;
	p->conn.reverse = p;
	memcpy(p->tcp.remote_ip, ip, 4);
	p->tcp.remote_port = port;
	p->tcp.local_port = (int)espconn_port();
	os_timer_disarm(&p->timer);
	os_timer_setfn(&p->timer, on_timer, p);
	espconn_regist_connectcb(&p->conn, on_connect);
	espconn_regist_recvcb(&p->conn, on_recv);
	espconn_regist_sentcb(&p->conn, on_sent);
	espconn_regist_disconcb(&p->conn, on_disconnect);
	espconn_regist_reconcb(&p->conn, on_error);
	r = espconn_connect(&p->conn);
	return r == ESPCONN_OK ? 0 : r;
}

FLASH void fota_esp8266_reboot(void)
{
	system_upgrade_flag_set(UPGRADE_FLAG_FINISH);
	system_upgrade_reboot();
}

FLASH enum fota_err fota_esp8266_confirm(struct fota_esp8266 *p)
{
	return fota_confirm(&p->cfg);
}
