package jsonipc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// payload returns a JSON string of exactly n bytes.
func payload(n int) json.RawMessage {
	return json.RawMessage(`"` + strings.Repeat("x", n-2) + `"`)
}

// socketPair returns the two ends of a bare AF_UNIX stream socketpair.
func socketPair(b *testing.B) (net.Conn, net.Conn) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		b.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	return conn(fds[0]), conn(fds[1])
}

// pingPong measures n round trips of a size-byte message over a bare
// socketpair with an echoing goroutine: the floor any protocol pays.
func pingPong(b *testing.B, size, n int) time.Duration {
	a, z := socketPair(b)
	defer a.Close()
	go func() {
		defer z.Close()
		buf := make([]byte, size)
		for {
			if _, err := io.ReadFull(z, buf); err != nil {
				return
			}
			if _, err := z.Write(buf); err != nil {
				return
			}
		}
	}()
	msg := bytes.Repeat([]byte("x"), size)
	in := make([]byte, size)
	start := time.Now()
	for range n {
		if _, err := a.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(a, in); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// BenchmarkEchoRoundTrip is pixl-ipc's table: sequential echo calls with
// the Go client, each size next to a bare socketpair ping-pong of the
// same size in the same run. ratio = jsonipc time / socketpair time.
func BenchmarkEchoRoundTrip(b *testing.B) {
	_, path := startServer(b, nil, nil)
	c := dialClient(b, path, nil)
	ctx := context.Background()
	for _, size := range []int{1 << 10, 5 << 10, 10 << 10, 20 << 10, 100 << 10} {
		b.Run(fmt.Sprintf("%dK", size>>10), func(b *testing.B) {
			data := payload(size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				out, err := c.CallRaw(ctx, "/ipcserver/test/echo", data)
				if err != nil || len(out) != size {
					b.Fatalf("echo: %d bytes, %v", len(out), err)
				}
			}
			ipc := time.Since(start)
			b.StopTimer()
			// The request line carries the envelope too; the floor is a
			// message of the payload's size each way.
			bare := pingPong(b, size, b.N)
			b.ReportMetric(float64(bare.Nanoseconds())/float64(b.N), "socketpair-ns/op")
			b.ReportMetric(float64(ipc)/float64(bare), "ratio")
		})
	}
}

// BenchmarkPipelined keeps 64 requests of 100-byte echo in flight on one
// connection with a raw client that costs almost nothing, so ns/op,
// allocs/op and req/s are the server's. "inline" is the built-in echo;
// "handler" is a user handler, which runs in its own goroutine.
func BenchmarkPipelined(b *testing.B) {
	for _, bc := range []struct{ name, uri string }{
		{"inline", "/ipcserver/test/echo"},
		{"handler", "/bench/echo"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			_, path := startServer(b, nil, func(s *Server) {
				s.Handle("/bench/echo", HandlerFunc(func(_ context.Context, r *Request) (any, error) {
					return r.Data, nil
				}))
			})
			pipelined(b, path, bc.uri, 64, payload(100))
		})
	}
}

func pipelined(b *testing.B, path, uri string, window int, data []byte) {
	nc, err := net.Dial("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	req := []byte(`{"ipcReqID":"rq1","uri":"` + uri + `","data":` + string(data) + "}\n")
	batch := bytes.Repeat(req, window)
	tokens := make(chan struct{}, window)
	for range window {
		tokens <- struct{}{}
	}
	done := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	go func() {
		buf := make([]byte, 256<<10)
		got := 0
		for got < b.N {
			n, err := nc.Read(buf)
			if err != nil {
				done <- err
				return
			}
			k := bytes.Count(buf[:n], []byte{'\n'})
			got += k
			for range k {
				tokens <- struct{}{}
			}
		}
		done <- nil
	}()
	for sent := 0; sent < b.N; {
		<-tokens
		n := 1
	more:
		for n < window && sent+n < b.N {
			select {
			case <-tokens:
				n++
			default:
				break more
			}
		}
		if _, err := nc.Write(batch[:n*len(req)]); err != nil {
			b.Fatal(err)
		}
		sent += n
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

// BenchmarkClientParallel is the Go client at 64 concurrent calls on one
// connection, 100-byte echo.
func BenchmarkClientParallel(b *testing.B) {
	_, path := startServer(b, nil, nil)
	c := dialClient(b, path, nil)
	data := payload(100)
	b.SetParallelism(64 / max(1, runtimeProcs()))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.CallRaw(context.Background(), "/ipcserver/test/echo", data); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// BenchmarkEnvelope is the validating scan of a request line with a
// 100 KB string in data, the server's per-byte cost.
func BenchmarkEnvelope(b *testing.B) {
	line := []byte(`{"ipcReqID":1,"uri":"/x","data":` + string(payload(100<<10)) + `}`)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	var e envelope
	for range b.N {
		if err := parseEnvelope(line, &e); err != nil {
			b.Fatal(err)
		}
	}
}
