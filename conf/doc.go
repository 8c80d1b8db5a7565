// Package conf reads procwire's configuration files: an nginx-style
// language of directives, blocks and comments, and the typed daemon
// configuration built from it.
//
// The language, in one example:
//
//	# a comment runs to the end of the line
//	ipc {
//	    listen /run/procwire/procwire.sock;   # a directive: name, arguments, ";"
//	    socket_mode 0600;
//	    allow_uid 1000 1001;
//	}
//	include conf.d/*.conf;                     # spliced in place, sorted
//	content_by_lua_block {                     # kept verbatim as Lua source
//	    ngx.say("}")
//	}
//
// The work is split in two layers. [Parse] and [ParseFile] turn text into
// a tree of [Directive] values without knowing what any directive means,
// apart from include (resolved while parsing) and the raw Lua blocks of
// directives whose name ends in "_by_lua_block". [Load] and [LoadBytes]
// then check that tree against a table-driven schema and fill a [Config],
// starting from the defaults that [Default] also returns.
//
// Guarantees: every error about the text is an [*Error] carrying the
// file, line and column it is about and saying what was expected; parsing
// never panics on any input (it is fuzzed); nothing in a file is ignored
// silently, so an unknown, misplaced, repeated or malformed directive is an
// error, not a default.
//
// The language and every directive are described in docs/configuration.md.
package conf
