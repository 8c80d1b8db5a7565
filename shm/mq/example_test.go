//go:build linux

package mq_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"strconv"

	"github.com/procwire/procwire/shm/mq"
)

func Example() {
	name := "example-jobs-" + strconv.Itoa(os.Getpid())
	ctx := context.Background()

	// The consumer makes the queue: a 64 KiB ring.
	q, err := mq.Create(name, 64<<10, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer mq.Remove(name)
	defer q.Close()

	// A producer, usually in another process, opens it by name.
	p, err := mq.Open(name, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	for _, job := range []string{"resize a.png", "resize b.png"} {
		if err := p.Send(ctx, []byte(job)); err != nil {
			log.Fatal(err)
		}
	}

	for range 2 {
		msg, err := q.Receive(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(msg))
	}
	// Output:
	// resize a.png
	// resize b.png
}

func ExampleQueue_ReceiveBatch() {
	name := "example-batch-" + strconv.Itoa(os.Getpid())
	ctx := context.Background()
	q, err := mq.Create(name, 64<<10, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer mq.Remove(name)
	defer q.Close()

	p, err := mq.Open(name, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	if _, err := p.SendBatch(ctx, [][]byte{[]byte("one"), []byte("two"), []byte("three")}); err != nil {
		log.Fatal(err)
	}

	// msg points into shared memory and is valid only during the call:
	// copy what must outlive it.
	total := 0
	n, err := q.ReceiveBatch(ctx, func(msg []byte) { total += len(msg) })
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, "messages,", total, "bytes")
	// Output: 3 messages, 11 bytes
}

func ExampleQueue_TrySend() {
	name := "example-full-" + strconv.Itoa(os.Getpid())
	q, err := mq.Create(name, 4096, &mq.Options{MaxMessage: 500})
	if err != nil {
		log.Fatal(err)
	}
	defer mq.Remove(name)
	defer q.Close()

	msg := make([]byte, 400) // ten fit
	for {
		if err := q.TrySend(msg); err != nil {
			fmt.Println(err)
			break
		}
	}
	fmt.Println(q.TrySend(make([]byte, 501)))
	// Output:
	// mq: queue full
	// mq: message too large: 501 bytes, limit 500
}

func ExampleQueue_SendParts() {
	name := "example-parts-" + strconv.Itoa(os.Getpid())
	ctx := context.Background()
	q, err := mq.Create(name, 64<<10, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer mq.Remove(name)
	defer q.Close()

	// A header and a payload from different buffers become one message,
	// copied once, straight into the queue.
	header, payload := []byte("resize:"), []byte("a.png")
	if err := q.SendParts(ctx, header, payload); err != nil {
		log.Fatal(err)
	}
	n, err := q.TryReceiveBatch(func(msg []byte) { fmt.Println(string(msg)) })
	fmt.Println(n, err)
	// Output:
	// resize:a.png
	// 1 <nil>
}

// Each producer Queue leases a lane of its own at its first send; when
// all Options.Lanes are leased, further producers share lane 0.
func ExampleOptions_lanes() {
	name := "example-lanes-" + strconv.Itoa(os.Getpid())
	ctx := context.Background()
	q, err := mq.Create(name, 4096, &mq.Options{Lanes: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer mq.Remove(name)
	defer q.Close()

	for i := range 3 {
		p, err := mq.Open(name, nil)
		if err != nil {
			log.Fatal(err)
		}
		defer p.Close()
		if err := p.Send(ctx, []byte("hello")); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("producer %d: lane %d\n", i, p.Stats().Lane)
	}
	// Output:
	// producer 0: lane 1
	// producer 1: lane 2
	// producer 2: lane 0
}
