// Package c holds the C device library (include/, src/, ports/, tests/): the microcontroller end
// of the flow, after the gateway's device session. It implements the device role of
// protocol/PROTOCOL.md as a push state machine in portable C99 for ESP8266-class cores, on top
// of its own constant-time ChaCha20-Poly1305, SHA-256 and HKDF. The library is C; the Go code
// here only tests it: the protocol vectors byte for byte, sessions against the Go gateway role
// in process and the real gateway server over loopback, Project Wycheproof, and differential
// tests of the crypto against the Go standard library and golang.org/x/crypto.
package c
