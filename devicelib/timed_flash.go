package devicelib

import "time"

// Timings of the ESP8266's SPI flash (typical datasheet figures of its 25Q-series chips), for
// TimedFlash.
const (
	ESP8266EraseDelay = 45 * time.Millisecond  // per 4 KiB sector
	ESP8266PageDelay  = 800 * time.Microsecond // per 256-byte page programmed
)

// TimedFlash adds the time a real flash takes to another Flash, so the bench sees the
// device's flash, not only the network, as the bottleneck it is. Reads and syncs are free.
type TimedFlash struct {
	Flash
	EraseDelay time.Duration       // per sector erased
	PageDelay  time.Duration       // per PageSize page a Write touches
	Sleep      func(time.Duration) // nil means time.Sleep; tests pass a fake clock
}

// WithESP8266Timing wraps f with the ESP8266 timings.
func WithESP8266Timing(f Flash) *TimedFlash {
	return &TimedFlash{Flash: f, EraseDelay: ESP8266EraseDelay, PageDelay: ESP8266PageDelay}
}

func (t *TimedFlash) sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	if t.Sleep != nil {
		t.Sleep(d)
		return
	}
	time.Sleep(d)
}

// Erase implements Flash.
func (t *TimedFlash) Erase(sector int) error {
	t.sleep(t.EraseDelay)
	return t.Flash.Erase(sector)
}

// Write implements Flash; a write costs one PageDelay per page it touches.
func (t *TimedFlash) Write(off int64, p []byte) error {
	if len(p) > 0 && off >= 0 {
		pages := (off+int64(len(p))-1)/PageSize - off/PageSize + 1
		t.sleep(time.Duration(pages) * t.PageDelay)
	}
	return t.Flash.Write(off, p)
}
