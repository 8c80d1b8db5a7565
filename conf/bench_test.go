package conf

import (
	"strings"
	"testing"
)

// benchConf is a config of realistic shape: comments, blocks, quoted
// strings and Lua, repeated to about 100 KB.
var benchConf = strings.Repeat(`
# a server
ipc {
    listen /run/procwire/procwire.sock;   # the socket
    socket_mode 0600;
    allow_uid 1000 1001 1002;
    exit_timeout 2s;
    max_message_size 64m;
}
stream {
    server {
        listen 127.0.0.1:1234 backlog=512;
        log_format main '$remote_addr [$time_local] "$protocol" $bytes_sent';
        content_by_lua_block {
            local t = { a = "}", b = [[ { ]] } -- }
            while true do
                local data = ngx.receive(10, 1)
                ngx.say(data)
                ngx.wait_next_request()
            end
        }
    }
}
`, 200)

func BenchmarkParse(b *testing.B) {
	src := []byte(benchConf)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseNoFS("bench.conf", src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadDefault(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Default()
	}
}
