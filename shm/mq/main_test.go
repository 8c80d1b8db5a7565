//go:build linux

package mq

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/procwire/procwire/internal/proc/proctest"
	"github.com/procwire/procwire/shm"
)

// Child processes are this test binary run again with childEnv naming a
// role; TestMain runs the role instead of the tests.
const childEnv = "PROCWIRE_MQ_CHILD"

// testPrefix starts the name of every segment the tests make, so that
// TestMain can check that none is left behind.
var testPrefix = fmt.Sprintf("mqtest-%d-", os.Getpid())

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(runChild(role))
	}
	// proctest.Main checks for leaked goroutines and segments; the mq
	// children have roles of their own (childEnv), so it starts none.
	os.Exit(proctest.Main(m, nil, filepath.Join(shm.Dir, "procwire."+testPrefix+"*")))
}

// qName returns a queue name unique to the test and this process.
func qName(t testing.TB) string {
	n := strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, t.Name())
	return testPrefix + n
}

// newQueue creates a queue for the test and removes it afterwards.
func createQ(t testing.TB, capacity int, opts *Options) *Queue {
	t.Helper()
	name := qName(t)
	q, err := Create(name, capacity, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		q.Close()
		Remove(name)
	})
	return q
}

// child is a running copy of the test binary in some role.
type child struct {
	cmd  *exec.Cmd
	out  *bufio.Scanner
	done chan error
}

// startChild runs role with the given environment (KEY=value).
func startChild(t testing.TB, role string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{childEnv + "=" + role}, env...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, out: bufio.NewScanner(out), done: make(chan error, 1)}
	t.Cleanup(func() { c.kill() })
	return c
}

// line waits for the child's next output line.
func (c *child) line(t testing.TB) string {
	t.Helper()
	if !c.out.Scan() {
		t.Fatalf("child ended without output: %v", c.out.Err())
	}
	return c.out.Text()
}

// kill sends SIGKILL and reaps the child.
func (c *child) kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
}

func (c *child) wait() error { return c.cmd.Wait() }

func envInt(key string) int {
	n, _ := strconv.Atoi(os.Getenv(key))
	return n
}

// acks is a raw segment of uint64 slots in which producer children record
// how many messages Send has acknowledged.
func ackSlot(seg *shm.Segment, i int) *uint64 {
	return (*uint64)(unsafe.Pointer(&seg.Data()[i*8]))
}

func runChild(role string) int {
	name := os.Getenv("MQ_NAME")
	ctx := context.Background()
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "child %s: %v\n", role, err)
		return 3
	}
	switch role {
	case "produce", "produce-batch":
		// Send forever (until killed), recording acknowledged messages.
		q, err := Open(name, nil)
		if err != nil {
			return fail(err)
		}
		ack, err := shm.Attach(os.Getenv("MQ_ACK"), nil)
		if err != nil {
			return fail(err)
		}
		id := envInt("MQ_ID")
		slot := ackSlot(ack, id)
		for seq := uint32(0); ; {
			if role == "produce" {
				if err := q.Send(ctx, testMsg(uint32(id), seq, 8+int(seq%100))); err != nil {
					return fail(err)
				}
				seq++
			} else {
				k := 1 + int(seq%7)
				batch := make([][]byte, k)
				for j := range batch {
					batch[j] = testMsg(uint32(id), seq+uint32(j), 8+int(seq%50))
				}
				if _, err := q.SendBatch(ctx, batch); err != nil {
					return fail(err)
				}
				seq += uint32(k)
			}
			atomic.StoreUint64(slot, uint64(seq))
		}
	case "send":
		// Send MQ_N messages of MQ_SIZE bytes (with SendBatch, 64 at a
		// time, if MQ_BATCH is set), then exit.
		q, err := Open(name, nil)
		if err != nil {
			return fail(err)
		}
		n, size := envInt("MQ_N"), envInt("MQ_SIZE")
		msg := make([]byte, size)
		if err := q.Send(ctx, []byte("ready")); err != nil {
			return fail(err)
		}
		if os.Getenv("MQ_BATCH") != "" {
			batch := make([][]byte, 64)
			for i := range batch {
				batch[i] = msg
			}
			for n > 0 {
				k := min(n, len(batch))
				if _, err := q.SendBatch(ctx, batch[:k]); err != nil {
					return fail(err)
				}
				n -= k
			}
			return 0
		}
		for range n {
			if err := q.Send(ctx, msg); err != nil {
				return fail(err)
			}
		}
		return 0
	case "send-paced":
		// Send MQ_N testMsg messages of 10 bytes, one at a time: wait
		// until the consumer has stored the message's seq+1 in ack slot
		// 0, then pause a random 0-16 µs (busy, no system call), so that
		// the consumer is on its way to sleep, or asleep, when the next
		// message is published, at every point of that way in turn.
		q, err := Open(name, nil)
		if err != nil {
			return fail(err)
		}
		ack, err := shm.Attach(os.Getenv("MQ_ACK"), nil)
		if err != nil {
			return fail(err)
		}
		acked := ackSlot(ack, 0)
		rnd := uint64(os.Getpid())
		for seq := range uint32(envInt("MQ_N")) {
			for atomic.LoadUint64(acked) != uint64(seq) {
			}
			rnd = rnd*6364136223846793005 + 1442695040888963407
			pause := time.Duration(rnd>>50) * 16 * time.Microsecond >> 14
			for start := time.Now(); time.Since(start) < pause; {
			}
			if err := q.Send(ctx, testMsg(1, seq, 10)); err != nil {
				return fail(err)
			}
		}
		return 0
	case "stall-write", "hold-shared":
		// Send MQ_N whole messages, then stop half way through writing
		// the next one, as if frozen or killed there: in its dedicated
		// lane, or (hold-shared) in the shared lane, holding its lock.
		q, err := Open(name, nil)
		if err != nil {
			return fail(err)
		}
		p := q.p
		p.lk.lock()
		if role == "hold-shared" {
			err = p.use(0)
		} else {
			err = p.lease()
		}
		p.lk.unlock()
		if err != nil {
			return fail(err)
		}
		for i := range envInt("MQ_N") {
			if err := q.Send(ctx, fmt.Appendf(nil, "whole %d", i)); err != nil {
				return fail(err)
			}
		}
		p.lk.lock()
		if err := p.begin(ctx); err != nil { // holds the shared lane's lock, if ours
			return fail(err)
		}
		t := p.tail
		// The payload and the terminator after it, but not yet the
		// header that would publish it.
		copy(p.l.buf[t&p.r.mask+recHeader:], "half a messa")
		*p.r.word(p.l, t+recSize(100)) = 0
		fmt.Println("stalled", p.idx)
		time.Sleep(time.Hour) // until killed; select{} would trip the deadlock detector
	case "consume-record":
		// Become the consumer and receive with ReceiveBatch until killed,
		// recording in ack slot MQ_ID the first and last (seq+1) of the
		// producer's messages it was given: in the handler, before the
		// release, as an at-least-once consumer would.
		q, err := Create(name, envInt("MQ_CAP"), nil)
		if err != nil {
			return fail(err)
		}
		ack, err := shm.Attach(os.Getenv("MQ_ACK"), nil)
		if err != nil {
			return fail(err)
		}
		id := envInt("MQ_ID")
		first, last := ackSlot(ack, 2*id), ackSlot(ack, 2*id+1)
		fmt.Println("consuming")
		for {
			_, err := q.ReceiveBatch(ctx, func(b []byte) {
				seq := uint64(le32(b[4:])) + 1
				if atomic.LoadUint64(first) == 0 {
					atomic.StoreUint64(first, seq)
				} else if l := atomic.LoadUint64(last); seq != l+1 {
					fmt.Fprintf(os.Stderr, "consumer %d: got seq %d after %d\n", id, seq-1, l-1)
					os.Exit(4)
				}
				atomic.StoreUint64(last, seq)
			})
			if err != nil {
				return fail(err)
			}
		}
	case "consume":
		// Become the consumer, receive MQ_N messages, report, and hang.
		q, err := Create(name, envInt("MQ_CAP"), nil)
		if err != nil {
			return fail(err)
		}
		for range envInt("MQ_N") {
			if _, err := q.Receive(ctx); err != nil {
				return fail(err)
			}
		}
		fmt.Println("received")
		time.Sleep(time.Hour) // until killed; select{} would trip the deadlock detector
	}
	return fail(fmt.Errorf("unknown role"))
}

func itoa(i int) string { return strconv.Itoa(i) }
