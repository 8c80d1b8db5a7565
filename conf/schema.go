package conf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The typed layer is driven by tables: a block lists the directives it
// accepts, each with a rule saying how it is written and which field it
// fills. A new block (stream { server { ... } }, alert { }) or directive is
// a new table entry; decode does not change.

// A block describes what may appear in one kind of block, or at the top
// level of a file.
type block struct {
	name  string // as messages name it: "main" for the top level
	rules map[string]rule
}

// A rule describes one directive.
type rule struct {
	args  arity
	multi bool // may appear more than once in the same block
	body  bodyKind
	// inner lists what the directive's block accepts (body == bodyBlock).
	inner *block
	// set applies the directive to dst, the value its enclosing block
	// fills. For a directive with a block it returns the value the
	// block's own directives fill; otherwise it returns nil.
	set func(dst any, d *Directive) (any, error)
}

// bodyKind says what follows a directive's arguments.
type bodyKind uint8

const (
	bodyNone  bodyKind = iota // ";"
	bodyBlock                 // { directives }
	bodyRaw                   // { raw Lua } (names ending in _by_lua_block)
)

// arity is the number of arguments a directive takes: min to max, where
// max < 0 means no upper bound.
type arity struct{ min, max int }

func exactly(n int) arity { return arity{n, n} }

func atLeast(n int) arity { return arity{n, -1} }

// check reports whether d has an allowed number of arguments.
func (a arity) check(d *Directive) error {
	n := len(d.Args)
	if n >= a.min && (a.max < 0 || n <= a.max) {
		return nil
	}
	var want string
	switch {
	case a.max == 0:
		want = "no arguments"
	case a.min == a.max:
		want = "exactly " + plural(a.min, "argument")
	case a.max < 0:
		want = "at least " + plural(a.min, "argument")
	default:
		want = fmt.Sprintf("%d to %d arguments", a.min, a.max)
	}
	return errorf(d.Pos, "%q directive takes %s, got %d", d.Name, want, n)
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// decode applies the directives ds, found in a block described by b, to
// dst. root is the top-level block, used to say where a misplaced
// directive belongs.
func decode(root, b *block, dst any, ds []*Directive) error {
	seen := make(map[string]Pos)
	for _, d := range ds {
		r, ok := b.rules[d.Name]
		if !ok {
			return misplaced(root, b, d)
		}
		if first, dup := seen[d.Name]; dup && !r.multi {
			return errorf(d.Pos, "%q directive is duplicate (first at %d:%d)", d.Name, first.Line, first.Col)
		}
		seen[d.Name] = d.Pos
		if err := r.args.check(d); err != nil {
			return err
		}
		if err := r.body.check(d); err != nil {
			return err
		}
		inner, err := r.set(dst, d)
		if err != nil {
			return err
		}
		if r.body == bodyBlock {
			if err := decode(root, r.inner, inner, d.Block); err != nil {
				return err
			}
		}
	}
	return nil
}

// check reports whether d ends the way k says: ";", a block or raw Lua.
func (k bodyKind) check(d *Directive) error {
	switch {
	case k == bodyNone && (d.Block != nil || d.HasRaw):
		return errorf(d.Pos, "%q directive takes no block, expecting \";\"", d.Name)
	case k == bodyBlock && d.Block == nil:
		return errorf(d.Pos, "%q directive needs a block: %s { ... }", d.Name, d.Name)
	case k == bodyRaw && !d.HasRaw:
		return errorf(d.Pos, "%q directive needs a block of Lua code: %s { ... }", d.Name, d.Name)
	}
	return nil
}

// misplaced explains why d is not allowed in b: it is unknown, or it
// belongs in other blocks.
func misplaced(root, b *block, d *Directive) error {
	var homes []string
	root.walk(make(map[*block]bool), func(x *block) {
		if _, ok := x.rules[d.Name]; ok {
			if x == root {
				homes = append(homes, "at the top level")
			} else {
				homes = append(homes, "in "+x.name+" { }")
			}
		}
	})
	if len(homes) == 0 {
		if near := b.nearest(d.Name); near != "" {
			return errorf(d.Pos, "unknown directive %q (did you mean %q?)", d.Name, near)
		}
		return errorf(d.Pos, "unknown directive %q", d.Name)
	}
	where := "at the top level"
	if b != root {
		where = "in " + b.name + " { }"
	}
	return errorf(d.Pos, "%q directive is not allowed %s; it belongs %s", d.Name, where, strings.Join(homes, " or "))
}

// nearest returns the directive of b whose name is a likely misspelling
// of name (at most two edits away), or "".
func (b *block) nearest(name string) string {
	best, bestDist := "", 3
	for cand := range b.rules {
		d := editDistance(name, cand)
		if d < bestDist || d == bestDist && cand < best {
			best, bestDist = cand, d
		}
	}
	if bestDist >= len(name) { // "a" is not a misspelling of "ipc"
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// walk calls fn for b and every block reachable from it, once each.
func (b *block) walk(seen map[*block]bool, fn func(*block)) {
	if seen[b] {
		return
	}
	seen[b] = true
	fn(b)
	names := make([]string, 0, len(b.rules))
	for name := range b.rules {
		names = append(names, name)
	}
	slices.Sort(names) // a stable order for messages
	for _, name := range names {
		if inner := b.rules[name].inner; inner != nil {
			inner.walk(seen, fn)
		}
	}
}

// The helpers below build rule.set functions from typed pieces, so that a
// table entry reads as "this field, parsed this way".

// into enters a block: the block's directives fill the value that f picks
// out of the enclosing one.
func into[P, C any](f func(*P) *C) func(any, *Directive) (any, error) {
	return func(dst any, _ *Directive) (any, error) { return f(dst.(*P)), nil }
}

// value sets the field f picks out with the directive's single argument,
// parsed by parse; its rule must say exactly(1).
func value[T, V any](f func(*T) *V, parse func(d *Directive, arg string) (V, error)) func(any, *Directive) (any, error) {
	return func(dst any, d *Directive) (any, error) {
		v, err := parse(d, d.Args[0])
		if err != nil {
			return nil, err
		}
		*f(dst.(*T)) = v
		return nil, nil
	}
}

// list appends every argument of the directive, parsed by parse, to the
// slice f picks out; used by directives that may repeat.
func list[T, V any](f func(*T) *[]V, parse func(d *Directive, arg string) (V, error)) func(any, *Directive) (any, error) {
	return func(dst any, d *Directive) (any, error) {
		p := f(dst.(*T))
		for _, arg := range d.Args {
			v, err := parse(d, arg)
			if err != nil {
				return nil, err
			}
			*p = append(*p, v)
		}
		return nil, nil
	}
}

// badValue reports an argument that does not parse as what the directive
// wants.
func badValue(d *Directive, want, got string, err error) error {
	msg := fmt.Sprintf("%q must be %s, got %q", d.Name, want, got)
	if errors.Is(err, strconv.ErrRange) {
		msg += " (out of range)"
	}
	return &Error{Pos: d.Pos, Msg: msg}
}

// Argument parsers, one per kind of value.

func sizeArg(d *Directive, s string) (int64, error) {
	n, err := ParseSize(s)
	if err != nil || n == 0 {
		return 0, badValue(d, "a size > 0 such as 8k, 10m or 1g", s, err)
	}
	return n, nil
}

func durationArg(d *Directive, s string) (time.Duration, error) {
	t, err := ParseDuration(s)
	if err != nil || t == 0 {
		return 0, badValue(d, "a time > 0 such as 500ms, 2s or 1m", s, err)
	}
	return t, nil
}

// durationOrOffArg maps "off" (and "0") to 0, which means disabled.
func durationOrOffArg(d *Directive, s string) (time.Duration, error) {
	if s == "off" {
		return 0, nil
	}
	t, err := ParseDuration(s)
	if err != nil {
		return 0, badValue(d, "a time such as 500ms, 2s or 1m, or off", s, err)
	}
	return t, nil
}

func modeArg(d *Directive, s string) (os.FileMode, error) {
	m, err := ParseMode(s)
	if err != nil {
		return 0, badValue(d, "an octal mode ≤ 0777", s, err)
	}
	if m == 0 {
		// Zero would shut everyone but root out, and to the servers that
		// take this field it means "the default", so refuse it here.
		return 0, badValue(d, "an octal mode > 0", s, nil)
	}
	return m, nil
}

func countArg(d *Directive, s string) (int, error) {
	n, err := strconv.ParseInt(s, 10, 0)
	if err != nil || n <= 0 || s[0] == '+' {
		return 0, badValue(d, "a whole number > 0", s, err)
	}
	return int(n), nil
}

func idArg(d *Directive, s string) (uint32, error) {
	// Names are not looked up: that would make the check depend on the
	// user database and, through os/user, on cgo.
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 || s[0] == '+' {
		return 0, badValue(d, "a numeric id (0 to 4294967294)", s, err)
	}
	return uint32(n), nil
}

func boolArg(d *Directive, s string) (bool, error) {
	v, err := ParseBool(s)
	if err != nil {
		return false, badValue(d, "on or off", s, err)
	}
	return v, nil
}

// pathArg resolves a relative path against the directory of the file the
// directive is in, and makes it absolute so that a later change of the
// working directory does not move it.
func pathArg(d *Directive, s string) (string, error) {
	if s == "" {
		return "", badValue(d, "a path", s, nil)
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(filepath.Dir(d.Pos.File), s)
		if abs, err := filepath.Abs(s); err == nil {
			s = abs
		}
	}
	return s, nil
}
