// Package protocol implements fotagate's device protocol v1, specified in PROTOCOL.md beside
// this file: a three-message pre-shared-key handshake and a ChaCha20-Poly1305 record stream
// that carries one firmware image from the gateway to a device in fixed-size chunks.
//
// It sits between the gateway's catalog and the device's flash: gateway/server and devicelib
// drive both roles through it. The message codecs and the handshake state machines do no I/O;
// conn.go runs them over any io.ReadWriter.
package protocol

//go:generate go test -run TestVectorsAreGenerated -update .
//go:generate go test -run TestFuzzSeedsMatchVectors -update-fuzz-seeds .
