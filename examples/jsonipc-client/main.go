// Command jsonipc-client is pixl-ipc's README client in Go: it connects
// to a server and makes the README's two sends, /myapi/test and the
// built-in echo, printing each reply.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/procwire/procwire/jsonipc"
)

func main() {
	socket := flag.String("socket", "/tmp/jsonipc-example.sock", "Unix socket `path` of the server")
	flag.Parse()
	if err := run(*socket); err != nil {
		fmt.Fprintln(os.Stderr, "jsonipc-client:", err)
		os.Exit(1)
	}
}

func run(socket string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := jsonipc.Dial(ctx, socket, &jsonipc.ClientConfig{UserAgent: "jsonipc-client-example"})
	if err != nil {
		return err
	}
	defer client.Close()

	// client.send('/myapi/test', {foo: "bar"}, (err, data) => ...)
	var reply map[string]string
	if err := client.Call(ctx, "/myapi/test", map[string]string{"foo": "bar"}, &reply); err != nil {
		return err
	}
	fmt.Println("/myapi/test:", reply["hello"])

	// client.send('/ipcserver/test/echo', {...}): data comes back as sent.
	var echoed json.RawMessage
	if err := client.Call(ctx, "/ipcserver/test/echo", json.RawMessage(`{"hello":"there","n":[1,2.50]}`), &echoed); err != nil {
		return err
	}
	fmt.Println("/ipcserver/test/echo:", string(echoed))
	return nil
}
