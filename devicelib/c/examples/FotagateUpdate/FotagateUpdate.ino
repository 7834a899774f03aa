// FotagateUpdate: an ESP8266 (Arduino core) that asks a fotagate gateway for a newer firmware,
// downloads it into free flash over the fotagate protocol (ChaCha20-Poly1305, one frame buffer,
// resumable after a cut or a power loss), verifies it and boots it.
//
// Fill in the Wi-Fi network, the gateway's address and this device's identity: the header that
// `fotagate keys add <id> --class <class> --header fota_provision.h` writes has them (keep the
// PSK secret; it is this device's own).
//
// FOTA_MAX_PAYLOAD (64..4096, default 1024) sizes struct fota_ctx: the library and this sketch
// must be compiled with the same value, so set it for the whole build, never for one of them
// (PlatformIO: build_flags = -D FOTA_MAX_PAYLOAD=512 in platformio.ini; arduino-cli:
// --build-property build.extra_flags=-DFOTA_MAX_PAYLOAD=512).
//
// Flash layout: the update slot is the top FOTA_SLOT_SIZE bytes of the free sketch space, the
// two sectors below it hold the durable state (two records written alternately, so a power cut
// during a save leaves the previous one whole). After a verified download the core's boot loader
// (eboot) is told to copy the slot over the sketch at the next boot, as the core's Updater does.

#include <ESP8266WiFi.h>
#include <fota.h>

extern "C" {
#include <eboot_command.h>
}

static const char *const WIFI_SSID = "your-network";
static const char *const WIFI_PASS = "your-password";
static const char *const GATEWAY_HOST = "192.168.1.10";
static const uint16_t GATEWAY_PORT = 7683;
static const char DEVICE_ID[] = "boiler-17";
static const char DEVICE_CLASS[] = "esp8266-4m";
static const uint8_t DEVICE_PSK[FOTA_PSK_SIZE] = {0};   // from fota_provision.h
static const uint32_t FACTORY_SEQ = 1;                  // the sequence this build was published as

static const uint32_t FOTA_SLOT_SIZE = 512u * 1024u;     // the largest image this device takes
static const uint32_t SECTOR = FOTA_SECTOR_SIZE;
static const uint32_t IDLE_MS = 30000;                   // no byte from the gateway: give up
static const uint32_t CHECK_EVERY_MS = 6u * 3600u * 1000u;

static uint32_t slotAddr;      // flash address of the slot
static uint32_t stateSector;   // the first of the two state sectors
static struct fota_config cfg;
static struct fota_ctx ctx;    // static: about 1.8 KiB with the default frame buffer
static WiFiClient client;

// ---- flash: fota.h's callbacks on ESP.flash* (4-byte aligned offsets, lengths, buffers) ----

static int flashErase(void *, uint32_t sector)
{
  return ESP.flashEraseSector(slotAddr / SECTOR + sector) ? 0 : -1;
}

static int flashWrite(void *, uint32_t off, const uint8_t *data, size_t len)
{
  // The core's prototype takes a non-const pointer; it only reads the source.
  return ESP.flashWrite(slotAddr + off, (uint32_t *)(uintptr_t)data, len) ? 0 : -1;
}

static int flashRead(void *, uint32_t off, uint8_t *buf, size_t len)
{
  yield();   // the read back of the whole slot after the Final is a loop of these
  return ESP.flashRead(slotAddr + off, (uint32_t *)(void *)buf, len) ? 0 : -1;
}

static int flashSync(void *)
{
  return 0;   // flashWrite returns once the chip has programmed the bytes
}

static int randomBytes(void *, uint8_t *buf, size_t len)
{
  ESP.random(buf, len);   // the hardware RNG
  return 0;
}

// ---- durable state: two sectors, the newer whole record wins ----

struct StateRecord {
  uint32_t magic;
  uint32_t seq;
  struct fota_state st;
  uint32_t crc;
};
static const uint32_t STATE_MAGIC = 0x53544f46u;   // "FOTS"
static union { uint32_t align; StateRecord r; } rec;
static uint32_t stateSeq;
static int stateCurrent = -1;

static uint32_t crc32(const uint8_t *p, size_t n)
{
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) {
      c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
  }
  return ~c;
}

static bool readRecord(int i)
{
  if (!ESP.flashRead((stateSector + i) * SECTOR, &rec.align, sizeof rec.r)) {
    return false;
  }
  return rec.r.magic == STATE_MAGIC &&
         rec.r.crc == crc32((const uint8_t *)&rec.r, offsetof(StateRecord, crc));
}

static int stateLoad(void *, struct fota_state *st)
{
  bool ok0 = readRecord(0);
  uint32_t seq0 = rec.r.seq;
  bool ok1 = readRecord(1);
  uint32_t seq1 = rec.r.seq;

  memset(st, 0, sizeof *st);
  if (!ok0 && !ok1) {
    stateCurrent = -1;
    stateSeq = 0;
    st->running.seq = FACTORY_SEQ;
    return 0;
  }
  int pick = ok0 && (!ok1 || (int32_t)(seq0 - seq1) > 0) ? 0 : 1;
  if (pick == 0 && !readRecord(0)) {
    return -1;
  }
  stateCurrent = pick;
  stateSeq = pick == 0 ? seq0 : seq1;
  *st = rec.r.st;
  return 0;
}

// Into the sector not holding the current record: a cut leaves that one whole.
static int stateSave(void *, const struct fota_state *st)
{
  int next = stateCurrent == 0 ? 1 : 0;

  rec.r.magic = STATE_MAGIC;
  rec.r.seq = stateSeq + 1;
  rec.r.st = *st;
  rec.r.crc = crc32((const uint8_t *)&rec.r, offsetof(StateRecord, crc));
  if (!ESP.flashEraseSector(stateSector + next) ||
      !ESP.flashWrite((stateSector + next) * SECTOR, &rec.align, sizeof rec.r)) {
    return -1;
  }
  stateCurrent = next;
  stateSeq = rec.r.seq;
  return 0;
}

// ---- the session ----

// Tells eboot to copy the verified slot over the sketch at the next boot, then reboots.
static void installAndRestart(const struct fota_manifest *m)
{
  struct eboot_command cmd;

  memset(&cmd, 0, sizeof cmd);
  cmd.action = ACTION_COPY_RAW;
  cmd.args[0] = slotAddr;
  cmd.args[1] = 0x00000;
  cmd.args[2] = m->size;
  eboot_command_write(&cmd);
  ESP.restart();
}

// Feeds len bytes (none: just collect what the library owes) and acts on the events until the
// library needs more bytes or the session is over; returns that event.
static enum fota_event pump(const uint8_t *p, size_t len)
{
  for (;;) {
    size_t used, n;
    enum fota_event ev = fota_feed(&ctx, p, len, &used);

    p += used;
    len -= used;
    if (ev == FOTA_EV_SEND) {
      const uint8_t *tx = fota_tx(&ctx, &n);
      if (client.write(tx, n) != n) {
        return fota_close(&ctx);   // the connection is gone
      }
    } else if (ev == FOTA_EV_NEED_MORE || fota_is_final(ev)) {
      return ev;                   // NEED_MORE: every byte was used
    }
    // FOTA_EV_OFFER (fota_decline could refuse it here), FOTA_EV_PROGRESS: informational.
  }
}

// One session with the gateway; returns its final event.
static enum fota_event runSession()
{
  static uint8_t buf[512];
  size_t n;
  enum fota_event ev;

  if (fota_init(&ctx, &cfg) != FOTA_OK || !client.connect(GATEWAY_HOST, GATEWAY_PORT)) {
    return FOTA_EV_ERROR;
  }
  client.setNoDelay(true);
  ev = fota_start(&ctx);   // the boot counter is saved, then the Hello is built
  if (ev == FOTA_EV_SEND) {
    const uint8_t *hello = fota_tx(&ctx, &n);
    ev = client.write(hello, n) == n ? pump(NULL, 0) : fota_close(&ctx);
  }
  uint32_t last = millis();
  while (!fota_is_final(ev)) {
    int got = client.read(buf, sizeof buf);
    if (got > 0) {
      last = millis();
      ev = pump(buf, (size_t)got);
    } else if (!client.connected() || millis() - last > IDLE_MS) {
      ev = fota_close(&ctx);   // truncated: the durable offset holds for next time
    } else {
      delay(1);
    }
  }
  client.stop();
  return ev;
}

void setup()
{
  Serial.begin(115200);
  uint32_t sketchEnd = (ESP.getSketchSize() + SECTOR - 1) & ~(SECTOR - 1);
  uint32_t freeEnd = sketchEnd + ESP.getFreeSketchSpace();
  slotAddr = freeEnd - FOTA_SLOT_SIZE;
  stateSector = slotAddr / SECTOR - 2;

  cfg.device_id = DEVICE_ID;
  cfg.device_class = DEVICE_CLASS;
  cfg.gateway_id = NULL;
  cfg.psk = DEVICE_PSK;
  cfg.max_payload = FOTA_MAX_PAYLOAD;
  cfg.slot_size = FOTA_SLOT_SIZE;
  cfg.ack_every = 0;
  cfg.arg = NULL;
  cfg.random = randomBytes;
  cfg.flash_erase = flashErase;
  cfg.flash_write = flashWrite;
  cfg.flash_read = flashRead;
  cfg.flash_sync = flashSync;
  cfg.state_load = stateLoad;
  cfg.state_save = stateSave;
  if (freeEnd < sketchEnd + 2 * SECTOR + FOTA_SLOT_SIZE) {
    Serial.println("fota: the sketch leaves no room for the slot and state");
    cfg.slot_size = 0;   // fota_init refuses it: no session will run
  }

  WiFi.mode(WIFI_STA);
  WiFi.begin(WIFI_SSID, WIFI_PASS);
  for (int i = 0; i < 600 && WiFi.status() != WL_CONNECTED; i++) {
    delay(100);
  }
  // This image runs and reached the network: make it the running one (anti-rollback floor).
  enum fota_err err = fota_confirm(&cfg);
  Serial.printf("fota: confirm: %s\n", fota_err_name(err));
}

void loop()
{
  static uint32_t lastCheck;
  static bool first = true;

  if (!first && millis() - lastCheck < CHECK_EVERY_MS) {
    delay(100);
    return;
  }
  first = false;
  lastCheck = millis();
  enum fota_event ev = runSession();
  if (ev == FOTA_EV_DONE) {
    Serial.println("fota: new image verified; rebooting into it");
    installAndRestart(fota_manifest(&ctx));
  } else if (ev == FOTA_EV_RETRY) {
    lastCheck = millis() - CHECK_EVERY_MS + 1000u * fota_retry_after(&ctx);
  } else if (ev == FOTA_EV_ERROR) {
    Serial.printf("fota: %s\n", fota_err_name(fota_error(&ctx)));
  }
}
