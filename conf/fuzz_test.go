package conf

import (
	"errors"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		"a;",
		"ipc {\n    listen /run/p.sock;\n    socket_mode 0600;\n    allow_uid 1000 1001;\n}\n",
		`a "b\"c" 'd\'e' f\ g ${x} # c`,
		"a { b { c; } }",
		"content_by_lua_block { s = \"}\" .. '{' .. [[ } ]] .. [==[ ]] } ]==] -- }\n --[[ } ]] t = { {} } }",
		"set_by_lua_block $x { return 1 }",
		"include missing.conf;",
		"a \"unterminated",
		"content_by_lua_block { [=[ ",
		"}",
		"ipc { max_message_size 64m; exit_timeout 1m30s; stats_interval off; }",
		"\xff\xfe {",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		ds, err := parseNoFS("fuzz.conf", src)
		if err != nil {
			checkPositioned(t, err)
			return
		}
		checkTree(t, ds, 0)
		// Printing the tree back with every word quoted must give text that
		// parses to the same tree: quoting and escaping lose nothing.
		text := format(ds)
		again, err := parseNoFS("fuzz.conf", []byte(text))
		if err != nil {
			t.Fatalf("re-parsing the formatted tree: %v\n%s", err, text)
		}
		if a, b := dump(ds), dump(again); a != b {
			t.Fatalf("round trip changed the tree\n got %s\nwant %s", b, a)
		}
		// The typed layer must not panic on any tree either.
		cfg := defaults()
		if err := decode(mainBlock, mainBlock, cfg, ds); err != nil {
			checkPositioned(t, err)
		}
	})
}

func checkPositioned(t *testing.T, err error) {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *conf.Error", err, err)
	}
	if ce.Pos.File != "fuzz.conf" || ce.Pos.Line < 1 || ce.Pos.Col < 1 {
		t.Fatalf("error %q has a bad position %+v", err, ce.Pos)
	}
}

func checkTree(t *testing.T, ds []*Directive, depth int) {
	t.Helper()
	if depth > maxDepth {
		t.Fatalf("tree deeper than %d", maxDepth)
	}
	for _, d := range ds {
		if d.Pos.Line < 1 || d.Pos.Col < 1 {
			t.Fatalf("directive %q has a bad position %+v", d.Name, d.Pos)
		}
		if d.HasRaw && d.Block != nil {
			t.Fatalf("directive %q has both a raw and a parsed block", d.Name)
		}
		checkTree(t, d.Block, depth+1)
	}
}

// format prints directives back as configuration text, quoting every word.
func format(ds []*Directive) string {
	var b strings.Builder
	var walk func(ds []*Directive)
	walk = func(ds []*Directive) {
		for _, d := range ds {
			b.WriteString(quoteWord(d.Name))
			for _, a := range d.Args {
				b.WriteString(" " + quoteWord(a))
			}
			switch {
			case d.HasRaw:
				b.WriteString(" {" + d.Raw + "}\n")
			case d.Block != nil:
				b.WriteString(" {\n")
				walk(d.Block)
				b.WriteString("}\n")
			default:
				b.WriteString(";\n")
			}
		}
	}
	walk(ds)
	return b.String()
}

func quoteWord(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
