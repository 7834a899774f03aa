package protocol

import (
	"errors"
	"testing"
)

func TestCounterExhaustionEndsTheSession(t *testing.T) {
	var dk directionKeys
	h, err := newHalfConn(&dk)
	if err != nil {
		t.Fatal(err)
	}
	h.counter = MaxCounter
	if _, err := h.sealFrame(nil, TypeAck, []byte{1, 2, 3, 4}); err != nil {
		t.Fatalf("last counter refused: %v", err)
	}
	if _, err := h.sealFrame(nil, TypeAck, []byte{1, 2, 3, 4}); !errors.Is(err, ErrCounterExhausted) {
		t.Fatalf("sealed past MaxCounter: %v", err)
	}
	o, _ := newHalfConn(&dk)
	o.counter = MaxCounter + 1
	frame := []byte{TypeAck, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if _, err := o.openFrame(frame); !errors.Is(err, ErrCounterExhausted) {
		t.Fatalf("opened past MaxCounter: %v", err)
	}
}

func TestNonceIsIVXorCounter(t *testing.T) {
	dk := directionKeys{iv: [IVSize]byte{0: 0xff, 11: 0x0f}}
	h, _ := newHalfConn(&dk)
	h.counter = 0x0102
	if err := h.next(); err != nil {
		t.Fatal(err)
	}
	want := [12]byte{0: 0xff, 10: 0x01, 11: 0x0f ^ 0x02}
	if h.nonce != want || h.counter != 0x0103 {
		t.Fatalf("nonce %x counter %d", h.nonce, h.counter)
	}
}
