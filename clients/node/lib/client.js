'use strict';
// IPCClient: pixl-ipc's Node client API over procwire's JSON IPC protocol
// (one JSON object per line on a Unix stream socket). See README.md for
// where it deliberately differs from pixl-ipc 1.1.3.

const net = require('net');
const EventEmitter = require('events');
const { LineDecoder } = require('./lines');

// Error values. pixl-ipc reports its errors as plain strings, and callers
// compare them (`err === 'request_timeout'`), so these stay strings.
const ERR_SOCKET = 'ipc_socket_err';
const ERR_NO_STREAM = 'no_open_stream';
const ERR_TIMEOUT = 'request_timeout';
// Added by procwire-ipc, for cases where pixl-ipc hangs or misbehaves.
const ERR_SERVER_CLOSED = 'ipc_server_closed';
const ERR_CLIENT_CLOSED = 'ipc_client_closed';
const ERR_TOO_LARGE = 'message_too_large';

const DEFAULT_TIMEOUT = 10 * 1000;
const DEFAULT_RECONNECT = 1000;
// The same default as procwire's max_message_size.
const DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024;

// Finds a string or number ipcReqID at the start of an oversize reply, so
// the request it answers can fail at once instead of timing out.
const HEAD_ID = /^\s*\{\s*"ipcReqID"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/;

class IPCClient extends EventEmitter {
	constructor(socketPath, logger = null, options = {}) {
		super();
		options = options || {};
		this.path = socketPath;
		this.logger = logger;
		this.requestTimeout = options.requestTimeout ? options.requestTimeout : DEFAULT_TIMEOUT;
		this.expireRequest = options.expireRequest ? options.expireRequest : DEFAULT_TIMEOUT;
		this.userAgent = options.userAgent ? options.userAgent : 'Node/IPCClient' + process.cwd();
		this.autoReconnect = (typeof options.autoReconnect === 'undefined') ? DEFAULT_RECONNECT : options.autoReconnect;
		this.maxMessageSize = options.maxMessageSize ? options.maxMessageSize : DEFAULT_MAX_MESSAGE;
		this.logStatsInterval = options.logStatsInterval || null;
		const defaultTransform = options.codeToErr ? this.codeToErr.bind(this) : null;
		this.messageTransform = options.messageTransform ? options.messageTransform : defaultTransform;

		this.socket = null;
		this.stream = null; // the connected socket, or null: pixl-ipc's name, kept for code that tests it
		this.requests = new Map();
		this.requestCount = 0;
		this.serialCounter = 0;
		this.closed = false;
		this.reconnectTimer = null;
		this.statsTimer = null;
		this.stats = { requests: 0, responses: 0, timeouts: 0, errors: 0, bytesIn: 0, bytesOut: 0, reconnects: 0 };
	}

	// codeToErr turns an error reply into an error: a top-level code
	// (no_uri) or a code inside data (no_handler_found, handler errors).
	codeToErr(msg) {
		let err = null;
		if (msg.code) err = msg;
		else if (msg.data && msg.data.code) err = msg.data;
		return [err, msg.data];
	}

	logDebug(level, message, data = '') {
		if (this.logger) this.logger.debug(level, message, data);
	}

	logError(code, message, data) {
		if (this.logger) this.logger.error(code, message, data);
	}

	// connect opens the socket. cb(err) or, without cb, a Promise. A
	// client closed with close() may be connected again.
	connect(callback) {
		if (typeof callback !== 'function') {
			return new Promise((resolve, reject) => {
				this.connect((err) => (err ? reject(err) : resolve()));
			});
		}
		this.closed = false;
		this._clearReconnect();
		if (this.socket) {
			// pixl-ipc leaks the old socket here; drop it properly.
			this._drop(this.socket, ERR_CLIENT_CLOSED, false);
		}
		this._open(callback);
		this._startStats();
	}

	_open(callback) {
		let connected = false;
		let answered = false;
		const finish = (err) => {
			if (answered) return;
			answered = true;
			callback(err);
		};
		const sock = net.createConnection(this.path);
		this.socket = sock;
		const decoder = new LineDecoder(this.maxMessageSize,
			(line) => this._line(line),
			(head, n) => this._oversize(head, n));
		sock.on('connect', () => {
			connected = true;
			if (this.socket !== sock) {
				// Superseded meanwhile by connect() or close().
				this._drop(sock, ERR_CLIENT_CLOSED, false);
				finish(ERR_CLIENT_CLOSED);
				return;
			}
			this.stream = sock;
			this.logDebug(8, 'connection created');
			this.emit('connect');
			finish(null);
		});
		sock.on('data', (chunk) => {
			this.stats.bytesIn += chunk.length;
			decoder.push(chunk);
		});
		sock.on('error', (err) => {
			this.logError(ERR_SOCKET, 'Unexpected socket error', err);
			if (!connected) {
				if (this.socket === sock) this.socket = null;
				finish(ERR_SOCKET);
				return;
			}
			this._drop(sock, ERR_SOCKET, true);
		});
		sock.on('end', () => {
			this.logDebug(8, 'server disconnected');
			if (decoder.pending()) this.logError('ipc_partial_message', 'Server closed the connection in the middle of a message');
			// pixl-ipc drops pending requests here without calling them
			// back; they fail now instead.
			this._drop(sock, this.closed ? ERR_CLIENT_CLOSED : ERR_SERVER_CLOSED, true);
		});
		sock.on('close', () => {
			if (connected) {
				this._drop(sock, this.closed ? ERR_CLIENT_CLOSED : ERR_SERVER_CLOSED, true);
				return;
			}
			// Given up before it connected: close(), or connect() again.
			if (this.socket === sock) this.socket = null;
			finish(sock.procwireDropped ? ERR_CLIENT_CLOSED : ERR_SOCKET);
		});
	}

	// _drop forgets sock, fails every pending request with err and, when
	// the connection was lost rather than closed by the user, schedules a
	// reconnect. It is idempotent per socket.
	_drop(sock, err, reconnect) {
		if (sock.procwireDropped) return;
		sock.procwireDropped = true;
		sock.destroy();
		if (this.socket === sock) this.socket = null;
		if (this.stream === sock) this.stream = null;
		this._failAll(err);
		if (reconnect && !this.closed && this.socket === null) {
			this.emit('disconnect', err);
			this._scheduleReconnect();
		}
	}

	_scheduleReconnect() {
		if (!this.autoReconnect || this.closed || this.reconnectTimer) return;
		this.logDebug(5, 'Auto reconnect in ' + this.autoReconnect + ' ms');
		this.reconnectTimer = setTimeout(() => {
			this.reconnectTimer = null;
			if (this.closed || this.socket) return;
			this.stats.reconnects++;
			this._open((err) => {
				if (err) this._scheduleReconnect();
			});
		}, this.autoReconnect);
	}

	_clearReconnect() {
		if (this.reconnectTimer) {
			clearTimeout(this.reconnectTimer);
			this.reconnectTimer = null;
		}
	}

	_failAll(err) {
		for (const [id, req] of this.requests) {
			if (req.expired) continue;
			this._delete(id);
			this.stats.errors++;
			if (req.callback) req.callback(err);
		}
	}

	_delete(id) {
		const req = this.requests.get(id);
		if (!req) return;
		clearTimeout(req.timer);
		this.requests.delete(id);
		this.requestCount--;
	}

	_line(line) {
		// Like pixl-json-stream: only lines that look like objects are JSON.
		if (!/^\s*\{/.test(line)) return;
		let msg;
		try {
			msg = JSON.parse(line);
		} catch (e) {
			this.logError('stream_err', 'Got error from stream: JSON Parse Error: ' + e.message, line.slice(0, 200));
			return;
		}
		this._message(msg);
	}

	_message(msg) {
		if (!msg || typeof msg !== 'object' || !msg.ipcReqID) {
			// Server pushes and replies to id-less requests.
			this.logDebug(8, 'Server message with no request ID', msg);
			this.emit('data', msg);
			return;
		}
		let err = null;
		let data = msg.data;
		if (this.messageTransform) [err, data] = this.messageTransform(msg);
		const req = this.requests.get(msg.ipcReqID);
		if (!req) {
			this.logError('ipc_req_not_found', 'Could not find request ID ' + msg.ipcReqID + ' in request list', msg);
			return;
		}
		if (req.expired) return; // a late reply, dropped as pixl-ipc does
		this._delete(msg.ipcReqID);
		this.stats.responses++;
		if (req.callback) req.callback(err, data);
	}

	_oversize(head, n) {
		const m = HEAD_ID.exec(head.toString('utf8'));
		let id = null;
		if (m) {
			try { id = JSON.parse(m[1]); } catch (e) { id = null; }
		}
		this.logError(ERR_TOO_LARGE, 'Skipped a ' + n + '-byte message over maxMessageSize ' + this.maxMessageSize, { ipcReqID: id });
		const req = id === null ? undefined : this.requests.get(id);
		if (req && !req.expired) {
			this._delete(id);
			this.stats.errors++;
			if (req.callback) req.callback(ERR_TOO_LARGE);
		}
	}

	// send writes a request and calls cb(err, data) with its reply, or
	// returns a Promise of data when cb is omitted.
	send(uri, data, callback = null) {
		if (typeof callback !== 'function') {
			return new Promise((resolve, reject) => {
				this.send(uri, data, (err, result) => (err ? reject(err) : resolve(result)));
			});
		}
		if (this.closed) {
			// pixl-ipc writes to the ended socket here, and its
			// autoReconnect then resurrects the closed client.
			this.logError(ERR_CLIENT_CLOSED, 'send after close: ' + uri);
			callback(ERR_CLIENT_CLOSED);
			return undefined;
		}
		if (!this.stream) {
			this.logError(ERR_NO_STREAM, 'No valid stream is open');
			callback(ERR_NO_STREAM);
			return undefined;
		}
		const id = this.nextID();
		let line;
		try {
			line = JSON.stringify({ ipcReqID: id, uri: uri, data: data, pid: process.pid, userAgent: this.userAgent }) + '\n';
		} catch (e) {
			// Cyclic data or a BigInt: say so instead of throwing from send.
			this.logError('bad_request', 'Cannot encode request for ' + uri + ': ' + e.message);
			callback('bad_request');
			return undefined;
		}
		const req = {
			uri: uri,
			callback: callback,
			expired: false,
			timer: setTimeout(() => this._timeout(id), this.requestTimeout),
		};
		this.requests.set(id, req);
		this.requestCount++;
		this.stats.requests++;
		const buf = Buffer.from(line, 'utf8');
		this.stats.bytesOut += buf.length;
		this.stream.write(buf);
		return undefined;
	}

	_timeout(id) {
		const req = this.requests.get(id);
		if (!req || req.expired) return;
		this.logError(ERR_TIMEOUT, 'IPCClient request expired: ' + req.uri);
		this.stats.timeouts++;
		req.expired = true;
		// Keep the entry a while so a late reply is dropped quietly.
		req.timer = setTimeout(() => this._delete(id), this.expireRequest);
		req.timer.unref();
		const cb = req.callback;
		req.callback = null;
		if (cb) cb(ERR_TIMEOUT);
	}

	nextID() {
		return 'rq' + this.serialCounter++;
	}

	// close half-closes the connection: replies already on their way are
	// still delivered; requests unanswered when the server closes fail
	// with 'ipc_client_closed', and later sends fail the same way.
	close(callback) {
		this.closed = true;
		this._clearReconnect();
		if (this.statsTimer) {
			clearInterval(this.statsTimer);
			this.statsTimer = null;
		}
		const sock = this.socket;
		this.stream = null;
		if (sock) {
			if (this.requestCount === 0) this._drop(sock, ERR_CLIENT_CLOSED, false);
			else {
				sock.end();
				sock.unref();
			}
		}
		if (typeof callback === 'function') {
			callback();
			return undefined;
		}
		return Promise.resolve();
	}

	_startStats() {
		if (!this.logStatsInterval || this.statsTimer) return;
		this.statsTimer = setInterval(() => {
			this.logDebug(2, 'PixlIPC Stats', Object.assign({ pending: this.requestCount }, this.stats));
		}, this.logStatsInterval);
	}
}

IPCClient.ERR_SOCKET = ERR_SOCKET;
IPCClient.ERR_NO_STREAM = ERR_NO_STREAM;
IPCClient.ERR_TIMEOUT = ERR_TIMEOUT;
IPCClient.ERR_SERVER_CLOSED = ERR_SERVER_CLOSED;
IPCClient.ERR_CLIENT_CLOSED = ERR_CLIENT_CLOSED;
IPCClient.ERR_TOO_LARGE = ERR_TOO_LARGE;

module.exports = IPCClient;
