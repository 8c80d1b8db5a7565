package conf

import (
	"fmt"
	"strconv"
)

// Pos is a position in a configuration file. Line and Col count from 1;
// Col counts characters (UTF-8 sequences), not bytes.
type Pos struct {
	File string
	Line int
	Col  int
}

// String formats p as "file:line:col", the form editors jump to.
func (p Pos) String() string {
	s := strconv.Itoa(p.Line) + ":" + strconv.Itoa(p.Col)
	if p.File != "" {
		s = p.File + ":" + s
	}
	return s
}

// A Directive is one statement of a configuration file: a name, its
// arguments, and either a terminating ";", a block of nested directives,
// or (for names ending in "_by_lua_block") a raw block of Lua source.
type Directive struct {
	Name string
	// Args holds the arguments with quotes removed and escapes resolved.
	Args []string
	// Block holds the directives inside { }. It is nil when the directive
	// has no block and non-nil (possibly empty) when it has one, so
	// "ipc {}" and "ipc;" can be told apart.
	Block []*Directive
	// Raw is the text between the braces of a *_by_lua_block directive,
	// byte for byte; HasRaw reports whether there was such a block.
	Raw    string
	HasRaw bool
	// RawPos is where Raw starts (just after the "{"), so that a Lua error
	// at line n of Raw can be reported at RawPos.Line+n-1 of the file.
	RawPos Pos
	// Pos is where the directive's name starts.
	Pos Pos
}

// An Error is a problem found in a configuration file. Its message says
// where (file:line:col) and what was wrong or expected.
type Error struct {
	Pos Pos
	Msg string
	// Err is the underlying cause, if any (for example the *fs.PathError
	// of an include that could not be read); errors.Is and errors.As see it.
	Err error
}

// Error formats the error as "file:line:col: message[: cause]".
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Pos.String() + ": " + e.Msg + ": " + e.Err.Error()
	}
	return e.Pos.String() + ": " + e.Msg
}

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Err }

func errorf(pos Pos, format string, args ...any) *Error {
	return &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}
