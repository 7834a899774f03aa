package devicelib

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"time"

	"github.com/fotagate/fotagate/protocol"
	"go.uber.org/zap"
)

// Update runs one session with the gateway at the other end of conn: it saves a new boot
// counter, shakes hands (resuming a download of the same image at its durable offset),
// streams the image into the staging slot and verifies it. The caller dials and closes conn;
// Update sets its deadline from ctx when conn has SetDeadline (a net.Conn), or closes it on
// cancellation otherwise.
//
// The error is nil for Installed, UpToDate and Retry. Refused comes with the policy error
// (errors.Is(err, protocol.ErrRollback) and so on), Failed with what failed. The Result is
// filled in as far as the session got either way.
func (d *Device) Update(ctx context.Context, conn io.ReadWriter) (res Result, err error) {
	if !d.busy.CompareAndSwap(false, true) {
		return res, ErrInUse
	}
	defer d.busy.Store(false)
	if err := ctx.Err(); err != nil {
		return res, err
	}
	stop := watchContext(ctx, conn)
	defer func() {
		stop()
		if err != nil {
			cerr := context.Cause(ctx)
			if dl, ok := ctx.Deadline(); ok && cerr == nil && !time.Now().Before(dl) {
				cerr = context.DeadlineExceeded // the conn's deadline fired before ctx's timer
			}
			if cerr != nil && !errors.Is(err, cerr) {
				err = fmt.Errorf("%w: %w", cerr, err)
			}
			res.Reason = protocol.Reason(err)
			d.log.Warn("update failed", zap.Stringer("outcome", res.Outcome), zap.String("reason", res.Reason),
				zap.Uint32("seq", res.Image.Seq), zap.Uint32("resumed_from", res.ResumedFrom),
				zap.Uint32("received", res.Received), zap.Error(err))
			return
		}
		d.log.Info("update finished", zap.Stringer("outcome", res.Outcome), zap.Uint32("seq", res.Image.Seq),
			zap.Uint32("resumed_from", res.ResumedFrom), zap.Uint32("received", res.Received))
	}()

	if err := d.load(); err != nil {
		return res, err
	}
	s := &session{d: d, st: d.State(), hash: sha256.New()}
	// The counter goes into the nonce: it must be durable before the Hello exists.
	if s.st.BootCounter == math.MaxUint32 {
		return res, ErrBootCounterExhausted
	}
	s.st.BootCounter++
	if err := s.persist(); err != nil {
		return res, fmt.Errorf("saving the boot counter: %w", err)
	}
	res.BootCounter = s.st.BootCounter

	resume, err := s.resumePoint()
	if err != nil {
		return res, err
	}
	pc := &protocol.DeviceConfig{
		DeviceID:    d.cfg.ID,
		PSK:         d.cfg.PSK,
		Class:       d.cfg.Class,
		Running:     s.st.Running.Seq,
		MaxPayload:  d.cfg.MaxPayload,
		MaxImage:    d.slot,
		VendorKeys:  d.cfg.VendorKeys,
		GatewayID:   d.cfg.GatewayID,
		BootCounter: s.st.BootCounter,
		Rand:        d.cfg.Rand,
		Resume:      resume,
	}
	dc, err := protocol.NewDeviceConn(conn, pc)
	clear(pc.PSK[:])
	if err != nil {
		return res, err
	}
	s.dc = dc
	offer, err := dc.Handshake(s.accept)
	if offer != nil {
		res.GatewayID = offer.GatewayID
		if offer.Manifest != nil {
			res.Image = Image{Seq: offer.Manifest.Seq, Size: offer.Manifest.Size, Digest: offer.Manifest.Digest}
		}
	}
	switch {
	case s.prepErr != nil: // refused with flash_error: the slot or state could not be prepared
		return res, s.prepErr
	case errors.Is(err, protocol.ErrStaleResume):
		// The gateway streams from our resume offset, but for another image: forget the
		// resume point, so the next Hello names none and that session starts afresh.
		s.st.Resume, s.st.Pending = Resume{}, Image{}
		if perr := s.persist(); perr != nil {
			return res, perr
		}
		res.Outcome = Refused
		return res, err
	case err != nil && !s.accepted && offer != nil && offer.Status == protocol.StatusOffer && isPolicy(err):
		res.Outcome = Refused
		return res, err
	case err != nil:
		return res, fmt.Errorf("handshake: %w", err)
	case offer.Status == protocol.StatusUpToDate:
		res.Outcome = UpToDate
		return res, nil
	case offer.Status == protocol.StatusRetry:
		res.Outcome, res.RetryAfter = Retry, time.Duration(offer.RetryAfter)*time.Second
		return res, nil
	}

	res.ResumedFrom = uint32(s.start)
	err = s.download(ctx)
	res.Received = uint32(s.pos - s.start)
	if err != nil {
		return res, err
	}
	res.Outcome = Installed
	return res, nil
}

// isPolicy reports whether err is one of DeviceConfig.Check's refusals.
func isPolicy(err error) bool {
	for _, e := range []error{protocol.ErrWrongClass, protocol.ErrRollback, protocol.ErrDeclined,
		protocol.ErrTooLarge, protocol.ErrBadChunk, protocol.ErrBadSignature} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// session is the state of one Update between the handshake and the Report. Offsets are
// int64 so no sum of them can overflow.
type session struct {
	d   *Device
	dc  *protocol.DeviceConn
	st  State // working copy of the device state; persist saves it
	m   protocol.Manifest
	img Image

	accepted bool  // the policy check passed and accept ran
	prepErr  error // accept could not prepare the slot

	size       int64
	start      int64 // offset the session resumed from
	pos        int64 // offset of the next payload byte
	written    int64 // bytes programmed into flash: pos rounded down to a word
	durable    int64 // synced, saved and acknowledged
	nextCommit int64 // next multiple of AckEvery at which to make progress durable
	erasedTo   int64 // end of the sectors erased for this image, a sector boundary

	hash  hash.Hash // running SHA-256 of image [0, pos)
	tail  [WordSize]byte
	tailN int
	buf   [PageSize]byte // flash reads
}

func (s *session) persist() error { return s.d.save(s.st) }

// alert tells the gateway why the device gives up, best effort: the session is over anyway.
func (s *session) alert(code byte) {
	if s.dc.Session() != nil {
		s.dc.Alert(code) //nolint:errcheck // best effort
	}
}

// resumePoint is where this device can resume, named in its Hello (PROTOCOL.md 4.1, 9.1):
// all of a verified image waiting for the reboot, or the durable prefix of a download,
// backed off to its sector's start when bytes past it may have been written before a cut
// (writing over them would need an erase, which would take [sector start, D) with it).
func (s *session) resumePoint() (protocol.ResumePoint, error) {
	switch {
	case !s.st.Pending.IsZero():
		return protocol.ResumePoint{Offset: s.st.Pending.Size, Digest: s.st.Pending.Digest}, nil
	case s.st.Resume.IsZero() || s.st.Resume.Durable == 0:
		return protocol.ResumePoint{}, nil
	}
	r := s.st.Resume
	start, size := int64(r.Durable), int64(r.Size)
	ss := int64(s.d.cfg.Flash.SectorSize())
	if start != size && start%WordSize != 0 {
		start -= start % ss // cannot happen with our own records; be safe anyway
	}
	if start < size && start%ss != 0 {
		clean, err := s.erased(start, min(start-start%ss+ss, s.d.cfg.Flash.Size()))
		if err != nil {
			return protocol.ResumePoint{}, fmt.Errorf("%w: checking the slot past the durable offset: %w", protocol.ErrFlash, err)
		}
		if !clean {
			start -= start % ss
		}
	}
	return protocol.ResumePoint{Offset: uint32(start), Digest: r.Digest}, nil
}

// accept is the handshake's prepare callback, called once the offer passed the policy check
// with the offset the gateway streams from: the resume point's for the image it named, else
// 0. It readies the slot, hash and state for it; an error refuses the offer (flash_error).
func (s *session) accept(m *protocol.Manifest, start uint32) error {
	s.accepted = true
	if err := s.prepare(m, int64(start)); err != nil {
		s.prepErr = err
		return fmt.Errorf("%w: %w", protocol.ErrFlash, err)
	}
	return nil
}

func (s *session) prepare(m *protocol.Manifest, start int64) error {
	s.m = *m
	s.img = Image{Seq: m.Seq, Size: m.Size, Digest: m.Digest}
	s.size = int64(m.Size)
	ss := int64(s.d.cfg.Flash.SectorSize())
	switch {
	case start == s.size && s.st.Pending.same(s.img):
		// Already downloaded and verified, waiting for a reboot: take nothing but the (empty)
		// Final, verify the slot again and report it, so the gateway learns it is installed.
	case start > 0: // the resume point's image (the protocol checked the whole digest)
		if start != int64(s.st.Resume.Durable) || s.st.Resume.Seq != s.img.Seq {
			s.st.Resume = Resume{Image: s.img, Durable: uint32(start)}
			if err := s.persist(); err != nil {
				return err
			}
		}
	default:
		// A new image: record it before the first erase, so the state never claims bytes
		// the slot no longer holds. A pending image is overwritten, so it goes too.
		s.st.Resume = Resume{Image: s.img}
		s.st.Pending = Image{}
		if err := s.persist(); err != nil {
			return err
		}
	}
	// Never trust the previous session's hash, only the flash below the durable offset.
	if err := hashFlash(s.d.cfg.Flash, start, s.hash, s.buf[:]); err != nil {
		return fmt.Errorf("%w: rebuilding the hash of [0, %d): %w", protocol.ErrFlash, start, err)
	}
	s.start, s.pos, s.written, s.durable = start, start, start, start
	s.erasedTo = start
	if start%ss != 0 {
		s.erasedTo = start - start%ss + ss // checked erased above
	}
	s.nextCommit = (start/s.d.ackEvery + 1) * s.d.ackEvery
	return nil
}

// erased reports whether flash [from, to) is all Erased.
func (s *session) erased(from, to int64) (bool, error) {
	for off := from; off < to; {
		b := s.buf[:min(int64(len(s.buf)), to-off)]
		if err := s.d.cfg.Flash.Read(off, b); err != nil {
			return false, err
		}
		if firstNotErased(b) >= 0 {
			return false, nil
		}
		off += int64(len(b))
	}
	return true, nil
}

// download receives the data frames into the slot, then verifies the slot and reports.
func (s *session) download(ctx context.Context) error {
	s.progress()
	for {
		if err := ctx.Err(); err != nil {
			s.alert(protocol.CodeTimeout)
			return err
		}
		p, off, final, err := s.dc.Next()
		if err != nil {
			var pe *protocol.PeerError
			if !errors.As(err, &pe) && !errors.Is(err, protocol.ErrTruncated) && isProtocolError(err) {
				s.alert(protocol.CodeFor(err))
			}
			return fmt.Errorf("receiving at %d: %w", s.pos, err)
		}
		if int64(off) != s.pos { // the session enforces order; this guards our bookkeeping
			s.alert(protocol.CodeMalformed)
			return fmt.Errorf("%w: payload for %d while expecting %d", protocol.ErrMalformed, off, s.pos)
		}
		s.hash.Write(p)
		if err := s.store(p); err != nil {
			s.alert(protocol.CodeFlashError)
			return err
		}
		if final {
			return s.finish()
		}
		s.progress()
	}
}

// isProtocolError reports whether err came from the protocol (worth an Alert) rather than
// from the connection.
func isProtocolError(err error) bool {
	return protocol.Reason(err) != "other"
}

func (s *session) progress() {
	if s.d.cfg.Progress == nil {
		return
	}
	s.d.cfg.Progress(Progress{DeviceID: s.d.cfg.ID, Image: s.img, Start: uint32(s.start),
		Received: uint32(s.pos), Durable: uint32(s.durable)})
}

// store writes one payload, making progress durable at every multiple of AckEvery it
// crosses. Commits land exactly on those multiples, so a resume starts on one.
func (s *session) store(p []byte) error {
	for len(p) > 0 {
		n := int64(len(p))
		if s.pos+n > s.nextCommit {
			n = s.nextCommit - s.pos
		}
		if err := s.write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
		if s.pos == s.nextCommit && s.pos < s.size {
			if err := s.commit(); err != nil {
				return err
			}
		}
	}
	return nil
}

// write buffers p into whole words and programs them.
func (s *session) write(p []byte) error {
	s.pos += int64(len(p))
	if s.tailN > 0 {
		k := copy(s.tail[s.tailN:], p)
		s.tailN += k
		p = p[k:]
		if s.tailN < WordSize {
			return nil
		}
		s.tailN = 0
		if err := s.program(s.tail[:]); err != nil {
			return err
		}
	}
	whole := len(p) &^ (WordSize - 1)
	if whole > 0 {
		if err := s.program(p[:whole]); err != nil {
			return err
		}
	}
	s.tailN = copy(s.tail[:], p[whole:])
	return nil
}

// program writes whole words at s.written, erasing the sectors it reaches first.
func (s *session) program(p []byte) error {
	end := s.written + int64(len(p))
	ss := int64(s.d.cfg.Flash.SectorSize())
	for s.erasedTo < end {
		if s.erasedTo < s.durable { // would destroy durable bytes: a bookkeeping bug
			return fmt.Errorf("devicelib: erasing at %d below the durable offset %d", s.erasedTo, s.durable)
		}
		if err := s.d.cfg.Flash.Erase(int(s.erasedTo / ss)); err != nil {
			return fmt.Errorf("%w: erasing sector %d: %w", protocol.ErrFlash, s.erasedTo/ss, err)
		}
		s.erasedTo += ss
	}
	if err := s.d.cfg.Flash.Write(s.written, p); err != nil {
		return fmt.Errorf("%w: writing %d bytes at %d: %w", protocol.ErrFlash, len(p), s.written, err)
	}
	s.written = end
	return nil
}

// commit makes [0, pos) durable: flash first, then the record, then the Ack. A cut between
// any two steps leaves the record at or below what the flash holds.
func (s *session) commit() error {
	if s.tailN != 0 || s.written != s.pos {
		return fmt.Errorf("devicelib: commit at %d with %d bytes unwritten", s.pos, s.pos-s.written)
	}
	if err := s.d.cfg.Flash.Sync(); err != nil {
		return fmt.Errorf("%w: sync: %w", protocol.ErrFlash, err)
	}
	s.st.Resume.Durable = uint32(s.pos)
	if err := s.persist(); err != nil {
		return err
	}
	s.durable = s.pos
	s.nextCommit += s.d.ackEvery
	if err := s.dc.Ack(uint32(s.pos)); err != nil {
		return fmt.Errorf("sending Ack %d: %w", s.pos, err)
	}
	return nil
}

// finish writes the last word, makes the whole image durable, verifies the slot and reports.
func (s *session) finish() error {
	if s.tailN > 0 {
		for i := s.tailN; i < WordSize; i++ {
			s.tail[i] = Erased // programs nothing; reads back erased
		}
		s.tailN = 0
		if err := s.program(s.tail[:]); err != nil {
			s.alert(protocol.CodeFlashError)
			return err
		}
	}
	if err := s.d.cfg.Flash.Sync(); err != nil {
		s.alert(protocol.CodeFlashError)
		return fmt.Errorf("%w: sync: %w", protocol.ErrFlash, err)
	}
	if s.st.Resume.same(s.img) && int64(s.st.Resume.Durable) != s.size {
		// A cut before the Report then resumes at the end and only verifies.
		s.st.Resume.Durable = uint32(s.size)
		if err := s.persist(); err != nil {
			s.alert(protocol.CodeFlashError)
			return err
		}
	}
	s.durable = s.size
	s.progress()

	code, verr := s.verify()
	if verr != nil {
		// The slot's bytes are wrong somewhere below the durable offset: none can be trusted,
		// so the next session downloads the image from the start.
		s.st.Resume, s.st.Pending = Resume{}, Image{}
		if err := s.persist(); err != nil {
			s.alert(protocol.CodeFlashError)
			return errors.Join(verr, err)
		}
		if err := s.dc.Report(code, uint32(s.size)); err != nil {
			return errors.Join(verr, fmt.Errorf("sending Report: %w", err))
		}
		return verr
	}
	s.st.Resume, s.st.Pending = Resume{}, s.img
	if err := s.persist(); err != nil {
		if rerr := s.dc.Report(protocol.CodeFlashError, uint32(s.size)); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	if err := s.dc.Report(protocol.CodeOK, uint32(s.size)); err != nil {
		// The image is verified and pending either way; the gateway learns it from the
		// running sequence in the next Hello.
		s.d.log.Warn("installed, but the Report did not reach the gateway", zap.Error(err))
	}
	return nil
}

// verify checks the slot as it reads back from flash, not only the bytes as they streamed
// past, against the manifest's digest, and the vendor signature when keys are configured.
func (s *session) verify() (code byte, err error) {
	var streamed, slot [protocol.DigestSize]byte
	s.hash.Sum(streamed[:0])
	s.hash.Reset()
	if err := hashFlash(s.d.cfg.Flash, s.size, s.hash, s.buf[:]); err != nil {
		return protocol.CodeFlashError, fmt.Errorf("%w: reading back the slot: %w", protocol.ErrFlash, err)
	}
	s.hash.Sum(slot[:0])
	switch {
	case slot != s.m.Digest:
		return protocol.CodeDigestMismatch, fmt.Errorf("%w: slot reads back as %x, manifest says %x (streamed %x)", protocol.ErrDigestMismatch, slot[:8], s.m.Digest[:8], streamed[:8])
	case streamed != s.m.Digest:
		return protocol.CodeDigestMismatch, fmt.Errorf("%w: streamed bytes hash to %x, manifest says %x", protocol.ErrDigestMismatch, streamed[:8], s.m.Digest[:8])
	case len(s.d.cfg.VendorKeys) > 0 && !s.m.VerifySignature(s.d.cfg.VendorKeys):
		return protocol.CodeBadSignature, fmt.Errorf("%w: image %x", protocol.ErrBadSignature, s.m.Digest[:8])
	}
	return protocol.CodeOK, nil
}
