package main

import (
	"encoding/json"
	"os"
	"testing"
	"time"
)

// Log shippers parse RFC 3339 times; zap's default for JSON is float seconds.
func TestJSONLogsCarryRFC3339Times(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w // the logger's "stderr" is os.Stderr when it is built
	log, err := newLogger("json", "info")
	os.Stderr = stderr
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hello")
	log.Sync() //nolint:errcheck // a pipe
	w.Close()
	var line struct {
		TS any `json:"ts"`
	}
	if err := json.NewDecoder(r).Decode(&line); err != nil {
		t.Fatal(err)
	}
	s, ok := line.TS.(string)
	if !ok {
		t.Fatalf("ts %v (%T), want an RFC 3339 string", line.TS, line.TS)
	}
	if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
		t.Fatalf("ts %q: %v", s, err)
	}
}
