package jsonipc_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/procwire/procwire/jsonipc"
)

// The pixl-ipc README example: a server with one handler, and a client
// that calls it and the built-in echo.
func Example() {
	dir, _ := os.MkdirTemp("", "jsonipc-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "example.sock")

	srv := jsonipc.NewServer(nil)
	srv.Handle("/myapi/test.*", jsonipc.HandlerFunc(func(ctx context.Context, req *jsonipc.Request) (any, error) {
		return map[string]string{"hello": "thanks for your message"}, nil
	}))
	if err := srv.Listen(path); err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error)
	go func() { done <- srv.Serve(ctx) }()

	c, err := jsonipc.Dial(context.Background(), path, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	var reply map[string]string
	if err := c.Call(context.Background(), "/myapi/test", map[string]int{"foo": 1}, &reply); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(reply["hello"])

	echoed, _ := c.CallRaw(context.Background(), "/ipcserver/test/echo", []byte(`{"keys":"keep","their":"order"}`))
	fmt.Println(string(echoed))

	c.Close()
	stop()
	fmt.Println(<-done)
	// Output:
	// thanks for your message
	// {"keys":"keep","their":"order"}
	// <nil>
}

// A handler can push messages without ipcReqID to its client, which
// receives them through ClientConfig.OnMessage.
func ExampleConn_Push() {
	dir, _ := os.MkdirTemp("", "jsonipc-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "push.sock")

	srv := jsonipc.NewServer(nil)
	srv.Handle("/subscribe", jsonipc.HandlerFunc(func(ctx context.Context, req *jsonipc.Request) (any, error) {
		return "subscribed", req.Conn().Push(ctx, map[string]string{"alert": "disk full"})
	}))
	srv.Listen(path)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx) }()

	got := make(chan string, 1)
	c, _ := jsonipc.Dial(context.Background(), path, &jsonipc.ClientConfig{
		OnMessage: func(msg []byte) { got <- string(msg) },
	})
	var status string
	c.Call(context.Background(), "/subscribe", nil, &status)
	fmt.Println(status)
	fmt.Println(<-got)

	c.Close()
	stop()
	<-done
	// Output:
	// subscribed
	// {"alert":"disk full"}
}
