package conf

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Limits that keep hostile or broken input from exhausting the stack.
const (
	maxDepth        = 100 // nested blocks
	maxIncludeDepth = 32  // nested include files
)

// luaBlockSuffix marks directives whose block is raw Lua source.
const luaBlockSuffix = "_by_lua_block"

// Parse parses configuration text. filename names the text in positions
// and error messages, and "include" patterns that are not absolute are
// resolved relative to its directory, reading the file system.
//
// Parse checks the syntax only: it does not know which directives exist.
// Use [LoadBytes] for the checked daemon configuration. Errors are
// [*Error] values; a file an include cannot read is their Err, so
// errors.Is(err, fs.ErrNotExist) works. Parse does not panic, whatever
// the input.
func Parse(filename string, src []byte) ([]*Directive, error) {
	p := &parser{readFile: os.ReadFile, glob: filepath.Glob}
	return p.file(filename, src)
}

// ParseFile reads and parses the file at path, as [Parse] does.
func ParseFile(path string) ([]*Directive, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, src)
}

// parser holds what one Parse call shares across included files.
type parser struct {
	readFile func(string) ([]byte, error)
	glob     func(string) ([]string, error)
	files    []string // the include chain, as keys from fileKey
}

// file parses one file's text; includes call it recursively.
func (p *parser) file(name string, src []byte) ([]*Directive, error) {
	p.files = append(p.files, fileKey(name))
	defer func() { p.files = p.files[:len(p.files)-1] }()
	lx := newLexer(name, src)
	return p.block(lx, nil, 0)
}

// fileKey identifies a file for include cycle detection, seeing through
// relative paths and symbolic links where it can.
func fileKey(name string) string {
	if abs, err := filepath.Abs(name); err == nil {
		name = abs
	}
	if real, err := filepath.EvalSymlinks(name); err == nil {
		name = real
	}
	return name
}

// block parses directives up to the end of the file (open == nil) or up to
// the "}" that matches the "{" at open.
func (p *parser) block(lx *lexer, open *Pos, depth int) ([]*Directive, error) {
	ds := []*Directive{}
	for {
		t, err := lx.next()
		if err != nil {
			return nil, err
		}
		switch t.kind {
		case tokEOF:
			if open != nil {
				return nil, errorf(t.pos, "unexpected end of file, expecting \"}\" to close the block opened at %d:%d", open.Line, open.Col)
			}
			return ds, nil
		case tokClose:
			if open == nil {
				return nil, errorf(t.pos, `unexpected "}"`)
			}
			return ds, nil
		case tokSemi, tokOpen:
			return nil, errorf(t.pos, "unexpected %s, expecting a directive name", t.describe())
		}
		d, err := p.directive(lx, t, depth)
		if err != nil {
			return nil, err
		}
		if d.Name == "include" {
			inc, err := p.include(d)
			if err != nil {
				return nil, err
			}
			ds = append(ds, inc...)
			continue
		}
		ds = append(ds, d)
	}
}

// directive parses the arguments and the ";" or block of the directive
// whose name is the word t.
func (p *parser) directive(lx *lexer, t token, depth int) (*Directive, error) {
	d := &Directive{Name: t.text, Pos: t.pos}
	for {
		t, err := lx.next()
		if err != nil {
			return nil, err
		}
		switch t.kind {
		case tokWord:
			d.Args = append(d.Args, t.text)
		case tokSemi:
			return d, nil
		case tokOpen:
			if d.Name == "include" {
				return nil, errorf(t.pos, `unexpected "{", "include" takes no block`)
			}
			if strings.HasSuffix(d.Name, luaBlockSuffix) {
				d.RawPos = lx.pos()
				if d.Raw, err = lx.rawLua(d.Name, t.pos); err != nil {
					return nil, err
				}
				d.HasRaw = true
				return d, nil
			}
			if depth+1 >= maxDepth {
				return nil, errorf(t.pos, "blocks nested more than %d deep", maxDepth)
			}
			if d.Block, err = p.block(lx, &t.pos, depth+1); err != nil {
				return nil, err
			}
			return d, nil
		default:
			return nil, errorf(t.pos, "unexpected %s, expecting \";\"", t.describe())
		}
	}
}

// hasMeta reports whether path holds glob metacharacters.
func hasMeta(path string) bool { return strings.ContainsAny(path, `*?[\`) }

// include reads and parses the files named by an include directive. A
// pattern with glob metacharacters may match nothing; a plain file name
// must exist.
func (p *parser) include(d *Directive) ([]*Directive, error) {
	if len(d.Args) != 1 {
		return nil, errorf(d.Pos, "\"include\" takes exactly 1 argument (a file name or glob pattern), got %d", len(d.Args))
	}
	pattern := d.Args[0]
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(filepath.Dir(d.Pos.File), pattern)
	}
	names := []string{pattern}
	if hasMeta(pattern) {
		var err error
		if names, err = p.glob(pattern); err != nil {
			return nil, &Error{Pos: d.Pos, Msg: "bad \"include\" pattern " + strconv.Quote(d.Args[0]), Err: err}
		}
		slices.Sort(names)
	}
	if len(p.files) >= maxIncludeDepth {
		return nil, errorf(d.Pos, "includes nested more than %d deep", maxIncludeDepth)
	}
	var ds []*Directive
	for _, name := range names {
		if key := fileKey(name); slices.Contains(p.files, key) {
			return nil, errorf(d.Pos, "include cycle: %s is already being read (it includes itself, directly or through other files)", name)
		}
		src, err := p.readFile(name)
		if err != nil {
			return nil, &Error{Pos: d.Pos, Msg: "cannot include", Err: err} // err names the file
		}
		inc, err := p.file(name, src)
		if err != nil {
			return nil, err
		}
		ds = append(ds, inc...)
	}
	return ds, nil
}
