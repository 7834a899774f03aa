/*
 * test_posix.c - the posix port's flash (ports/posix): NOR rules on a
 * slot file, and the ESP8266 timing model, whose sleeps are counted
 * through fota_posix.sleep_us instead of spent, so the check is exact
 * and takes no time: 45 ms per sector erased, 0.8 ms per 256-byte page a
 * write touches, nothing for reads and syncs, nothing without --flash-timing.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fota_posix.h"

#include "check.h"

static long slept, naps;

static void fake_sleep(void *arg, long us)
{
	(void)arg;
	slept += us;
	naps++;
}

/* The microseconds one call costs under the model. */
#define COST(call) (slept = 0, (void)(call), slept)

static void test_timing(const char *flash, const char *state, int timing)
{
	static uint32_t page[2 * FOTA_POSIX_PAGE / 4];   /* word aligned */
	uint8_t *b = (uint8_t *)page;
	struct fota_posix p;
	struct fota_config cfg;
	long want_erase = timing ? FOTA_POSIX_ERASE_US : 0;
	long want_page = timing ? FOTA_POSIX_PAGE_US : 0;

	unlink(flash);
	CHECK(fota_posix_open(&p, flash, 4 * FOTA_SECTOR_SIZE, state, "esp8266-4m", timing) == 0,
	      "open a new slot");
	/* Creating the slot erases it as the factory would: no time charged to the device. */
	p.sleep_us = fake_sleep;
	memset(&cfg, 0, sizeof cfg);
	fota_posix_callbacks(&p, &cfg);
	memset(b, 0x5a, sizeof page);

	CHECK(COST(cfg.flash_erase(cfg.arg, 1)) == want_erase, "an erase costs 45 ms");
	CHECK(COST(cfg.flash_write(cfg.arg, FOTA_SECTOR_SIZE, b, FOTA_POSIX_PAGE)) == want_page,
	      "a whole page costs 0.8 ms");
	CHECK(COST(cfg.flash_write(cfg.arg, FOTA_SECTOR_SIZE + FOTA_POSIX_PAGE, b, 4)) == want_page,
	      "a word costs its page");
	CHECK(COST(cfg.flash_write(cfg.arg, FOTA_SECTOR_SIZE + 2 * FOTA_POSIX_PAGE - 4, b, 8)) ==
	      2 * want_page, "8 bytes across a page boundary cost two pages");
	CHECK(COST(cfg.flash_write(cfg.arg, FOTA_SECTOR_SIZE + 3 * FOTA_POSIX_PAGE, b,
	                           2 * FOTA_POSIX_PAGE)) == 2 * want_page, "two pages cost two");
	CHECK(COST(cfg.flash_read(cfg.arg, FOTA_SECTOR_SIZE, b, FOTA_POSIX_PAGE)) == 0 &&
	      COST(cfg.flash_sync(cfg.arg)) == 0, "reads and syncs are free");
	CHECK(b[0] == 0x5a, "the page reads back");
	{
		struct fota_state st;

		memset(&st, 0, sizeof st);
		st.boot_counter = 1;
		CHECK(COST(cfg.state_save(cfg.arg, &st)) == want_erase + want_page,
		      "a state save costs a sector erase and a page, as on the ESP8266");
	}

	/* NOR rules: a refused write costs nothing and changes nothing. */
	naps = 0;
	CHECK(cfg.flash_write(cfg.arg, FOTA_SECTOR_SIZE, b, 4) != 0, "no write over programmed bytes");
	CHECK(cfg.flash_write(cfg.arg, FOTA_SECTOR_SIZE + 2, b, 4) != 0, "no misaligned write");
	CHECK(cfg.flash_write(cfg.arg, 4 * FOTA_SECTOR_SIZE - 4, b, 8) != 0, "no write past the slot");
	CHECK(cfg.flash_erase(cfg.arg, 4) != 0, "no erase past the slot");
	CHECK(naps == 0, "refused operations take no flash time");
	CHECK(COST(cfg.flash_erase(cfg.arg, 1)) == want_erase &&
	      cfg.flash_write(cfg.arg, FOTA_SECTOR_SIZE, b, 4) == 0, "an erase makes it writable again");
	fota_posix_close(&p);
	unlink(flash);
}

int main(void)
{
	char dir[] = "/tmp/fota-posix-test-XXXXXX", flash[64], state[64];

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(flash, sizeof flash, "%s/slot", dir);
	snprintf(state, sizeof state, "%s/state", dir);
	test_timing(flash, state, 1);
	test_timing(flash, state, 0);
	rmdir(dir);
	return check_summary();
}
