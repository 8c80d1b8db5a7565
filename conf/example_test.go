package conf_test

import (
	"fmt"

	"github.com/procwire/procwire/conf"
)

func ExampleParse() {
	src := []byte(`
stream {
    server {
        listen 1234;
        content_by_lua_block {
            ngx.say("} is fine in a string")
        }
    }
}
`)
	ds, err := conf.Parse("example.conf", src)
	if err != nil {
		fmt.Println(err)
		return
	}
	server := ds[0].Block[0]
	for _, d := range server.Block {
		fmt.Println(d.Pos, d.Name, d.Args, d.HasRaw)
	}
	fmt.Printf("%q\n", server.Block[1].Raw)
	// Output:
	// example.conf:4:9 listen [1234] false
	// example.conf:5:9 content_by_lua_block [] true
	// "\n            ngx.say(\"} is fine in a string\")\n        "
}

func ExampleParse_error() {
	_, err := conf.Parse("procwire.conf", []byte("ipc {\n    listen /tmp/p.sock\n}\n"))
	fmt.Println(err)
	// Output:
	// procwire.conf:3:1: unexpected "}", expecting ";"
}

func ExampleLoadBytes() {
	cfg, err := conf.LoadBytes("/etc/procwire/procwire.conf", []byte(`
ipc {
    listen procwire.sock;    # relative to /etc/procwire/
    socket_mode 0660;
    allow_gid 1000;
    stats_interval off;
}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.IPC.Listen, cfg.IPC.SocketMode, cfg.IPC.AllowGID, cfg.IPC.StatsInterval, cfg.IPC.ExitTimeout)
	// Output:
	// /etc/procwire/procwire.sock -rw-rw---- [1000] 0s 2s
}

func ExampleLoadBytes_error() {
	_, err := conf.LoadBytes("procwire.conf", []byte("ipc {\n    socket_mode 999;\n}\n"))
	fmt.Println(err)
	// Output:
	// procwire.conf:2:5: "socket_mode" must be an octal mode ≤ 0777, got "999"
}

func ExampleDefault() {
	cfg := conf.Default()
	fmt.Println(cfg.Source, cfg.IPC.SocketMode, cfg.IPC.ExitTimeout, cfg.IPC.MaxMessageSize, cfg.IPC.MaxConnections)
	// Output:
	// (embedded default) -rw------- 2s 67108864 10000
}

func ExampleParseSize() {
	for _, s := range []string{"123", "8k", "10m", "1g", "1t"} {
		n, err := conf.ParseSize(s)
		fmt.Println(n, err)
	}
	// Output:
	// 123 <nil>
	// 8192 <nil>
	// 10485760 <nil>
	// 1073741824 <nil>
	// 0 size "1t": invalid syntax
}

func ExampleParseDuration() {
	for _, s := range []string{"30", "500ms", "1m30s", "1d", "30s1m"} {
		d, err := conf.ParseDuration(s)
		fmt.Println(d, err)
	}
	// Output:
	// 30s <nil>
	// 500ms <nil>
	// 1m30s <nil>
	// 24h0m0s <nil>
	// 0s duration "30s1m": units must go from largest to smallest, each once: invalid syntax
}
