'use strict';
// IPCClient against a scripted server, for what procwire serve cannot be
// made to do on demand (pushes, garbage, a FIN with requests pending).

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('net');
const IPCClient = require('..');
const { LineDecoder } = require('..');
const { socketPath, memLogger, sleep, waitFor } = require('./helpers');

// Fake servers a failed test left open are closed at the end.
const open = new Set();
test.after(async () => { for (const s of open) await s.close(); });

// fakeServer calls onLine(sock, obj) for every request line.
function fakeServer(onLine) {
	const sock = socketPath('fake');
	const conns = new Set();
	const srv = net.createServer((c) => {
		conns.add(c);
		c.on('close', () => conns.delete(c));
		let buf = '';
		c.on('data', (d) => {
			buf += d.toString();
			let i;
			while ((i = buf.indexOf('\n')) >= 0) {
				const line = buf.slice(0, i);
				buf = buf.slice(i + 1);
				onLine(c, JSON.parse(line));
			}
		});
	});
	const f = {
		socket: sock,
		conns,
		close: () => new Promise((r) => {
			open.delete(f);
			for (const c of conns) c.destroy();
			srv.close(() => r());
		}),
	};
	open.add(f);
	return new Promise((resolve) => srv.listen(sock, () => resolve(f)));
}

test('id-less messages from the server are data events', async () => {
	const srv = await fakeServer((c, req) => {
		c.write(JSON.stringify({ event: 'alert', n: 1 }) + '\n');
		c.write(JSON.stringify({ ipcReqID: null, n: 2 }) + '\r\n');
		c.write(JSON.stringify({ ipcReqID: req.ipcReqID, data: 'done' }) + '\n');
	});
	const c = new IPCClient(srv.socket, null, {});
	const events = [];
	c.on('data', (m) => events.push(m));
	await c.connect();
	assert.equal(await c.send('/x', {}), 'done');
	assert.deepEqual(events, [{ event: 'alert', n: 1 }, { ipcReqID: null, n: 2 }]);
	await c.close();
	await srv.close();
});

test('garbage, blank and non-object lines from the server are ignored', async () => {
	const log = memLogger();
	const srv = await fakeServer((c, req) => {
		c.write('\n  \n[1,2]\n"str"\n42\nnot json\n{bad json}\n');
		c.write('{"ipcReqID":' + JSON.stringify(req.ipcReqID) + ',"data":{"ok":true}}\n');
	});
	const c = new IPCClient(srv.socket, log, {});
	await c.connect();
	assert.deepEqual(await c.send('/x', 1), { ok: true });
	assert.ok(log.errors.some((e) => e.code === 'stream_err'));
	await c.close();
	await srv.close();
});

test('a reply split byte by byte, mid UTF-8, is reassembled', async () => {
	const srv = await fakeServer(async (c, req) => {
		const b = Buffer.from(JSON.stringify({ ipcReqID: req.ipcReqID, data: 'é😀日' }) + '\n');
		for (let i = 0; i < b.length; i++) {
			c.write(b.subarray(i, i + 1));
			await sleep(1);
		}
	});
	const c = new IPCClient(srv.socket, null, {});
	await c.connect();
	assert.equal(await c.send('/x', 1), 'é😀日');
	await c.close();
	await srv.close();
});

test('server FIN with requests pending fails them at once (pixl-ipc leaves them hanging)', async () => {
	const srv = await fakeServer((c) => c.end());
	const c = new IPCClient(srv.socket, null, { autoReconnect: false, requestTimeout: 60000 });
	await c.connect();
	const t0 = Date.now();
	await assert.rejects(c.send('/x', 1), (err) => err === 'ipc_server_closed');
	assert.ok(Date.now() - t0 < 30000);
	assert.equal(c.requestCount, 0);
	await assert.rejects(c.send('/x', 1), (err) => err === 'no_open_stream');
	await c.close();
	await srv.close();
});

test('close() or connect() while connecting settles the pending connect', async () => {
	const srv = await fakeServer(() => {});
	const c = new IPCClient(srv.socket, null, {});
	const first = c.connect();
	const second = c.connect();
	await assert.rejects(first, (err) => err === 'ipc_client_closed');
	await second;
	const third = c.connect();
	await c.close();
	await assert.rejects(third, (err) => err === 'ipc_client_closed');
	await srv.close();
});

test('an unknown reply id is logged as ipc_req_not_found', async () => {
	const log = memLogger();
	const srv = await fakeServer((c, req) => {
		c.write('{"ipcReqID":"other","data":1}\n');
		c.write(JSON.stringify({ ipcReqID: req.ipcReqID, data: 2 }) + '\n');
	});
	const c = new IPCClient(srv.socket, log, {});
	await c.connect();
	assert.equal(await c.send('/x', 0), 2);
	assert.ok(log.errors.some((e) => e.code === 'ipc_req_not_found'));
	await c.close();
	await srv.close();
});

test('data that cannot be encoded fails the send instead of throwing', async () => {
	const srv = await fakeServer(() => {});
	const c = new IPCClient(srv.socket, null, {});
	await c.connect();
	const cyc = {};
	cyc.self = cyc;
	await assert.rejects(c.send('/x', cyc), (err) => err === 'bad_request');
	assert.equal(c.requestCount, 0);
	await c.close();
	await srv.close();
});

test('logStatsInterval logs counters until close', async () => {
	const srv = await fakeServer((c, req) => c.write(JSON.stringify({ ipcReqID: req.ipcReqID, data: 1 }) + '\n'));
	const log = memLogger();
	const c = new IPCClient(srv.socket, log, { logStatsInterval: 20 });
	await c.connect();
	await c.send('/x', 1);
	const stats = () => log.debugs.filter((d) => d.msg === 'PixlIPC Stats');
	await waitFor(() => stats().length > 0, 'a stats line');
	const s = stats()[stats().length - 1];
	assert.equal(s.level, 2);
	assert.equal(s.data.requests, 1);
	assert.equal(s.data.responses, 1);
	await c.close();
	const n = stats().length;
	await sleep(100);
	assert.equal(stats().length, n, 'stats logged after close');
	await srv.close();
});

test('option defaults match pixl-ipc', () => {
	const c = new IPCClient('/nonexistent', null);
	assert.equal(c.requestTimeout, 10000);
	assert.equal(c.expireRequest, 10000);
	assert.equal(c.autoReconnect, 1000);
	assert.equal(c.userAgent, 'Node/IPCClient' + process.cwd());
	assert.equal(c.messageTransform, null);
	assert.equal(c.maxMessageSize, 64 * 1024 * 1024);
	const d = new IPCClient('/nonexistent', null, { requestTimeout: 0, autoReconnect: null, codeToErr: true });
	assert.equal(d.requestTimeout, 10000);
	assert.equal(d.autoReconnect, null);
	assert.deepEqual(d.messageTransform({ ipcReqID: 'a', code: 'no_uri' }), [{ ipcReqID: 'a', code: 'no_uri' }, undefined]);
	assert.deepEqual(d.messageTransform({ ipcReqID: 'a', data: { code: 'x' } }), [{ code: 'x' }, { code: 'x' }]);
	assert.deepEqual(d.messageTransform({ ipcReqID: 'a', data: 5 }), [null, 5]);
});

test('LineDecoder frames lines and bounds its buffer', async (t) => {
	const cases = [
		{ name: 'one line', chunks: ['a\n'], lines: ['a'] },
		{ name: 'many per chunk', chunks: ['a\nb\nc\n'], lines: ['a', 'b', 'c'] },
		{ name: 'split', chunks: ['ab', 'c\nd', 'e\n'], lines: ['abc', 'de'] },
		{ name: 'blank lines skipped', chunks: ['\n\na\n\n'], lines: ['a'] },
		{ name: 'crlf kept for JSON.parse', chunks: ['a\r\n'], lines: ['a\r'] },
		{ name: 'unterminated tail pending', chunks: ['a\nb'], lines: ['a'], pending: true },
		{ name: 'oversize skipped', chunks: ['0123456789ABC\nok\n'], lines: ['ok'], over: [13] },
		{ name: 'oversize across chunks', chunks: ['0123456', '789A', 'BCDEF\nok\n'], lines: ['ok'], over: [16] },
		{ name: 'exactly max', chunks: ['0123456789\n'], lines: ['0123456789'] },
	];
	for (const tc of cases) {
		await t.test(tc.name, () => {
			const lines = [], over = [];
			const d = new LineDecoder(10, (l) => lines.push(l), (head, n) => over.push(n));
			for (const ch of tc.chunks) d.push(Buffer.from(ch));
			assert.deepEqual(lines, tc.lines);
			assert.deepEqual(over, tc.over || []);
			assert.equal(d.pending(), !!tc.pending);
		});
	}
	await t.test('multi-byte split', () => {
		const lines = [];
		const d = new LineDecoder(100, (l) => lines.push(l), () => {});
		const b = Buffer.from('é😀\n');
		for (let i = 0; i < b.length; i++) d.push(b.subarray(i, i + 1));
		assert.deepEqual(lines, ['é😀']);
	});
	assert.throws(() => new LineDecoder(0, () => {}, () => {}), RangeError);
});
