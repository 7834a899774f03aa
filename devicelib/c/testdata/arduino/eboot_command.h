/* eboot_command.h - stand-in for the core's boot loader command (see Arduino.h here). */
#ifndef FOTA_STUB_EBOOT_COMMAND_H
#define FOTA_STUB_EBOOT_COMMAND_H

#include <stdint.h>

enum action_t {
	ACTION_COPY_RAW = 0x00000001,
	ACTION_LOAD_APP = 0xffffffff
};

struct eboot_command {
	uint32_t magic;
	enum action_t action;
	uint32_t args[29];
	uint32_t crc32;
};

int eboot_command_read(struct eboot_command *cmd);
void eboot_command_write(struct eboot_command *cmd);

#endif
