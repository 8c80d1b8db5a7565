//go:build linux

package worker

import (
	"net"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDupListenerStaysNonBlocking: os/exec calls Fd on every file it hands
// to a child; that must not switch the shared listening socket to blocking
// mode (it did with (*net.TCPListener).File, and workers then hung in
// accept when told to stop).
func TestDupListenerStaysNonBlocking(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if network == "unix" {
				addr = filepath.Join(t.TempDir(), "s")
			}
			l, err := net.Listen(network, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			f, err := dupListener(l)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fd := f.Fd() // what os/exec does
			for name, fd := range map[string]int{"duplicate": int(fd), "listener": sysfd(t, l)} {
				flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
				if err != nil {
					t.Fatal(err)
				}
				if flags&unix.O_NONBLOCK == 0 {
					t.Errorf("%s is in blocking mode after Fd", name)
				}
				fdFlags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
				if err != nil {
					t.Fatal(err)
				}
				if name == "duplicate" && fdFlags&unix.FD_CLOEXEC == 0 {
					t.Error("duplicate is not close-on-exec")
				}
			}
		})
	}
}

func sysfd(t *testing.T, l net.Listener) int {
	sc, err := l.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var out int
	sc.Control(func(fd uintptr) { out = int(fd) })
	return out
}
