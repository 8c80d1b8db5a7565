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
	socket := flag.String("socket", "/var/tmp/my_ipc_server.sock", "Unix socket `path` of the server")
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

	// testClient.send('/myapi/test', {"welcome":42}, (err, data) => ...)
	var reply map[string]string
	if err := client.Call(ctx, "/myapi/test", map[string]int{"welcome": 42}, &reply); err != nil {
		return err
	}
	fmt.Println("/myapi/test:", reply["hello"])

	// testClient.send('/ipcserver/test/echo', {"ping":"me"}, ...): the data
	// comes back byte for byte, so raw JSON keeps even its number text.
	var echoed json.RawMessage
	if err := client.Call(ctx, "/ipcserver/test/echo", json.RawMessage(`{"ping":"me","n":2.50}`), &echoed); err != nil {
		return err
	}
	fmt.Println("/ipcserver/test/echo:", string(echoed))
	return nil
}
