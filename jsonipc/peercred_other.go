//go:build !linux

package jsonipc

import (
	"errors"
	"net"
)

// peerCred is Linux-only: the server needs SO_PEERCRED to know and
// restrict its peers, so elsewhere every connection is refused.
func peerCred(*net.UnixConn) (Peer, error) {
	return Peer{}, errors.New("jsonipc: peer credentials (SO_PEERCRED) are only supported on Linux")
}

// peerGone cannot tell a half-close from a close here; no connection is
// ever served, so it does not matter.
func peerGone(*net.UnixConn) bool { return false }
