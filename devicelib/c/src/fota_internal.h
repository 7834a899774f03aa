/*
 * fota_internal.h - private helpers of the device library's sources.
 *
 * Byte-order helpers go through single bytes, so the code neither
 * depends on the core's endianness nor makes an unaligned access (the
 * LX106 faults on one). Compilers for little-endian hosts turn the
 * little-endian ones into plain loads and stores.
 */
#ifndef FOTA_INTERNAL_H
#define FOTA_INTERNAL_H

#include <stdint.h>

/*
 * Constant tables (the SHA-256 round constants) are read with 32-bit
 * loads only, so a port may place them in flash instead of RAM, e.g.
 * with -DFOTA_RODATA='__attribute__((section(".irom.text")))' on the
 * ESP8266 non-OS SDK.
 */
#ifndef FOTA_RODATA
#define FOTA_RODATA
#endif

static inline uint32_t fota_load32_le(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) |
	       ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline void fota_store32_le(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t fota_load32_be(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline void fota_store32_be(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

#endif /* FOTA_INTERNAL_H */
