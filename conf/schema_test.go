package conf

import (
	"testing"
	"time"
)

// The schema below is the shape later issues add (stream { server { } },
// lua_shared_dict, Lua blocks). Building it from the same helpers shows
// that decode needs no change for repeated blocks, raw Lua and booleans.

type testRoot struct {
	Dicts  map[string]int64
	Stream testStream
}

type testStream struct {
	ReadTimeout time.Duration
	CodeCache   bool
	Init        string
	Servers     []*testServer
}

type testServer struct {
	Listen      []string
	ReadTimeout time.Duration
	Content     string
	Line        int
}

var testServerBlock = &block{name: "server", rules: map[string]rule{
	"listen":       {args: atLeast(1), set: list(func(s *testServer) *[]string { return &s.Listen }, func(_ *Directive, s string) (string, error) { return s, nil })},
	"read_timeout": {args: exactly(1), set: value(func(s *testServer) *time.Duration { return &s.ReadTimeout }, durationArg)},
	"content_by_lua_block": {args: exactly(0), body: bodyRaw, set: func(dst any, d *Directive) (any, error) {
		s := dst.(*testServer)
		s.Content, s.Line = d.Raw, d.RawPos.Line
		return nil, nil
	}},
}}

var testStreamBlock = &block{name: "stream", rules: map[string]rule{
	"read_timeout":   {args: exactly(1), set: value(func(s *testStream) *time.Duration { return &s.ReadTimeout }, durationArg)},
	"lua_code_cache": {args: exactly(1), set: value(func(s *testStream) *bool { return &s.CodeCache }, boolArg)},
	"init_by_lua_block": {args: exactly(0), body: bodyRaw, set: func(dst any, d *Directive) (any, error) {
		dst.(*testStream).Init = d.Raw
		return nil, nil
	}},
	"server": {args: exactly(0), body: bodyBlock, multi: true, inner: testServerBlock, set: func(dst any, d *Directive) (any, error) {
		s := dst.(*testStream)
		srv := &testServer{}
		s.Servers = append(s.Servers, srv)
		return srv, nil
	}},
}}

var testRootBlock = &block{name: "main", rules: map[string]rule{
	"stream": {args: exactly(0), body: bodyBlock, inner: testStreamBlock, set: into(func(r *testRoot) *testStream { return &r.Stream })},
	"lua_shared_dict": {args: arity{2, 2}, multi: true, set: func(dst any, d *Directive) (any, error) {
		n, err := sizeArg(d, d.Args[1])
		if err != nil {
			return nil, err
		}
		dst.(*testRoot).Dicts[d.Args[0]] = n
		return nil, nil
	}},
}}

func decodeTest(src string) (*testRoot, error) {
	ds, err := parseNoFS("s.conf", []byte(src))
	if err != nil {
		return nil, err
	}
	r := &testRoot{Dicts: map[string]int64{}}
	return r, decode(testRootBlock, testRootBlock, r, ds)
}

func TestSchemaExtension(t *testing.T) {
	r, err := decodeTest(`
lua_shared_dict cache 10m;
lua_shared_dict locks 8k;
stream {
    read_timeout 30s;
    lua_code_cache off;
    init_by_lua_block { cfg = { port = 1 } }
    server {
        listen 127.0.0.1:1234 backlog=10;
        content_by_lua_block {
            ngx.say("}")
        }
    }
    server { listen 5678; }
}`)
	if err != nil {
		t.Fatal(err)
	}
	if r.Dicts["cache"] != 10<<20 || r.Dicts["locks"] != 8<<10 {
		t.Errorf("dicts %v", r.Dicts)
	}
	s := r.Stream
	if s.ReadTimeout != 30*time.Second || s.CodeCache || s.Init != " cfg = { port = 1 } " || len(s.Servers) != 2 {
		t.Fatalf("stream %+v", s)
	}
	if got := s.Servers[0]; len(got.Listen) != 2 || got.Content != "\n            ngx.say(\"}\")\n        " || got.Line != 10 {
		t.Errorf("server 0 %+v", got)
	}
	if got := s.Servers[1]; len(got.Listen) != 1 || got.Listen[0] != "5678" {
		t.Errorf("server 1 %+v", got)
	}
}

func TestSchemaExtensionErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"stream { listen 1; }", `s.conf:1:10: "listen" directive is not allowed in stream { }; it belongs in server { }`},
		{"stream { server { lua_code_cache on; } }", `s.conf:1:19: "lua_code_cache" directive is not allowed in server { }; it belongs in stream { }`},
		{"read_timeout 1s;", `s.conf:1:1: "read_timeout" directive is not allowed at the top level; it belongs in stream { } or in server { }`},
		{"stream { lua_code_cache maybe; }", `s.conf:1:10: "lua_code_cache" must be on or off, got "maybe"`},
		{"stream { init_by_lua_block; }", `s.conf:1:10: "init_by_lua_block" directive needs a block of Lua code: init_by_lua_block { ... }`},
		{"stream { init_by_lua_block x { } }", `s.conf:1:10: "init_by_lua_block" directive takes no arguments, got 1`},
		{"stream { init_by_lua_block {} init_by_lua_block {} }", `s.conf:1:31: "init_by_lua_block" directive is duplicate (first at 1:10)`},
		{"stream { server { listen 1; listen 2; } }", `s.conf:1:29: "listen" directive is duplicate (first at 1:19)`},
		{"lua_shared_dict a;", `s.conf:1:1: "lua_shared_dict" directive takes exactly 2 arguments, got 1`},
		{"lua_shared_dict a 1 2;", `s.conf:1:1: "lua_shared_dict" directive takes exactly 2 arguments, got 3`},
		{"lua_shared_dict a big;", `s.conf:1:1: "lua_shared_dict" must be a size > 0 such as 8k, 10m or 1g, got "big"`},
		{"stream { server; }", `s.conf:1:10: "server" directive needs a block: server { ... }`},
	}
	for _, tt := range tests {
		_, err := decodeTest(tt.src)
		if err == nil || err.Error() != tt.want {
			t.Errorf("decode(%q)\n got %v\nwant %s", tt.src, err, tt.want)
		}
	}
}

func TestArityMessages(t *testing.T) {
	d := &Directive{Name: "x", Args: []string{"a"}, Pos: Pos{"f", 1, 1}}
	if err := (arity{2, 3}).check(d); err == nil || err.Error() != `f:1:1: "x" directive takes 2 to 3 arguments, got 1` {
		t.Errorf("range arity: %v", err)
	}
	if err := atLeast(2).check(d); err == nil || err.Error() != `f:1:1: "x" directive takes at least 2 arguments, got 1` {
		t.Errorf("atLeast: %v", err)
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"listen", "listen", 0},
		{"lisen", "listen", 1}, {"listne", "listen", 2}, {"kitten", "sitting", 3},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
