package dashboard

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fotagate/fotagate/gateway/admin"
	"github.com/fotagate/fotagate/gateway/cache"
	"github.com/fotagate/fotagate/gateway/catalog"
)

// The views below are what the templates print: every string in them is plain text, and
// html/template escapes it for where it lands. Nothing here builds HTML.

// tone is a status colour's CSS class. Every toned element also carries an icon and a word,
// so no state is told by colour alone.
type tone string

const (
	toneOK    tone = "ok"
	toneBusy  tone = "busy"
	toneWarn  tone = "warn"
	toneBad   tone = "bad"
	toneMuted tone = "muted"
)

type badge struct {
	Tone  tone
	Icon  string
	Label string
}

type timeView struct {
	ISO  string // empty for the zero time
	Text string // short, in the gateway's time zone
	Full string
}

func viewTime(t, now time.Time) timeView {
	if t.IsZero() {
		return timeView{}
	}
	t = t.In(now.Location())
	v := timeView{ISO: t.Format(time.RFC3339), Full: t.Format("Mon 2 Jan 2006 15:04:05 MST")}
	if y, m, d := t.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		v.Text = t.Format("15:04:05")
	} else {
		v.Text = t.Format("2 Jan 15:04")
	}
	return v
}

// summary is the row of tiles at the top; the page's script recounts it from the rows.
type summary struct {
	Devices, Updating, Attention int
	Refusals                     uint64
}

type deviceView struct {
	ID, Class, Remote string
	Running           string // "seq 7" or "v1.2 (seq 7)" when the catalog serves that seq
	Next              string // "seq 8 available", or installed and waiting for a reboot
	NextTone          tone
	LastSeen          timeView
	State             string // data-state: "updating" or the last outcome
	Attention         bool   // the last session ended badly and nothing is streaming now
	Result            *resultView
	Transfer          *transferView
}

type resultView struct {
	Badge  badge
	Detail string // "seq 7 · 12:00:01"
	Reason string // protocol reason name, when it says more than the outcome
	Hint   string
}

type transferView struct {
	Seq          uint32
	Offset, Size uint32
	Percent      string
	Done         string // "120 KiB of 256 KiB"
	Rate         string
	ETA          string
	Resumed      string
}

var outcomeBadges = map[admin.Outcome]badge{
	admin.OutcomeInstalled:    {toneOK, "✓", "Installed"},
	admin.OutcomeUpToDate:     {toneOK, "✓", "Up to date"},
	admin.OutcomeRetry:        {toneMuted, "…", "Told to retry"},
	admin.OutcomeRefused:      {toneBad, "✗", "Refused by device"},
	admin.OutcomeVerifyFailed: {toneBad, "✗", "Image rejected"},
	admin.OutcomeFailed:       {toneWarn, "!", "Interrupted"},
}

func viewDevice(d admin.Device, classes map[string]catalog.Status, now time.Time) deviceView {
	v := deviceView{ID: d.ID, Class: d.Class, Remote: d.Remote, LastSeen: viewTime(d.LastSeen, now)}
	v.Running = fmt.Sprintf("seq %d", d.Running)
	if st, ok := classes[d.Class]; ok && st.Seq != 0 {
		switch {
		case st.Seq == d.Running && st.Version != "":
			v.Running = fmt.Sprintf("%s (seq %d)", st.Version, d.Running)
		case st.Seq > d.Running:
			// A device runs what it installed only after it reboots into it and says so
			// in its next Hello.
			if r := d.LastResult; r != nil && r.Outcome == admin.OutcomeInstalled && r.Seq >= st.Seq {
				v.Next, v.NextTone = fmt.Sprintf("seq %d installed, runs after reboot", r.Seq), toneOK
			} else {
				v.Next, v.NextTone = fmt.Sprintf("seq %d available", st.Seq), toneWarn
			}
		}
	}
	if r := d.LastResult; r != nil {
		b, ok := outcomeBadges[r.Outcome]
		if !ok {
			b = badge{toneMuted, "?", string(r.Outcome)}
		}
		rv := &resultView{Badge: b, Detail: viewTime(r.Time, now).Text}
		if r.Seq != 0 {
			rv.Detail = fmt.Sprintf("seq %d · %s", r.Seq, rv.Detail)
		}
		if r.Reason != "" && r.Reason != "ok" {
			rv.Reason, rv.Hint = r.Reason, deviceHint(r.Reason)
		}
		v.Result = rv
		v.State = string(r.Outcome)
		v.Attention = b.Tone == toneBad || b.Tone == toneWarn
	}
	if t := d.Transfer; t != nil {
		v.State, v.Attention = "updating", false
		tv := &transferView{Seq: t.Seq, Offset: t.Offset, Size: t.Size,
			Percent: fmt.Sprintf("%d%%", int(t.Progress*100)),
			Done:    fmt.Sprintf("%s of %s", sizeText(int64(t.Offset)), sizeText(int64(t.Size)))}
		switch {
		case t.BytesPerSecond >= 1:
			tv.Rate = sizeText(int64(t.BytesPerSecond)) + "/s"
			if left := float64(t.Size-t.Offset) / t.BytesPerSecond; t.Offset < t.Size {
				tv.ETA = durationText(time.Duration(left*float64(time.Second))) + " left"
			}
		case t.Offset > t.From:
			tv.Rate = "stalled"
		default:
			tv.Rate = "starting"
		}
		if t.From > 0 {
			tv.Resumed = "resumed at " + sizeText(int64(t.From))
		}
		v.Transfer = tv
	}
	if v.State == "" {
		v.State = "seen"
	}
	return v
}

type refusalView struct {
	Badge   badge
	Kind    string
	Time    timeView
	Who     string // the device, "claims <id>", or "class <class>"
	WhoNote string
	Remote  string
	Reason  string
	Hint    string
	Error   string
}

var kindBadges = map[string]badge{
	"handshake_failed":                {toneBad, "✗", "Handshake refused"},
	string(admin.OutcomeRefused):      {toneWarn, "!", "Offer refused by device"},
	string(admin.OutcomeVerifyFailed): {toneBad, "✗", "Image rejected by device"},
	string(admin.OutcomeFailed):       {toneWarn, "!", "Transfer interrupted"},
	admin.KindUpstream:                {toneBad, "✗", "Upstream release refused"},
}

func viewRefusal(r admin.Refusal, now time.Time) refusalView {
	b, ok := kindBadges[r.Kind]
	if !ok {
		b = badge{toneMuted, "?", r.Kind}
	}
	v := refusalView{Badge: b, Kind: r.Kind, Time: viewTime(r.Time, now), Remote: r.Remote, Reason: r.Reason, Error: r.Error}
	switch {
	case r.Kind == admin.KindUpstream:
		v.Who, v.WhoNote = "class "+r.Class, "upstream"
		v.Hint = upstreamHint(r.Reason, r.Error)
	case r.DeviceID != "":
		v.Who = r.DeviceID
		if r.Seq != 0 {
			v.WhoNote = fmt.Sprintf("offered seq %d", r.Seq)
		}
		v.Hint = deviceHint(r.Reason)
	case r.ClaimedID != "":
		v.Who, v.WhoNote = "claims "+r.ClaimedID, "unverified"
		v.Hint = deviceHint(r.Reason)
	default:
		v.Who = "unknown device"
		v.Hint = deviceHint(r.Reason)
	}
	return v
}

// deviceHint says in a building operator's words what a protocol reason means and, where
// there is one, what to do.
func deviceHint(reason string) string {
	switch reason {
	case "auth_failed":
		return "Wrong key or unknown device ID: check the device's entry in the registry and the key it was flashed with."
	case "rate_limited":
		return "Too many failed handshakes from this address: it is being slowed down."
	case "busy":
		return "The gateway was at its session limit; the device retries later."
	case "rollback":
		return "The offered image is older than the one the device runs."
	case "wrong_class":
		return "The image is built for another device class."
	case "too_large":
		return "The image does not fit the device's update slot."
	case "bad_signature":
		return "The vendor signature did not verify on the device."
	case "digest_mismatch":
		return "The received image did not match its SHA-256: it was not installed."
	case "flash_error":
		return "The device could not write its flash."
	case "timeout":
		return "The connection went silent; the device resumes where it stopped."
	case "unavailable":
		return "The gateway could not read the image from its cache."
	case "unsupported_version", "unsupported_suite":
		return "The device's firmware speaks a protocol version this gateway does not."
	case "malformed", "bad_record", "unexpected_message", "truncated", "frame_too_large", "bad_chunk":
		return "Garbled or tampered traffic; the session was dropped."
	case "declined":
		return "The device declined the update."
	}
	return ""
}

// upstreamCertificate is the text of upstream.ErrCertificate, which every certificate error
// of the upstream client wraps; the refusal only keeps the error's text.
const upstreamCertificate = "upstream TLS refused"

func upstreamHint(reason, errText string) string {
	switch {
	case strings.Contains(errText, upstreamCertificate):
		return "The upstream's certificate was refused: check upstream.ca_bundle and upstream.pins, and both clocks."
	case reason == "manifest does not verify", reason == "restored manifest no longer verifies":
		return "The manifest signature does not verify with the configured vendor keys: nothing from it is served."
	case reason == "rollback":
		return "The upstream offers an older release than the one served: it is ignored."
	case reason == "same sequence, different image":
		return "The upstream changed an image without raising its sequence: it is ignored."
	case reason == "image does not match its manifest":
		return "The downloaded image differs from the signed manifest: it was discarded, not served."
	case reason == "image download failed":
		return "The image could not be downloaded; the gateway keeps serving what it has and retries."
	case reason == "image URL":
		return "The manifest names an image URL the gateway will not fetch."
	}
	return ""
}

type classView struct {
	Class, Version, Size, Digest, DigestFull string
	Seq                                      uint32
	LastPoll                                 timeView
	Status                                   badge
	Error                                    string
}

func viewClasses(sts []catalog.Status, now time.Time) []classView {
	out := make([]classView, 0, len(sts))
	for _, s := range sts {
		v := classView{Class: s.Class, Seq: s.Seq, Version: s.Version, DigestFull: s.SHA256,
			Digest: shortHex(s.SHA256), LastPoll: viewTime(s.LastPoll, now), Error: s.LastErr}
		if s.Seq != 0 {
			v.Size = sizeText(int64(s.Size))
		}
		switch {
		case s.LastErr != "":
			v.Status = badge{toneBad, "✗", "Last poll failed"}
			if s.Seq != 0 {
				v.Status = badge{toneWarn, "!", "Serving cached; last poll failed"}
			}
		case s.LastPoll.IsZero():
			v.Status = badge{toneMuted, "…", "Not polled yet"}
		case s.Seq == 0:
			v.Status = badge{toneWarn, "!", "Nothing to serve yet"}
		default:
			v.Status = badge{toneOK, "✓", "OK"}
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b classView) int { return strings.Compare(a.Class, b.Class) })
	return out
}

type imageView struct {
	Digest, DigestFull, Size string
	Readers                  int
	Serves                   string // the classes this image is the current release of
}

type cacheView struct {
	Images []imageView
	Stats  string
}

func viewCache(list []cache.Info, stats *cache.Stats, classes []catalog.Status) *cacheView {
	serves := map[string][]string{}
	for _, s := range classes {
		if s.SHA256 != "" {
			serves[s.SHA256] = append(serves[s.SHA256], s.Class)
		}
	}
	v := &cacheView{}
	for _, in := range list {
		full := hex.EncodeToString(in.Digest[:])
		cl := serves[full]
		slices.Sort(cl)
		v.Images = append(v.Images, imageView{Digest: shortHex(full), DigestFull: full,
			Size: sizeText(in.Size), Readers: in.Readers, Serves: strings.Join(cl, ", ")})
	}
	if s := stats; s != nil {
		parts := []string{plural(s.Entries, "image"), sizeText(s.Bytes)}
		if s.CapBytes > 0 {
			parts[1] += " of " + sizeText(s.CapBytes)
		}
		if n := s.Hits + s.Misses; n > 0 {
			parts = append(parts, fmt.Sprintf("%d%% hits", s.Hits*100/n))
		}
		if s.Evictions > 0 {
			parts = append(parts, fmt.Sprintf("%d evicted", s.Evictions))
		}
		if s.Quarantined > 0 {
			parts = append(parts, fmt.Sprintf("%d quarantined (corrupt on disk)", s.Quarantined))
		}
		v.Stats = strings.Join(parts, " · ")
	}
	return v
}

func shortHex(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// sizeText prints n bytes the way an operator reads them: 512 B, 12.5 KiB, 3.1 MiB.
func sizeText(n int64) string {
	const k = 1024
	switch {
	case n < k:
		return fmt.Sprintf("%d B", n)
	case n < k*k:
		return fmt.Sprintf("%.1f KiB", float64(n)/k)
	case n < k*k*k:
		return fmt.Sprintf("%.1f MiB", float64(n)/(k*k))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(k*k*k))
}

func durationText(d time.Duration) string {
	switch {
	case d < time.Second:
		return "< 1 s"
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()+0.5))
	}
	return fmt.Sprintf("%.1f h", d.Hours())
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
