'use strict';

const NL = 0x0a;
// How much of an oversize line is kept to find its ipcReqID: procwire
// and pixl-ipc write the id first, so a short head is enough.
const HEAD_KEEP = 512;

// LineDecoder re-frames a byte stream into lines split on "\n".
//
// Bytes are kept as Buffers and decoded only once a line is complete, so a
// multi-byte UTF-8 character split across reads is never corrupted (a "\n"
// byte never occurs inside one). A line longer than maxLine bytes is not
// buffered: its first bytes are kept, the rest is skipped up to its "\n",
// and onOversize(head, length) is called instead of onLine. Memory per
// connection is therefore bounded by maxLine (pixl-json-stream's buffer is
// unbounded before 1.0.9 and silently loses line heads after it).
class LineDecoder {
	constructor(maxLine, onLine, onOversize) {
		if (!(maxLine > 0)) throw new RangeError('LineDecoder: maxLine must be a positive number, got ' + maxLine);
		this.maxLine = maxLine;
		this.onLine = onLine;
		this.onOversize = onOversize;
		this.parts = [];   // pieces of the current line
		this.length = 0;   // bytes in parts
		this.skipping = false;
		this.head = null;  // start of an oversize line being skipped
		this.skipped = 0;  // bytes of that line seen so far
	}

	// push feeds one chunk read from the socket.
	push(chunk) {
		let start = 0;
		while (start < chunk.length) {
			const nl = chunk.indexOf(NL, start);
			const end = nl === -1 ? chunk.length : nl;
			this._append(chunk, start, end);
			if (nl === -1) return;
			this._finishLine();
			start = nl + 1;
		}
	}

	// pending reports whether an unterminated line is buffered (it is
	// discarded at end of stream, as in pixl-json-stream).
	pending() {
		return this.length > 0 || this.skipping;
	}

	reset() {
		this.parts = [];
		this.length = 0;
		this.skipping = false;
		this.head = null;
		this.skipped = 0;
	}

	_append(chunk, start, end) {
		if (end === start) return;
		if (this.skipping) {
			this.skipped += end - start;
			return;
		}
		if (this.length + (end - start) > this.maxLine) {
			const all = Buffer.concat([...this.parts, chunk.subarray(start, end)], this.length + (end - start));
			this.head = Buffer.from(all.subarray(0, HEAD_KEEP));
			this.skipped = all.length;
			this.parts = [];
			this.length = 0;
			this.skipping = true;
			return;
		}
		this.parts.push(chunk.subarray(start, end));
		this.length += end - start;
	}

	_finishLine() {
		if (this.skipping) {
			const head = this.head, n = this.skipped;
			this.skipping = false;
			this.head = null;
			this.skipped = 0;
			this.onOversize(head, n);
			return;
		}
		if (this.length === 0) return; // blank line
		let line;
		if (this.parts.length === 1) line = this.parts[0].toString('utf8');
		else line = Buffer.concat(this.parts, this.length).toString('utf8');
		this.parts = [];
		this.length = 0;
		this.onLine(line);
	}
}

module.exports = { LineDecoder };
