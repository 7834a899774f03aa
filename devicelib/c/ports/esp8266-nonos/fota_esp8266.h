/*
 * fota_esp8266.h - the fotagate device library on the ESP8266 NONOS SDK.
 *
 * A port is a leaf: it implements fota.h's callbacks with the SDK and
 * runs one session over an espconn TCP connection, all from the SDK's
 * callbacks (nothing here blocks):
 *
 *   - espconn: connect -> fota_init + fota_start (the Hello); each receive
 *     callback hands its bytes to fota_feed; the sealed messages the
 *     library asks to send are queued and go out one at a time, each
 *     after espconn's sent callback for the previous (espconn_send must
 *     not be called again before it); the connection is closed from a
 *     timer, never from inside an espconn callback, once the last
 *     message has gone out.
 *   - the update slot is the application slot the device is not running
 *     (user2.bin's while user1.bin runs, and the other way round),
 *     through spi_flash_erase_sector / spi_flash_write / spi_flash_read,
 *     feeding the software watchdog around each call;
 *   - the durable state (struct fota_state) in two flash sectors written
 *     alternately, each record with a sequence number and a CRC-32: a
 *     power cut while one is erased or written leaves the other intact,
 *     so a save is atomic as fota.h requires;
 *   - random bytes from the hardware RNG (os_get_random);
 *   - after FOTA_EV_DONE, fota_esp8266_reboot() sets the SDK's upgrade
 *     flag and reboots into the new slot; the new image calls
 *     fota_esp8266_confirm() once it has checked itself.
 */
#ifndef FOTA_ESP8266_H
#define FOTA_ESP8266_H

#include <stddef.h>
#include <stdint.h>

#include "fota.h"

#ifdef FOTA_ESP8266_SDK_HEADERS
/* A firmware build: the SDK's own headers. */
#include <c_types.h>
#include <osapi.h>
#include <user_interface.h>
#include <espconn.h>
#include <spi_flash.h>
#include <upgrade.h>
#else
/* The declarations the port uses, and nothing else (CI's compile check). */
#include "esp8266_sdk.h"
#endif

/* Messages waiting for espconn's sent callback: at most one Ack per
 * durable point and one Report or Alert are owed at once. */
#ifndef FOTA_ESP8266_TXQ
#define FOTA_ESP8266_TXQ 4
#endif

/* No byte from the gateway for this long ends the session (truncated). */
#ifndef FOTA_ESP8266_IDLE_MS
#define FOTA_ESP8266_IDLE_MS 30000u
#endif

/* The device's flash map: where each application slot and the two state
 * sectors are (they depend on the flash size and the SDK's layout). */
struct fota_esp8266_flash {
	uint32_t user1_addr;     /* flash address of user1.bin's slot */
	uint32_t user2_addr;     /* and of user2.bin's */
	uint32_t slot_size;      /* bytes of each, a multiple of 4096 */
	uint16_t state_sector[2];   /* two sectors of their own, never a slot's */
	uint32_t factory_seq;    /* the running image's sequence before any update */
};

/* A state record as it lies in its sector (little-endian fields). */
#define FOTA_ESP8266_STATE_MAGIC 0x53544f46u   /* "FOTS" */
#define FOTA_ESP8266_STATE_SIZE  (4 + 4 + 4 + 3 * (4 + 4 + FOTA_DIGEST_SIZE) + 4 + 4)

struct fota_esp8266;

/* Called once per session, when it is over and the connection closed. */
typedef void (*fota_esp8266_done_fn)(struct fota_esp8266 *p, enum fota_event ev);

/* All of the port's state: static, never on the stack (about 2 KiB with
 * the default FOTA_MAX_PAYLOAD). Fields are private. */
struct fota_esp8266 {
	struct fota_ctx ctx;
	struct fota_config cfg;
	const struct fota_esp8266_flash *flash;
	uint32_t slot_addr;          /* the slot being written: the one not running */
	uint32_t state_seq;          /* sequence of the newest valid state record */
	uint8_t  state_current;      /* index of the sector holding it; 2: none */
	union { uint32_t align; uint8_t b[FOTA_ESP8266_STATE_SIZE]; } rec;

	struct espconn conn;
	esp_tcp tcp;
	os_timer_t timer;            /* idle timeout, and the deferred disconnect */
	union { uint32_t align; uint8_t b[FOTA_TX_SIZE]; } txq[FOTA_ESP8266_TXQ];
	uint8_t  txq_len[FOTA_ESP8266_TXQ];
	uint8_t  txq_head, txq_count;
	uint8_t  sending;            /* espconn_send called, its sent callback not yet */
	uint8_t  closing;            /* the session ended: close once the queue drained */
	uint8_t  done_called;
	enum fota_event result;
	fota_esp8266_done_fn done;
};

/*
 * Prepares p for sessions: the identity and key (kept by pointer: they
 * must outlive p, in RAM), the flash map, and the callback for the end of
 * each session. Picks the slot that is not running. Returns FOTA_OK or
 * FOTA_ERR_CONFIG (fota_init's rules, or a flash map that is not sector
 * aligned).
 */
enum fota_err fota_esp8266_init(struct fota_esp8266 *p, const struct fota_esp8266_flash *flash,
                                const char *device_id, const char *device_class,
                                const char *gateway_id, const uint8_t psk[FOTA_PSK_SIZE],
                                fota_esp8266_done_fn done);

/*
 * Connects to the gateway at ip:port and runs one session from the SDK's
 * callbacks; done() is called when it is over. Returns 0, or the
 * negative espconn error if the connection could not be started.
 */
int fota_esp8266_connect(struct fota_esp8266 *p, const uint8_t ip[4], uint16_t port);

/* After FOTA_EV_DONE: marks the other slot bootable and reboots into it. */
void fota_esp8266_reboot(void);

/*
 * From the new image, once it has booted and checked itself: makes the
 * pending image the running one (fota_confirm). Needs only init.
 */
enum fota_err fota_esp8266_confirm(struct fota_esp8266 *p);

/* The state callbacks, for use outside a session (e.g. a status page). */
int fota_esp8266_state_load(void *p, struct fota_state *st);
int fota_esp8266_state_save(void *p, const struct fota_state *st);

#endif /* FOTA_ESP8266_H */
