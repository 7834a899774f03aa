/*
 * esp8266_sdk.h - the part of the ESP8266 NONOS SDK (2.x) that the
 * fotagate port uses, declared from the SDK's API reference (ESP8266
 * Non-OS SDK API Reference: espconn, SPI flash, upgrade, system, timer
 * and RNG chapters). It lets CI compile the port with Debian's
 * xtensa-lx106-elf-gcc without the SDK, and it is the list that
 * `make esp8266` checks the port's undefined symbols against: a call the
 * port makes and this header does not declare fails the build.
 *
 * Firmware built with the SDK compiles the port against the SDK's own
 * headers instead (-DFOTA_ESP8266_SDK_HEADERS), so the structure layouts
 * below only matter for the compile check.
 *
 * Format, kept simple for the checker: every SDK function is declared on
 * one line beginning with `extern`.
 */
#ifndef FOTA_ESP8266_SDK_H
#define FOTA_ESP8266_SDK_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

/* c_types.h */
typedef uint8_t  uint8;
typedef int8_t   sint8;
typedef uint16_t uint16;
typedef uint32_t uint32;

/* Code the SDK's linker script places in flash (irom0) rather than IRAM. */
#ifndef ICACHE_FLASH_ATTR
#define ICACHE_FLASH_ATTR __attribute__((section(".irom0.text")))
#endif

/* ---- espconn.h: TCP connections, driven by callbacks ---- */

#define ESPCONN_OK 0   /* sint8 results: 0 ok, negative errors */

enum espconn_type { ESPCONN_INVALID = 0, ESPCONN_TCP = 0x10, ESPCONN_UDP = 0x20 };
enum espconn_state {
	ESPCONN_NONE, ESPCONN_WAIT, ESPCONN_LISTEN, ESPCONN_CONNECT, ESPCONN_WRITE,
	ESPCONN_READ, ESPCONN_CLOSE
};

typedef void (*espconn_connect_callback)(void *arg);            /* arg: struct espconn * */
typedef void (*espconn_reconnect_callback)(void *arg, sint8 err);
typedef void (*espconn_recv_callback)(void *arg, char *pdata, unsigned short len);
typedef void (*espconn_sent_callback)(void *arg);

typedef struct _esp_tcp {
	int remote_port;
	int local_port;
	uint8 local_ip[4];
	uint8 remote_ip[4];
	espconn_connect_callback connect_callback;
	espconn_reconnect_callback reconnect_callback;
	espconn_connect_callback disconnect_callback;
	espconn_connect_callback write_finish_fn;
} esp_tcp;

struct espconn {
	enum espconn_type type;
	enum espconn_state state;
	union {
		esp_tcp *tcp;
		struct _esp_udp *udp;
	} proto;
	espconn_recv_callback recv_callback;
	espconn_sent_callback sent_callback;
	uint8 link_cnt;
	void *reverse;   /* free for the application: the port's context */
};

extern sint8 espconn_connect(struct espconn *espconn);
extern sint8 espconn_disconnect(struct espconn *espconn);
extern sint8 espconn_send(struct espconn *espconn, uint8 *psent, uint16 length);
extern sint8 espconn_regist_connectcb(struct espconn *espconn, espconn_connect_callback connect_cb);
extern sint8 espconn_regist_disconcb(struct espconn *espconn, espconn_connect_callback discon_cb);
extern sint8 espconn_regist_reconcb(struct espconn *espconn, espconn_reconnect_callback recon_cb);
extern sint8 espconn_regist_recvcb(struct espconn *espconn, espconn_recv_callback recv_cb);
extern sint8 espconn_regist_sentcb(struct espconn *espconn, espconn_sent_callback sent_cb);
extern uint32 espconn_port(void);

/* ---- spi_flash.h: raw flash, 4 KiB sectors, 4-byte aligned RAM buffers ---- */

#define SPI_FLASH_SEC_SIZE 4096

typedef enum {
	SPI_FLASH_RESULT_OK,
	SPI_FLASH_RESULT_ERR,
	SPI_FLASH_RESULT_TIMEOUT
} SpiFlashOpResult;

extern SpiFlashOpResult spi_flash_erase_sector(uint16 sec);
extern SpiFlashOpResult spi_flash_write(uint32 des_addr, uint32 *src_addr, uint32 size);
extern SpiFlashOpResult spi_flash_read(uint32 src_addr, uint32 *des_addr, uint32 size);

/* ---- upgrade.h: the boot loader's two application slots ---- */

#define UPGRADE_FW_BIN1 0x00   /* running user1.bin */
#define UPGRADE_FW_BIN2 0x01   /* running user2.bin */

#define UPGRADE_FLAG_IDLE   0x00
#define UPGRADE_FLAG_START  0x01
#define UPGRADE_FLAG_FINISH 0x02   /* the other slot holds a whole image: boot it */

extern uint8 system_upgrade_userbin_check(void);
extern void system_upgrade_flag_set(uint8 flag);
extern void system_upgrade_reboot(void);

/* ---- user_interface.h, osapi.h: watchdog, RNG, timers ---- */

extern void system_soft_wdt_feed(void);
/* Fills buf from the hardware RNG; 0 on success. */
extern int os_get_random(unsigned char *buf, size_t len);

typedef void ETSTimerFunc(void *timer_arg);
typedef struct _ETSTIMER_ {
	struct _ETSTIMER_ *timer_next;
	uint32_t timer_expire;
	uint32_t timer_period;
	ETSTimerFunc *timer_func;
	void *timer_arg;
} ETSTimer;
typedef ETSTimer os_timer_t;

/* osapi.h's os_timer_setfn / os_timer_arm / os_timer_disarm expand to these. */
extern void ets_timer_setfn(ETSTimer *ptimer, ETSTimerFunc *pfunction, void *parg);
extern void ets_timer_arm_new(ETSTimer *ptimer, uint32_t time, bool repeat_flag, bool ms_flag);
extern void ets_timer_disarm(ETSTimer *ptimer);
#define os_timer_setfn(t, fn, arg) ets_timer_setfn((t), (fn), (arg))
#define os_timer_arm(t, ms, repeat) ets_timer_arm_new((t), (ms), (repeat), 1)
#define os_timer_disarm(t)          ets_timer_disarm(t)

#endif /* FOTA_ESP8266_SDK_H */
