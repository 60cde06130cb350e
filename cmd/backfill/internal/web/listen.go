package web

import (
	"errors"
	"fmt"
	"net"
)

// ErrRemote is a listen address that would expose the ledger beyond this
// machine without a token.
var ErrRemote = errors.New("refusing to listen beyond loopback")

// CheckListen refuses a listen address other than loopback unless remote
// access was asked for with a token: the pages show who approved and ran
// what, which is not for anyone on the network to read.
func CheckListen(addr string, allowRemote bool, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q is not HOST:PORT: %w", addr, err)
	}
	if isLoopback(host) {
		return nil
	}
	if !allowRemote || token == "" {
		return fmt.Errorf("%w: --listen %q is reachable from other machines; pass --allow-remote and --token TOKEN (required on every request) to allow it", ErrRemote, addr)
	}
	return nil
}

// isLoopback reports whether host names only this machine. An empty host
// is every interface, so it is not.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
