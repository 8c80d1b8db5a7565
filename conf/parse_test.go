package conf

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// dump renders directives compactly so that a test can state a whole tree
// in one line: name "arg"...; or name {...} or name <<raw>>.
func dump(ds []*Directive) string {
	var b strings.Builder
	for i, d := range ds {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(d.Name)
		for _, a := range d.Args {
			b.WriteString(" " + strconv.Quote(a))
		}
		switch {
		case d.HasRaw:
			b.WriteString(" <<" + d.Raw + ">>")
		case d.Block != nil:
			b.WriteString(" {" + dump(d.Block) + "}")
		default:
			b.WriteByte(';')
		}
	}
	return b.String()
}

// parseNoFS parses without touching the file system: includes fail.
func parseNoFS(name string, src []byte) ([]*Directive, error) {
	p := &parser{
		readFile: func(string) ([]byte, error) { return nil, fs.ErrPermission },
		glob:     func(string) ([]string, error) { return nil, nil },
	}
	return p.file(name, src)
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"empty", "", ""},
		{"only whitespace", " \t\r\n", ""},
		{"only comment", "# nothing here", ""},
		{"comment at EOF", "a b; # trailing", `a "b";`},
		{"hash inside a word", "a b# c;", `a "b#" "c";`},
		{"no args", "a;", "a;"},
		{"args", "listen /run/x.sock 0600;", `listen "/run/x.sock" "0600";`},
		{"double quotes", `a "b c" "";`, `a "b c" "";`},
		{"single quotes", `a 'b "c"' 'it\'s';`, `a "b \"c\"" "it's";`},
		{"escapes", `a "q\" b\\ n\n t\t r\r d\$ s\' x\;";`, `a "q\" b\\ n\n t\t r\r d$ s' x;";`},
		{"unknown escape kept", `a "^/api/\d+$" '\w';`, `a "^/api/\\d+$" "\\w";`},
		{"bare escapes", `a b\ c d\;e \{\}\#;`, `a "b c" "d;e" "{}#";`},
		{"quote inside bare word", `a b"c'd;`, `a "b\"c'd";`},
		{"multiline string", "a \"b\nc\";", `a "b\nc";`},
		{"quoted name", `"a b" c;`, `a b "c";`},
		{"variable braces", "a ${prefix}/lib/?.lua $x {b;}", `a "${prefix}/lib/?.lua" "$x" {b;}`},
		{"crlf", "a b;\r\nc d;\r\n", `a "b"; c "d";`},
		{"tabs and newlines between args", "a\tb\n\nc\t;", `a "b" "c";`},
		{"empty block", "a {}", "a {}"},
		{"block with args", "server x y { a; }", `server "x" "y" {a;}`},
		{"nested blocks", "a { b { c d; } e; } f;", `a {b {c "d";} e;} f;`},
		{"no space around braces", "a{b;c{d;}}e;", "a {b; c {d;}} e;"},
		{"quoted then semicolon", `a "b";c 'd'{}`, `a "b"; c "d" {}`},
		{"utf8", "a é \"ü\";", `a "é" "ü";`},
		{"comment inside block", "a { # c }\n b; }", "a {b;}"},
		{"lua simple", "content_by_lua_block { ngx.say(1) }", "content_by_lua_block << ngx.say(1) >>"},
		{"lua double-quoted brace", `content_by_lua_block { ngx.say("}") }`, `content_by_lua_block << ngx.say("}") >>`},
		{"lua single-quoted brace", `content_by_lua_block { ngx.say('{') }`, `content_by_lua_block << ngx.say('{') >>`},
		{"lua escaped quote", `content_by_lua_block { s = "\"}" .. '\'{' }`, `content_by_lua_block << s = "\"}" .. '\'{' >>`},
		{"lua long string", "content_by_lua_block { s = [[ } ]] }", "content_by_lua_block << s = [[ } ]] >>"},
		{"lua long string level 2", "content_by_lua_block { s = [==[ ]] } ]=] ]==] }", "content_by_lua_block << s = [==[ ]] } ]=] ]==] >>"},
		{"lua line comment", "content_by_lua_block {\n -- }\n x = 1\n}", "content_by_lua_block <<\n -- }\n x = 1\n>>"},
		{"lua comment at end", "content_by_lua_block { x = 1 -- }\n}", "content_by_lua_block << x = 1 -- }\n>>"},
		{"lua long comment", "content_by_lua_block { --[[ } ]] x = 1 }", "content_by_lua_block << --[[ } ]] x = 1 >>"},
		{"lua long comment level 1", "content_by_lua_block { --[=[ ]] } ]=] x }", "content_by_lua_block << --[=[ ]] } ]=] x >>"},
		{"lua nested tables", "init_by_lua_block { t = { a = { 1, { 2 } }, b = {} } }", "init_by_lua_block << t = { a = { 1, { 2 } }, b = {} } >>"},
		{"lua indexing is not a long string", "content_by_lua_block { x = a[b[1]] y = {} }", "content_by_lua_block << x = a[b[1]] y = {} >>"},
		{"lua minus is not a comment", "content_by_lua_block { x = 1 - -1 } a;", "content_by_lua_block << x = 1 - -1 >> a;"},
		{"lua with args", "set_by_lua_block $res { return 1 }", `set_by_lua_block "$res" << return 1 >>`},
		{"lua empty", "content_by_lua_block {}", "content_by_lua_block <<>>"},
		{"lua hash is not a comment", "content_by_lua_block { n = #t }", "content_by_lua_block << n = #t >>"},
		{"lua in a block", "server { content_by_lua_block { if x then t = {} end } listen 1; }", `server {content_by_lua_block << if x then t = {} end >> listen "1";}`},
		{"lua without block", "content_by_lua_block;", "content_by_lua_block;"},
		{"other lua directive is not raw", "content_by_lua 'ngx.say(1)';", `content_by_lua "ngx.say(1)";`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := parseNoFS("t.conf", []byte(tt.src))
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.src, err)
			}
			if got := dump(ds); got != tt.want {
				t.Errorf("Parse(%q)\n got %s\nwant %s", tt.src, got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"eof after name", "a", `t.conf:1:2: unexpected end of file, expecting ";"`},
		{"eof after args", "a b\n", `t.conf:2:1: unexpected end of file, expecting ";"`},
		{"close instead of semicolon", "ipc {\n    listen x\n}", `t.conf:3:1: unexpected "}", expecting ";"`},
		{"stray close", "a;\n}", `t.conf:2:1: unexpected "}"`},
		{"stray semicolon", "a;;", `t.conf:1:3: unexpected ";", expecting a directive name`},
		{"block without name", "{ a; }", `t.conf:1:1: unexpected "{", expecting a directive name`},
		{"unclosed block", "a {\n b;\n", `t.conf:3:1: unexpected end of file, expecting "}" to close the block opened at 1:3`},
		{"unclosed nested block", "a { b {", `t.conf:1:8: unexpected end of file, expecting "}" to close the block opened at 1:7`},
		{"unterminated double quote", "a \"b;\n", `t.conf:1:3: unexpected end of file, expecting closing "\"" of the string started here`},
		{"unterminated single quote", "a 'b", `t.conf:1:3: unexpected end of file, expecting closing "'" of the string started here`},
		{"backslash at EOF in quote", `a "b\`, `t.conf:1:3: unexpected end of file, expecting closing "\"" of the string started here`},
		{"text glued to quote", `a "b"c;`, `t.conf:1:6: unexpected "c" after quoted string, expecting space or ";"`},
		{"quote glued to quote", `a "b""c";`, `t.conf:1:6: unexpected "\"" after quoted string, expecting space or ";"`},
		{"backslash at EOF in word", `a b\`, `t.conf:1:5: unexpected end of file after "\", expecting a character to escape`},
		{"unterminated variable", "a ${x;", `t.conf:1:4: unterminated "${", expecting "}"`},
		{"position counts characters", "é ü \"ö\"x;", `t.conf:1:8: unexpected "x" after quoted string, expecting space or ";"`},
		{"position after tab", "\ta }", `t.conf:1:4: unexpected "}", expecting ";"`},
		{"include without args", "include;", `t.conf:1:1: "include" takes exactly 1 argument (a file name or glob pattern), got 0`},
		{"include with two args", "include a b;", `t.conf:1:1: "include" takes exactly 1 argument (a file name or glob pattern), got 2`},
		{"include with block", "include a { }", `t.conf:1:11: unexpected "{", "include" takes no block`},
		{"lua unclosed", "content_by_lua_block {\n x = {}\n", `t.conf:3:1: unexpected end of file, expecting "}" to close the "content_by_lua_block" block opened at 1:22`},
		{"lua unfinished string", "content_by_lua_block {\n x = \"}\n}", `t.conf:2:6: unfinished Lua string in Lua block, expecting closing "\"" before the end of the line`},
		{"lua unfinished string at EOF", "content_by_lua_block { x = '", `t.conf:1:28: unfinished Lua string in Lua block, expecting closing "'"`},
		{"lua unfinished long string", "content_by_lua_block { x = [==[ ]] }", `t.conf:1:28: unfinished Lua long string in Lua block, expecting "]==]"`},
		{"lua unfinished long comment", "content_by_lua_block { --[[ }", `t.conf:1:26: unfinished Lua long comment in Lua block, expecting "]]"`},
		{"lua block needs braces closed after args", "set_by_lua_block $x { return 1", `t.conf:1:31: unexpected end of file, expecting "}" to close the "set_by_lua_block" block opened at 1:21`},
		{"too deep", strings.Repeat("a {", maxDepth+1), `t.conf:1:300: blocks nested more than 100 deep`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := parseNoFS("t.conf", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse(%q) = %s, want error %s", tt.src, dump(ds), tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Parse(%q) error\n got %s\nwant %s", tt.src, got, tt.want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("error %T is not a *conf.Error", err)
			}
		})
	}
}

func TestParsePositions(t *testing.T) {
	src := "a;\n  b x {\n\tc \"y\";\n  }\né d;\ncontent_by_lua_block {\n  x = 1\n}\n"
	ds, err := parseNoFS("p.conf", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		d    *Directive
		line int
		col  int
	}{
		{ds[0], 1, 1},
		{ds[1], 2, 3},
		{ds[1].Block[0], 3, 2},
		{ds[2], 5, 1},
		{ds[3], 6, 1},
	}
	for _, w := range want {
		if w.d.Pos != (Pos{"p.conf", w.line, w.col}) {
			t.Errorf("%s at %v, want p.conf:%d:%d", w.d.Name, w.d.Pos, w.line, w.col)
		}
	}
	if got, want := ds[3].RawPos, (Pos{"p.conf", 6, 23}); got != want {
		t.Errorf("RawPos = %v, want %v", got, want)
	}
	if ds[0].Block != nil || ds[1].Block == nil {
		t.Errorf("Block nil-ness: a %v, b %v", ds[0].Block, ds[1].Block)
	}
}

// writeFiles creates files (name -> content) under a new temporary
// directory and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestInclude(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"main.conf":          "first;\ninclude conf.d/*.conf;\nblock { include inner.conf; }\ninclude none/*.conf;\nlast;",
		"conf.d/b.conf":      "b;",
		"conf.d/a.conf":      "a 1;\ninclude ../sub/x.conf;",
		"conf.d/skip.txt":    "not included;",
		"sub/x.conf":         "x;\ninclude y.conf;", // relative to sub/
		"sub/y.conf":         "y;",
		"inner.conf":         "in { deep; }",
		"other/abs.conf":     "abs;",
		"conf.d/c.conf.save": "not included either;",
	})
	ds, err := ParseFile(filepath.Join(dir, "main.conf"))
	if err != nil {
		t.Fatal(err)
	}
	want := `first; a "1"; x; y; b; block {in {deep;}} last;`
	if got := dump(ds); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got, want := ds[1].Pos, (Pos{filepath.Join(dir, "conf.d/a.conf"), 1, 1}); got != want {
		t.Errorf("included directive at %v, want %v", got, want)
	}
	if got, want := ds[3].Pos.File, filepath.Join(dir, "sub/y.conf"); got != want {
		t.Errorf("nested include at %v, want %v", got, want)
	}

	// An absolute include.
	ds, err = Parse(filepath.Join(dir, "elsewhere.conf"), []byte("include "+filepath.Join(dir, "other/abs.conf")+";"))
	if err != nil || dump(ds) != "abs;" {
		t.Errorf("absolute include: %s, %v", dump(ds), err)
	}
}

func TestIncludeErrors(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"missing.conf": "a;\n  include nope.conf;",
		"bad.conf":     "include ok.conf;\n",
		"ok.conf":      "a;\nb {",
		"self.conf":    "include self.conf;",
		"g/glob.conf":  "include *.conf;", // matches itself
		"g/a.conf":     "a;",
		"cycle-a.conf": "a;\ninclude cycle-b.conf;",
		"cycle-b.conf": "b;\ninclude cycle-a.conf;",
		"pattern.conf": "include [.conf;",
	})
	if err := os.Symlink(filepath.Join(dir, "link.conf"), filepath.Join(dir, "via.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "link.conf"), []byte("include via.conf;"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file, want string
		is         error
	}{
		{"missing.conf", `missing.conf:2:3: cannot include: open ` + filepath.Join(dir, "nope.conf") + `: no such file or directory`, fs.ErrNotExist},
		{"bad.conf", `ok.conf:2:4: unexpected end of file, expecting "}" to close the block opened at 2:3`, nil},
		{"self.conf", `self.conf:1:1: include cycle: ` + filepath.Join(dir, "self.conf") + ` is already being read`, nil},
		{"g/glob.conf", `g/glob.conf:1:1: include cycle: ` + filepath.Join(dir, "g/glob.conf") + ` is already being read`, nil},
		{"cycle-a.conf", `cycle-b.conf:2:1: include cycle: ` + filepath.Join(dir, "cycle-a.conf") + ` is already being read`, nil},
		{"link.conf", `link.conf:1:1: include cycle: ` + filepath.Join(dir, "via.conf") + ` is already being read`, nil},
		{"pattern.conf", `pattern.conf:1:1: bad "include" pattern "[.conf": syntax error in pattern`, filepath.ErrBadPattern},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := ParseFile(filepath.Join(dir, tt.file))
			if err == nil {
				t.Fatal("no error")
			}
			if got := strings.TrimPrefix(err.Error(), dir+"/"); !strings.HasPrefix(got, tt.want) {
				t.Errorf("error\n got %s\nwant %s...", got, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
		})
	}
	if _, err := ParseFile(filepath.Join(dir, "absent.conf")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ParseFile(absent) = %v, want fs.ErrNotExist", err)
	}
}
