/*
 * host_test.c - the esp8266-nonos port on the host, against a fake of
 * the SDK functions esp8266_sdk.h declares (and nothing else: the port
 * would not link otherwise), under ASan and UBSan. ports_test.go runs it
 * with a file of v1.json's first session ("name hex" lines).
 *
 * The fake flash is NOR-like (aligned, RAM buffers aligned, only erased
 * bytes programmed) and can cut a write short or fail it, as a power
 * loss would; the fake espconn records what is sent and fails the test
 * if the port calls espconn_send again before the sent callback, or
 * closes the connection from inside an espconn callback.
 *
 * Checked: the whole session through the port's callbacks equals the
 * vectors byte for byte (Hello, Accept, Ack, Report) with the bytes
 * arriving in pieces, the image lands in the slot the device does not
 * run, the state alternates between its two sectors and survives a torn
 * save, sequence numbers wrap, and the upgrade flag and reboot follow.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fota_esp8266.h"

static int failures, checks;
#define CHECK(cond, what) do { checks++; if (!(cond)) { failures++; \
	fprintf(stderr, "FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, what, #cond); } } while (0)

/* ---- the fake SDK ---- */

#define FLASH_SIZE (1u << 20)
static uint8_t flash[FLASH_SIZE];
static unsigned erases[FLASH_SIZE / 4096];
static int write_fail_after = -1;   /* >= 0: the next write programs this many bytes, then fails */
static int in_espconn_cb;           /* the port is inside an espconn callback */
static unsigned wdt_feeds;

SpiFlashOpResult spi_flash_erase_sector(uint16 sec)
{
	if ((uint32_t)sec * 4096u >= FLASH_SIZE) {
		return SPI_FLASH_RESULT_ERR;
	}
	memset(flash + (size_t)sec * 4096u, 0xff, 4096);
	erases[sec]++;
	return SPI_FLASH_RESULT_OK;
}

SpiFlashOpResult spi_flash_write(uint32 des_addr, uint32 *src_addr, uint32 size)
{
	const uint8_t *src = (const uint8_t *)src_addr;
	uint32 i, n = size;

	if (des_addr % 4 != 0 || size % 4 != 0 || (uintptr_t)src_addr % 4 != 0 ||
	    (uint64_t)des_addr + size > FLASH_SIZE) {
		fprintf(stderr, "FAIL spi_flash_write: misaligned or out of the chip\n");
		exit(1);
	}
	if (write_fail_after >= 0 && (uint32)write_fail_after < n) {
		n = (uint32)write_fail_after;   /* power lost part way */
	}
	for (i = 0; i < n; i++) {
		if (flash[des_addr + i] != 0xff) {
			fprintf(stderr, "FAIL spi_flash_write: programming a byte that is not erased\n");
			exit(1);
		}
		flash[des_addr + i] = src[i];
	}
	if (n < size) {
		write_fail_after = -1;
		return SPI_FLASH_RESULT_ERR;
	}
	return SPI_FLASH_RESULT_OK;
}

SpiFlashOpResult spi_flash_read(uint32 src_addr, uint32 *des_addr, uint32 size)
{
	if (src_addr % 4 != 0 || size % 4 != 0 || (uintptr_t)des_addr % 4 != 0 ||
	    (uint64_t)src_addr + size > FLASH_SIZE) {
		fprintf(stderr, "FAIL spi_flash_read: misaligned or out of the chip\n");
		exit(1);
	}
	memcpy(des_addr, flash + src_addr, size);
	return SPI_FLASH_RESULT_OK;
}

static uint8 running_bin = UPGRADE_FW_BIN1;
static uint8 upgrade_flag = UPGRADE_FLAG_IDLE;
static int reboots;

uint8 system_upgrade_userbin_check(void) { return running_bin; }
void system_upgrade_flag_set(uint8 flag) { upgrade_flag = flag; }
void system_upgrade_reboot(void) { reboots++; }
void system_soft_wdt_feed(void) { wdt_feeds++; }

static uint8_t rng[12];
int os_get_random(unsigned char *buf, size_t len)
{
	if (len != sizeof rng) {
		return -1;
	}
	memcpy(buf, rng, len);
	return 0;
}

static ETSTimerFunc *timer_fn;
static void *timer_arg;
static int timer_armed;
static uint32_t timer_ms;

void ets_timer_setfn(ETSTimer *t, ETSTimerFunc *fn, void *arg)
{
	(void)t;
	timer_fn = fn;
	timer_arg = arg;
}
void ets_timer_arm_new(ETSTimer *t, uint32_t ms, bool repeat, bool ms_flag)
{
	(void)t;
	(void)repeat;
	(void)ms_flag;
	timer_armed = 1;
	timer_ms = ms;
}
void ets_timer_disarm(ETSTimer *t)
{
	(void)t;
	timer_armed = 0;
}

static espconn_connect_callback cb_connect, cb_discon;
static espconn_reconnect_callback cb_recon;
static espconn_recv_callback cb_recv;
static espconn_sent_callback cb_sent;
static int connects, disconnects, send_pending;
static uint8_t sent[4096];
static size_t sent_len;

sint8 espconn_connect(struct espconn *c) { (void)c; connects++; return ESPCONN_OK; }
sint8 espconn_disconnect(struct espconn *c)
{
	(void)c;
	if (in_espconn_cb) {
		fprintf(stderr, "FAIL espconn_disconnect called inside an espconn callback\n");
		exit(1);
	}
	disconnects++;
	return ESPCONN_OK;
}
sint8 espconn_send(struct espconn *c, uint8 *p, uint16 n)
{
	(void)c;
	if (send_pending) {
		fprintf(stderr, "FAIL espconn_send before the previous one's sent callback\n");
		exit(1);
	}
	if (sent_len + n > sizeof sent) {
		return -1;
	}
	memcpy(sent + sent_len, p, n);
	sent_len += n;
	send_pending = 1;
	return ESPCONN_OK;
}
sint8 espconn_regist_connectcb(struct espconn *c, espconn_connect_callback f) { (void)c; cb_connect = f; return 0; }
sint8 espconn_regist_disconcb(struct espconn *c, espconn_connect_callback f) { (void)c; cb_discon = f; return 0; }
sint8 espconn_regist_reconcb(struct espconn *c, espconn_reconnect_callback f) { (void)c; cb_recon = f; return 0; }
sint8 espconn_regist_recvcb(struct espconn *c, espconn_recv_callback f) { (void)c; cb_recv = f; return 0; }
sint8 espconn_regist_sentcb(struct espconn *c, espconn_sent_callback f) { (void)c; cb_sent = f; return 0; }
uint32 espconn_port(void) { return 40000; }

/* The SDK delivering events: inside them the port may not close. */
static void deliver_recv(struct espconn *c, const uint8_t *p, size_t n)
{
	char buf[1500];

	memcpy(buf, p, n);
	in_espconn_cb = 1;
	cb_recv(c, buf, (unsigned short)n);
	in_espconn_cb = 0;
}
static void deliver_sent(struct espconn *c)
{
	send_pending = 0;
	in_espconn_cb = 1;
	cb_sent(c);
	in_espconn_cb = 0;
}

/* ---- the vectors ---- */

struct field { char name[16]; uint8_t b[8192]; size_t n; };
static struct field fields[16];
static size_t nfields;

static const struct field *get(const char *name)
{
	size_t i;

	for (i = 0; i < nfields; i++) {
		if (strcmp(fields[i].name, name) == 0) {
			return &fields[i];
		}
	}
	fprintf(stderr, "vectors: %s missing\n", name);
	exit(2);
}

static void load_vectors(const char *path)
{
	static char line[20000];
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		perror(path);
		exit(2);
	}
	while (fgets(line, sizeof line, f) != NULL && nfields < 16) {
		struct field *fl = &fields[nfields++];
		char *hex = strchr(line, ' ');
		size_t i;

		if (hex == NULL || (size_t)(hex - line) >= sizeof fl->name) {
			exit(2);
		}
		*hex++ = '\0';
		strcpy(fl->name, line);
		for (i = 0; hex[2 * i] != '\0' && hex[2 * i] != '\n' && i < sizeof fl->b; i++) {
			unsigned v;

			if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
				exit(2);
			}
			fl->b[i] = (uint8_t)v;
		}
		fl->n = i;
	}
	fclose(f);
}

/* ---- tests ---- */

static const struct fota_esp8266_flash map = {
	.user1_addr = 0x01000,
	.user2_addr = 0x81000,
	.slot_size = 0x7b000,
	.state_sector = { 0xfc, 0xfd },
	.factory_seq = 3,
};
static struct fota_esp8266 port;
static enum fota_event done_ev;
static int done_calls;

static void on_done(struct fota_esp8266 *p, enum fota_event ev)
{
	(void)p;
	done_ev = ev;
	done_calls++;
}

static void test_state(void)
{
	struct fota_esp8266 p;
	struct fota_state st, got;
	uint8_t psk[FOTA_PSK_SIZE] = { 1 };
	unsigned e0, e1;

	memset(flash, 0xff, sizeof flash);
	CHECK(fota_esp8266_init(&p, &map, "dev-1", "esp8266-4m", NULL, psk, NULL) == FOTA_OK, "init");
	CHECK(fota_esp8266_state_load(&p, &got) == 0 && got.running.seq == 3 && got.boot_counter == 0,
	      "a blank device runs its factory image");

	memset(&st, 0, sizeof st);
	st.boot_counter = 7;
	st.running.seq = 3;
	st.resume.size = 9000;
	st.resume.digest[31] = 0xaa;
	st.durable = 4096;
	e0 = erases[0xfc];
	e1 = erases[0xfd];
	CHECK(fota_esp8266_state_save(&p, &st) == 0, "save 1");
	CHECK(erases[0xfc] + erases[0xfd] == e0 + e1 + 1, "one sector erased per save");
	st.boot_counter = 8;
	CHECK(fota_esp8266_state_save(&p, &st) == 0, "save 2");
	CHECK(erases[0xfc] == e0 + 1 && erases[0xfd] == e1 + 1, "saves alternate between the sectors");
	CHECK(fota_esp8266_state_load(&p, &got) == 0 && memcmp(&got, &st, sizeof st) == 0,
	      "load returns the last save");

	/* Power lost in the middle of the next record's write. */
	st.boot_counter = 9;
	write_fail_after = 60;
	CHECK(fota_esp8266_state_save(&p, &st) != 0, "a torn save fails");
	CHECK(fota_esp8266_state_load(&p, &got) == 0 && got.boot_counter == 8 && got.durable == 4096,
	      "after a torn save the previous state loads");
	/* And right after the erase, before any byte of the write. */
	st.boot_counter = 10;
	write_fail_after = 0;
	CHECK(fota_esp8266_state_save(&p, &st) != 0, "a cut after the erase fails");
	CHECK(fota_esp8266_state_load(&p, &got) == 0 && got.boot_counter == 8,
	      "after a cut between erase and write the previous state loads");
	st.boot_counter = 11;
	CHECK(fota_esp8266_state_save(&p, &st) == 0, "a save after the cuts");
	CHECK(fota_esp8266_state_load(&p, &got) == 0 && got.boot_counter == 11, "and it loads");

	/* Sequence numbers compare modulo 2^32. */
	p.state_seq = 0xfffffffeu;
	st.boot_counter = 12;
	CHECK(fota_esp8266_state_save(&p, &st) == 0, "save at seq 2^32-1");
	st.boot_counter = 13;
	CHECK(fota_esp8266_state_save(&p, &st) == 0, "save at seq 0");
	CHECK(fota_esp8266_state_load(&p, &got) == 0 && got.boot_counter == 13 && p.state_seq == 0,
	      "seq 0 is newer than 2^32-1");

	/* A record with a bad CRC is not a record. */
	flash[(size_t)map.state_sector[p.state_current] * 4096u + 20] ^= 1;
	CHECK(fota_esp8266_state_load(&p, &got) == 0 && got.boot_counter == 12,
	      "a corrupted newest record falls back to the other");

	CHECK(fota_esp8266_init(&p, &map, "bad id!", "esp8266-4m", NULL, psk, NULL) == FOTA_ERR_CONFIG,
	      "fota_init's rules apply");
	{
		struct fota_esp8266_flash bad = map;

		bad.user2_addr += 4;
		CHECK(fota_esp8266_init(&p, &bad, "dev-1", "esp8266-4m", NULL, psk, NULL) == FOTA_ERR_CONFIG,
		      "a slot that is not sector aligned is refused");
	}
	running_bin = UPGRADE_FW_BIN2;
	CHECK(fota_esp8266_init(&p, &map, "dev-1", "esp8266-4m", NULL, psk, NULL) == FOTA_OK &&
	      p.slot_addr == map.user1_addr, "running user2.bin, the slot is user1's");
	running_bin = UPGRADE_FW_BIN1;
}

/* v1.json's first session through the port's espconn callbacks. */
static void test_session(void)
{
	const struct field *psk = get("psk"), *hello = get("hello"), *offer = get("offer"),
	                   *accept = get("accept"), *data = get("data"), *ack = get("ack"),
	                   *report = get("report"), *image = get("image");
	static char id[32], cls[32];
	static uint8_t early[FOTA_MAX_OFFER_BODY + 3 + 100];
	const uint8_t ip[4] = { 127, 0, 0, 1 };
	struct fota_state st;
	size_t off;

	memcpy(rng, get("nd")->b, sizeof rng);
	memcpy(id, get("device_id")->b, get("device_id")->n);
	memcpy(cls, get("class")->b, get("class")->n);
	memset(flash, 0xff, sizeof flash);
	CHECK(fota_esp8266_init(&port, &map, id, cls, NULL, psk->b, on_done) == FOTA_OK, "init");
	/* The stored state of the vector: boot counter 40, running 3. */
	memset(&st, 0, sizeof st);
	st.boot_counter = 40;
	st.running.seq = 3;
	CHECK(fota_esp8266_state_save(&port, &st) == 0, "preload the state");

	CHECK(fota_esp8266_connect(&port, ip, 7683) == 0 && connects == 1, "connect");
	CHECK(port.conn.reverse == &port && port.tcp.remote_port == 7683, "espconn set up");
	in_espconn_cb = 1;
	cb_connect(&port.conn);
	in_espconn_cb = 0;
	CHECK(sent_len == hello->n && memcmp(sent, hello->b, hello->n) == 0, "the Hello is the vector's");
	CHECK(timer_armed && timer_ms == FOTA_ESP8266_IDLE_MS, "the idle timeout runs");
	deliver_sent(&port.conn);

	/* The Offer in two pieces, the second with the first stream bytes
	 * behind it: the gateway sends them before it has the Accept (4.4). */
	sent_len = 0;
	deliver_recv(&port.conn, offer->b, 50);
	CHECK(sent_len == 0, "nothing sent on half an Offer");
	memcpy(early, offer->b + 50, offer->n - 50);
	memcpy(early + offer->n - 50, data->b, 100);
	deliver_recv(&port.conn, early, offer->n - 50 + 100);
	CHECK(sent_len == accept->n && memcmp(sent, accept->b, accept->n) == 0, "the Accept is the vector's");
	deliver_sent(&port.conn);

	/* The rest of the stream in pieces of 100 bytes, as TCP might deliver it. */
	sent_len = 0;
	for (off = 100; off < data->n; off += 100) {
		size_t n = data->n - off < 100 ? data->n - off : 100;

		deliver_recv(&port.conn, data->b + off, n);
	}
	CHECK(sent_len == ack->n && memcmp(sent, ack->b, ack->n) == 0,
	      "the Ack is the vector's, and the Report waits for its sent callback");
	deliver_sent(&port.conn);
	CHECK(sent_len == ack->n + report->n && memcmp(sent + ack->n, report->b, report->n) == 0,
	      "the Report is the vector's");
	CHECK(disconnects == 0 && done_calls == 0, "not closed before the Report went out");
	deliver_sent(&port.conn);
	CHECK(timer_armed && timer_ms == 1 && disconnects == 0, "the close is left to a timer");
	timer_fn(timer_arg);
	CHECK(disconnects == 1, "the timer closes the connection");
	in_espconn_cb = 1;
	cb_discon(&port.conn);
	in_espconn_cb = 0;
	CHECK(done_calls == 1 && done_ev == FOTA_EV_DONE, "done() once, with FOTA_EV_DONE");

	CHECK(memcmp(flash + map.user2_addr, image->b, image->n) == 0,
	      "the image is in user2's slot, the one not running");
	CHECK(fota_esp8266_state_load(&port, &st) == 0 && st.pending.seq == 4 &&
	      st.pending.size == image->n && st.boot_counter == 41 && st.running.seq == 3,
	      "the state records it pending, boot counter 41");
	CHECK(wdt_feeds > 0, "the watchdog is fed in the flash calls");

	fota_esp8266_reboot();
	CHECK(upgrade_flag == UPGRADE_FLAG_FINISH && reboots == 1, "upgrade flag set, then reboot");
	CHECK(fota_esp8266_confirm(&port) == FOTA_OK, "confirm");
	CHECK(fota_esp8266_state_load(&port, &st) == 0 && st.running.seq == 4 && st.pending.size == 0,
	      "after confirm the new image is the running one");

	/* A connection that fails ends a session as truncated, once. */
	done_calls = 0;
	CHECK(fota_esp8266_connect(&port, ip, 7683) == 0, "connect again");
	in_espconn_cb = 1;
	cb_connect(&port.conn);
	cb_recon(&port.conn, -11);
	cb_discon(&port.conn);
	in_espconn_cb = 0;
	CHECK(done_calls == 1 && done_ev == FOTA_EV_ERROR &&
	      fota_error(&port.ctx) == FOTA_ERR_TRUNCATED, "a reset connection: truncated, done() once");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: host_test VECTORS\n");
		return 2;
	}
	load_vectors(argv[1]);
	test_state();
	test_session();
	printf("%d passed, %d failed\n", checks - failures, failures);
	return failures ? 1 : 0;
}
