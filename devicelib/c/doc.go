// Package c holds the C device library (include/, src/, tests/): the microcontroller end of
// the flow, after the gateway's device session. The library is C; the Go code here only tests
// it, replaying Project Wycheproof vectors through tests/harness.c and comparing it with the Go
// standard library and golang.org/x/crypto on random inputs.
package c
