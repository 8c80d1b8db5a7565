'use strict';
// IPCClient against a real `procwire serve`.

const test = require('node:test');
const assert = require('node:assert/strict');
const IPCClient = require('..');
const { Server, startServer, sleep, memLogger, waitFor, socketPath } = require('./helpers');

let server;
// Every client is closed at the end, so that one a failed test left open
// (reconnecting forever) cannot keep the test process alive.
const clients = new Set();
function client(sock, logger, opts) {
	const c = new IPCClient(sock, logger, opts);
	clients.add(c);
	return c;
}
test.before(async () => { server = await startServer(); });
test.after(async () => {
	for (const c of clients) await c.close();
	if (server) await server.stop();
});

async function connected(opts, logger) {
	const c = client(server.socket, logger || null, opts || {});
	await c.connect();
	return c;
}

test('echo round trip, callback and Promise forms', async () => {
	const c = await connected();
	const got = await new Promise((resolve, reject) => {
		c.send('/ipcserver/test/echo', { a: 1 }, (err, data) => (err ? reject(err) : resolve(data)));
	});
	assert.deepEqual(got, { a: 1 });
	assert.deepEqual(await c.send('/ipcserver/test/echo', [1, 'two', null, true]), [1, 'two', null, true]);
	assert.equal(await c.send('/ipcserver/test/echo/prefix', 'str'), 'str');
	assert.equal(await c.send('/ipcserver/test/echo', undefined), undefined);
	assert.equal(c.requestCount, 0);
	await c.close();
});

test('echo keeps unicode and key order', async () => {
	const c = await connected();
	const v = {
		z: 'héllo wörld',
		a: '日本語のテキスト',
		m: '😀 astral 𝄞',
		sep: 'line\u2028para\u2029',
		ctl: 'tab\tnl\ncr\r\u0001',
		esc: '"quoted" \\ /slash/ <>&',
		nested: { y: 1, b: [1.5, -0.25, 1e21] },
	};
	const got = await c.send('/ipcserver/test/echo', v);
	assert.deepEqual(got, v);
	assert.deepEqual(Object.keys(got), Object.keys(v));
	await c.close();
});

test('echo of 1 MB payloads', async () => {
	const c = await connected();
	const big = 'x'.repeat(1000 * 1000);
	assert.equal(await c.send('/ipcserver/test/echo', big), big);
	const uni = 'é😀'.repeat(200 * 1000); // 1.2 MB of multi-byte UTF-8, split across many reads
	assert.equal(await c.send('/ipcserver/test/echo', uni), uni);
	const obj = {};
	for (let i = 0; i < 20000; i++) obj['k' + i] = 'v'.repeat(40);
	assert.deepEqual(await c.send('/ipcserver/test/echo', obj), obj);
	await c.close();
});

test('no_handler_found arrives as data, or as err with codeToErr', async () => {
	const c = await connected();
	assert.deepEqual(await c.send('/no/such/uri', {}), { code: 'no_handler_found', message: 'No handler found for /no/such/uri' });
	await c.close();

	const e = await connected({ codeToErr: true });
	await new Promise((resolve) => {
		e.send('/no/such/uri', {}, (err, data) => {
			assert.equal(err.code, 'no_handler_found');
			assert.equal(err.message, 'No handler found for /no/such/uri');
			assert.deepEqual(data, err);
			resolve();
		});
	});
	await assert.rejects(e.send('/nope', 1), (err) => err.code === 'no_handler_found');
	await e.close();
});

test('no_uri is top level: (null, undefined) by default, an error with codeToErr', async () => {
	const c = await connected();
	await new Promise((resolve) => {
		c.send('', { a: 1 }, (err, data) => {
			assert.equal(err, null);
			assert.equal(data, undefined);
			resolve();
		});
	});
	await c.close();

	const e = await connected({ codeToErr: true });
	await assert.rejects(e.send('', 1), (err) => {
		assert.equal(err.code, 'no_uri');
		assert.equal(err.message, 'Missing required uri parameter from request');
		assert.ok(err.ipcReqID.startsWith('rq'));
		return true;
	});
	await e.close();
});

test('messageTransform overrides codeToErr and sees every reply', async () => {
	const seen = [];
	const c = await connected({ codeToErr: true, messageTransform: (msg) => { seen.push(msg.ipcReqID); return ['E:' + JSON.stringify(msg.data), 'D']; } });
	await new Promise((resolve) => {
		c.send('/ipcserver/test/echo', 7, (err, data) => {
			assert.equal(err, 'E:7');
			assert.equal(data, 'D');
			resolve();
		});
	});
	assert.deepEqual(seen, ['rq0']);
	await c.close();
});

test('delay replies, and replies come in completion order', async () => {
	const c = await connected();
	assert.deepEqual(await c.send('/ipcserver/test/delay', { delay: 20 }), { delay: 20 });
	assert.deepEqual(await c.send('/ipcserver/test/delay', {}), { delay: 0 });
	assert.deepEqual(await c.send('/ipcserver/test/delay', null), { delay: 0 });
	const order = [];
	await Promise.all([
		c.send('/ipcserver/test/delay', { delay: 400 }).then(() => order.push('400')),
		c.send('/ipcserver/test/delay', { delay: 150 }).then(() => order.push('150')),
		c.send('/ipcserver/test/echo', 'e').then(() => order.push('echo')),
	]);
	assert.deepEqual(order, ['echo', '150', '400']);
	await c.close();
});

test('request_timeout, and the late reply is dropped quietly', async () => {
	const log = memLogger();
	const c = await connected({ requestTimeout: 100, expireRequest: 5000 }, log);
	await new Promise((resolve) => {
		c.send('/ipcserver/test/delay', { delay: 400 }, (err, data) => {
			assert.equal(err, 'request_timeout');
			assert.equal(data, undefined);
			resolve();
		});
	});
	assert.ok(log.errors.some((e) => e.code === 'request_timeout' && e.msg.includes('/ipcserver/test/delay')));
	// The late reply arrives while the entry is kept: no ipc_req_not_found.
	await sleep(600);
	assert.ok(!log.errors.some((e) => e.code === 'ipc_req_not_found'), JSON.stringify(log.errors));
	// The connection is still good.
	assert.equal(await c.send('/ipcserver/test/echo', 'ok'), 'ok');
	await c.close();
});

test('many concurrent requests on one connection are matched by id', async () => {
	const c = await connected();
	const n = 3000;
	const ps = [];
	for (let i = 0; i < n; i++) {
		if (i % 10 === 0) ps.push(c.send('/ipcserver/test/delay', { delay: 1 + (i % 50) }).then((d) => assert.equal(d.delay, 1 + (i % 50))));
		else ps.push(c.send('/ipcserver/test/echo', { i, s: 'p' + i }).then((d) => assert.deepEqual(d, { i, s: 'p' + i })));
	}
	assert.equal(c.requestCount, n);
	await Promise.all(ps);
	assert.equal(c.requestCount, 0);
	await c.close();
});

test('many clients at once', async () => {
	const clients = await Promise.all(Array.from({ length: 20 }, () => connected()));
	const res = await Promise.all(clients.map((c, i) => Promise.all(Array.from({ length: 50 }, (_, j) => c.send('/ipcserver/test/echo', [i, j])))));
	res.forEach((rs, i) => rs.forEach((r, j) => assert.deepEqual(r, [i, j])));
	await Promise.all(clients.map((c) => c.close()));
});

test('/ipcserver/stats answers with the pixl-ipc fields', async () => {
	const c = await connected();
	const st = await c.send('/ipcserver/stats', {});
	for (const k of ['connections', 'handlers', 'requests', 'clientOpen', 'clientClose', 'maxConnections', 'duration', 'slowResponses', 'streamBackpressure']) {
		assert.ok(k in st, 'missing ' + k + ' in ' + JSON.stringify(st));
	}
	assert.ok(st.connections >= 1);
	await c.close();
});

test('a reply over maxMessageSize fails its request at once; the connection stays usable', async () => {
	const log = memLogger();
	const c = await connected({ maxMessageSize: 4096 }, log);
	await assert.rejects(c.send('/ipcserver/test/echo', 'y'.repeat(100000)), (err) => err === 'message_too_large');
	assert.ok(log.errors.some((e) => e.code === 'message_too_large'));
	assert.equal(await c.send('/ipcserver/test/echo', 'small'), 'small');
	assert.equal(c.requestCount, 0);
	await c.close();
});

test('a request over the server\'s max_message_size is answered and the connection stays usable', async () => {
	const own = await startServer(null, 'ipc {\n    max_message_size 4k;\n}\n');
	const c = client(own.socket, null, { requestTimeout: 500 });
	await c.connect();
	const events = [];
	c.on('data', (m) => events.push(m));
	// The server finds the id at the start of the skipped line and answers
	// it with a top-level code, like no_uri: the request ends at once (its
	// data is undefined, as pixl-ipc gives for no_uri), not by its timeout.
	const started = Date.now();
	assert.equal(await c.send('/ipcserver/test/echo', 'z'.repeat(10000)), undefined);
	assert.ok(Date.now() - started < 400, 'the oversized request waited for its timeout');
	assert.equal(events.length, 0);
	// With codeToErr the caller sees the code.
	const strict = client(own.socket, null, { requestTimeout: 500, codeToErr: true });
	await strict.connect();
	await assert.rejects(strict.send('/ipcserver/test/echo', 'z'.repeat(10000)), (err) => err.code === 'message_too_large');
	await strict.close();
	assert.equal(await c.send('/ipcserver/test/echo', 'fits'), 'fits');
	await c.close();
	await own.stop();
});

test('connect to a missing socket fails with ipc_socket_err', async () => {
	const c = client(socketPath('missing'), null, {});
	await assert.rejects(c.connect(), (err) => err === 'ipc_socket_err');
	await new Promise((resolve) => c.connect((err) => { assert.equal(err, 'ipc_socket_err'); resolve(); }));
	await assert.rejects(c.send('/ipcserver/test/echo', 1), (err) => err === 'no_open_stream');
	await c.close();
});

test('close lets a reply in flight arrive; send after close fails and does not reconnect', async () => {
	const c = await connected({ autoReconnect: 50 });
	const p = c.send('/ipcserver/test/delay', { delay: 100 });
	await c.close();
	assert.deepEqual(await p, { delay: 100 });
	await assert.rejects(c.send('/ipcserver/test/echo', 1), (err) => err === 'ipc_client_closed');
	await sleep(200);
	assert.equal(c.socket, null, 'closed client was reconnected');
	assert.equal(c.stream, null);
	// An explicit connect() opens it again.
	await c.connect();
	assert.equal(await c.send('/ipcserver/test/echo', 2), 2);
	await c.close();
});

test('graceful shutdown: replies in flight arrive, then pending requests fail at once', async () => {
	const own = await startServer();
	const c = client(own.socket, null, { autoReconnect: false, requestTimeout: 30000 });
	await c.connect();
	const short = c.send('/ipcserver/test/delay', { delay: 200 });
	const long = c.send('/ipcserver/test/delay', { delay: 25000 });
	await sleep(50); // both are in the server's hands
	const t0 = Date.now();
	const stopped = own.stop();
	assert.deepEqual(await short, { delay: 200 });
	// A clean end of stream (FIN after the drain), not a reset.
	await assert.rejects(long, (err) => err === 'ipc_server_closed');
	// Well before requestTimeout: it failed because the server went away.
	assert.ok(Date.now() - t0 < 20000);
	await stopped;
	await assert.rejects(c.send('/ipcserver/test/echo', 1), (err) => err === 'no_open_stream');
	await c.close();
});

test('autoReconnect across a server restart', async () => {
	const sock = socketPath('restart');
	let own = await startServer(sock);
	const c = client(sock, null, { autoReconnect: 50 });
	await c.connect();
	assert.equal(await c.send('/ipcserver/test/echo', 'before'), 'before');
	const gone = new Promise((resolve) => c.once('disconnect', resolve));
	await own.stop();
	assert.equal(await gone, 'ipc_server_closed');
	await assert.rejects(c.send('/ipcserver/test/echo', 1), (err) => err === 'no_open_stream');
	const back = new Promise((resolve) => c.once('connect', resolve));
	own = await startServer(sock);
	await back;
	assert.equal(await c.send('/ipcserver/test/echo', 'after'), 'after');
	await c.close();
	await own.stop();
});

test('autoReconnect after SIGKILL of the server', async () => {
	const sock = socketPath('kill');
	let own = await startServer(sock);
	const c = client(sock, null, { autoReconnect: 50 });
	await c.connect();
	const failed = assert.rejects(c.send('/ipcserver/test/delay', { delay: 20000 }), (err) => err === 'ipc_server_closed' || err === 'ipc_socket_err');
	await sleep(50);
	await own.stop('SIGKILL');
	await failed;
	const back = new Promise((resolve) => c.once('connect', resolve));
	own = await startServer(sock); // removes the stale socket file
	await back;
	assert.equal(await c.send('/ipcserver/test/echo', 'again'), 'again');
	await c.close();
	await own.stop();
});

test('without autoReconnect the client stays down after EOF', async () => {
	const sock = socketPath('noreconn');
	let own = await startServer(sock);
	const c = client(sock, null, { autoReconnect: 0 });
	await c.connect();
	await own.stop();
	await waitFor(() => c.stream === null, 'the client to see EOF');
	own = await startServer(sock);
	await sleep(200);
	await assert.rejects(c.send('/ipcserver/test/echo', 1), (err) => err === 'no_open_stream');
	await c.connect();
	assert.equal(await c.send('/ipcserver/test/echo', 3), 3);
	await c.close();
	await own.stop();
});

module.exports = { Server };
