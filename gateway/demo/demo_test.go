package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"
)

func TestDemoShowsEverythingItClaims(t *testing.T) {
	var out bytes.Buffer
	s, err := Run(context.Background(), Options{Devices: 4, ImageSize: 200_000, Out: &out, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(s.Devices) != 4 {
		t.Fatalf("%d devices", len(s.Devices))
	}
	resumed := 0
	for _, d := range s.Devices {
		if d.ResumedFrom > 0 {
			resumed++
			if d.Received >= uint32(s.Size) {
				t.Errorf("%s resumed but received the whole image again", d.ID)
			}
		}
	}
	if resumed != 1 {
		t.Errorf("%d devices resumed, want 1", resumed)
	}
	h3 := 0
	for k, n := range s.Requests {
		if strings.HasPrefix(k, "h3 ") {
			h3 += n
		}
	}
	if h3 == 0 {
		t.Errorf("auto transport never used HTTP/3: %v", s.Requests)
	}
	for _, want := range []string{"demo ok", "refused (auth_failed)", "up_to_date"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
