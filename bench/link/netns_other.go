//go:build !linux

package link

import (
	"errors"
	"os/exec"
)

// Netns needs Linux; elsewhere the bench falls back to the proxies.
type Netns struct{}

// NetnsAvailable says why Netns cannot be used here.
func NetnsAvailable() error { return errors.New("network namespaces need Linux") }

// NewNetns is not available off Linux.
func NewNetns(Profile, uint64, int) (*Netns, error) { return nil, NetnsAvailable() }

// CleanStale has nothing to clean off Linux.
func CleanStale() error { return nil }

// ServerHost is not available off Linux.
func (*Netns) ServerHost() string { return "" }

// Command is not available off Linux.
func (*Netns) Command(bool, string, ...string) *exec.Cmd { return nil }

// Counts is not available off Linux.
func (*Netns) Counts() (up, down Counts) { return }

// Close has nothing to close off Linux.
func (*Netns) Close() error { return nil }
