// ESP8266WiFi.h - stand-in for the core's Wi-Fi and WiFiClient API (see Arduino.h here).
#ifndef FOTA_STUB_ESP8266WIFI_H
#define FOTA_STUB_ESP8266WIFI_H

#include "Arduino.h"

typedef enum { WIFI_OFF = 0, WIFI_STA = 1, WIFI_AP = 2, WIFI_AP_STA = 3 } WiFiMode_t;
typedef enum { WL_IDLE_STATUS = 0, WL_CONNECTED = 3, WL_DISCONNECTED = 6 } wl_status_t;

class ESP8266WiFiClass {
public:
	bool mode(WiFiMode_t m);
	wl_status_t begin(const char *ssid, const char *passphrase);
	wl_status_t status();
};
extern ESP8266WiFiClass WiFi;

class WiFiClient {
public:
	int connect(const char *host, uint16_t port);
	void setNoDelay(bool nodelay);
	size_t write(const uint8_t *buf, size_t size);
	int read(uint8_t *buf, size_t size);
	int available();
	uint8_t connected();
	void stop();
};

#endif
