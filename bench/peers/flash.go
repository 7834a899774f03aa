package peers

import (
	"time"

	"github.com/fotagate/fotagate/devicelib"
)

// The device's flash, when FetchConfig.FlashTiming is set: every device writes what it
// receives into a flash with the ESP8266's timing (devicelib.TimedFlash: 45 ms per 4 KiB
// sector erased, 0.8 ms per 256-byte page a write touches) while it receives, as a
// microcontroller does: spi_flash_write blocks the CPU, so flash time adds to the transfer
// instead of overlapping it. A device writes one chunk at a time, the size of the buffer it
// has (the RAM tables count exactly that buffer), so small chunks touch a page several times.

// pacer sleeps what a TimedFlash charges, exactly in sum. It sleeps once at least pacerSlack
// is owed and carries any overshoot as credit: Go's timers overshoot each sub-millisecond
// sleep, which over 16,384 page writes would add seconds the flash never takes.
type pacer struct{ owed time.Duration }

const pacerSlack = 2 * time.Millisecond

func (p *pacer) sleep(d time.Duration) {
	p.owed += d
	if p.owed >= pacerSlack {
		p.flush()
	}
}

// flush sleeps whatever is still owed; a device calls it before it takes its end time.
func (p *pacer) flush() {
	if p.owed <= 0 {
		return
	}
	t0 := time.Now()
	time.Sleep(p.owed)
	p.owed -= time.Since(t0)
}

// timedFlash returns f with the ESP8266's timing, paced by p.
func timedFlash(f devicelib.Flash, p *pacer) *devicelib.TimedFlash {
	t := devicelib.WithESP8266Timing(f)
	t.Sleep = p.sleep
	return t
}

// timedStore charges each state save what it costs on an ESP8266: the state has a flash
// sector of its own, so a save is one erase and one page program.
type timedStore struct {
	devicelib.Store
	p *pacer
}

func (s timedStore) Save(st devicelib.State) error {
	s.p.sleep(devicelib.ESP8266EraseDelay + devicelib.ESP8266PageDelay)
	return s.Store.Save(st)
}

// nullFlash is a flash that keeps nothing: the peers other than fotagate keep the image in
// memory for the digest check and only need the flash's timing.
type nullFlash struct{}

func (nullFlash) SectorSize() int              { return sectorSize }
func (nullFlash) Size() int64                  { return 1 << 40 }
func (nullFlash) Erase(int) error              { return nil }
func (nullFlash) Write(int64, []byte) error    { return nil }
func (nullFlash) Read(_ int64, p []byte) error { clear(p); return nil }
func (nullFlash) Sync() error                  { return nil }

// sink is where a device other than fotagate's puts what it receives: the image in memory
// and, with flash timing, each chunk-sized piece programmed (after erasing the sectors it
// reaches) as soon as the device's chunk-sized buffer is full.
type sink struct {
	img      []byte
	chunk    int
	flash    *devicelib.TimedFlash // nil: no flash timing
	pace     pacer
	written  int // bytes programmed
	erasedTo int // end of the sectors erased
}

func newSink(f FetchConfig, sizeHint int) *sink {
	s := &sink{img: make([]byte, 0, max(sizeHint, 0)), chunk: f.Chunk}
	if f.FlashTiming {
		s.flash = timedFlash(nullFlash{}, &s.pace)
	}
	return s
}

func (s *sink) write(p []byte) {
	s.img = append(s.img, p...)
	if s.flash == nil {
		return
	}
	for len(s.img)-s.written >= s.chunk {
		s.program(s.chunk)
	}
}

// finish programs the last partial chunk and waits for the flash; it returns the image.
func (s *sink) finish() []byte {
	if s.flash != nil {
		if rest := len(s.img) - s.written; rest > 0 {
			s.program(rest)
		}
		s.pace.flush()
	}
	return s.img
}

func (s *sink) program(n int) {
	end := s.written + n
	for s.erasedTo < end {
		s.flash.Erase(s.erasedTo / sectorSize) //nolint:errcheck // nullFlash cannot fail
		s.erasedTo += sectorSize
	}
	s.flash.Write(int64(s.written), s.img[s.written:end]) //nolint:errcheck // nullFlash cannot fail
	s.written = end
}

// FlashTime is what the flash model alone charges for writing size bytes in chunk-sized
// writes, state saves not included: the time under which no peer can deliver the image
// with flash timing on.
func FlashTime(size, chunk int) time.Duration {
	sectors := (size + sectorSize - 1) / sectorSize
	var pages int
	for off := 0; off < size; off += chunk {
		end := min(off+chunk, size)
		pages += (end-1)/devicelib.PageSize - off/devicelib.PageSize + 1
	}
	return time.Duration(sectors)*devicelib.ESP8266EraseDelay + time.Duration(pages)*devicelib.ESP8266PageDelay
}
