// Arduino.h - a stand-in for the ESP8266 Arduino core's API, only what
// examples/FotagateUpdate uses, with the core's signatures (core 3.x), so that
// ports_test.go can compile the sketch with the host's g++ (-fsyntax-only).
// Nothing here runs; a sketch using an API this file lacks fails to compile,
// which is the point: add the declaration from the core's documentation.
#ifndef FOTA_STUB_ARDUINO_H
#define FOTA_STUB_ARDUINO_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

unsigned long millis(void);
void delay(unsigned long ms);
void yield(void);

class HardwareSerial {
public:
	void begin(unsigned long baud);
	size_t println(const char *s);
	size_t printf(const char *format, ...) __attribute__((format(printf, 2, 3)));
};
extern HardwareSerial Serial;

class EspClass {
public:
	bool flashEraseSector(uint32_t sector);
	bool flashWrite(uint32_t address, const uint32_t *data, size_t size);
	bool flashWrite(uint32_t address, const uint8_t *data, size_t size);
	bool flashRead(uint32_t address, uint32_t *data, size_t size);
	bool flashRead(uint32_t address, uint8_t *data, size_t size);
	uint32_t getSketchSize();
	uint32_t getFreeSketchSpace();
	uint8_t *random(uint8_t *resultArray, const size_t outputSizeBytes) const;
	uint32_t random() const;
	void restart();
};
extern EspClass ESP;

#endif
