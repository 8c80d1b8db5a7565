//go:build linux

package alert_test

import (
	"context"
	"fmt"
	"os"

	"github.com/procwire/procwire/alert"
)

func Example() {
	ctx := context.Background()
	done := make(chan struct{})
	g, err := alert.Join(ctx, fmt.Sprintf("example-%d", os.Getpid()), &alert.Config{
		Handlers: map[string]alert.HandlerFunc{
			"hello": func(ctx context.Context, a *alert.Alert) {
				fmt.Printf("sender is me: %v, says %s\n", a.Sender == os.Getpid(), a.Data)
				close(done)
			},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer g.Close()
	// Sending to oneself goes through the inbox like any other alert.
	if err := g.Send(ctx, os.Getpid(), "hello", []byte("hi")); err != nil {
		fmt.Println(err)
		return
	}
	<-done
	// Output: sender is me: true, says hi
}

func ExampleGroup_Send_errors() {
	ctx := context.Background()
	g, err := alert.Join(ctx, fmt.Sprintf("example-errors-%d", os.Getpid()), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer g.Close()
	fmt.Println(g.Send(ctx, 1<<30, "hello", nil))
	fmt.Println(g.Send(ctx, os.Getpid(), string(make([]byte, 300)), nil))
	// Output:
	// no worker process with PID 1073741824
	// alert name length cannot exceed 254, was 300
}

func ExampleGroup_SendMany() {
	ctx := context.Background()
	got := make(chan string, 3)
	g, err := alert.Join(ctx, fmt.Sprintf("example-many-%d", os.Getpid()), &alert.Config{
		Handlers: map[string]alert.HandlerFunc{
			"job": func(ctx context.Context, a *alert.Alert) { got <- string(a.Data) },
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer g.Close()
	// The three alerts travel in one inbox message and are handled in order.
	n, err := g.SendMany(ctx, os.Getpid(), []alert.Message{
		{Name: "job", Data: []byte("one")},
		{Name: "job", Data: []byte("two")},
		{Name: "job", Data: []byte("three")},
	})
	fmt.Println(n, err)
	for range n {
		fmt.Println(<-got)
	}
	// Output:
	// 3 <nil>
	// one
	// two
	// three
}
